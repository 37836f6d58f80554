"""Finishing the cut: music, cards, captions, chapters, colour match, OTIO, lower thirds, karaoke."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from media import ffmpeg
from media.probe import probe
from media.timeline import Edit, Transition, build_timeline
from storage import LocalStore
from tasks.models import ClipRef
from tasks.stitch import normalize_stored
from tests.media import audio_pcm, tone_clip
from tests.cut_helpers import FPS, SMALL, _rows, _stitch


def _spoken_clip(path: Path, seconds: float, talk: tuple[float, float]) -> Path:
    """A grey clip whose 'speech' is a 1 kHz tone from talk[0] to talk[1] s, silence around it."""
    from media import ffmpeg

    a, b = talk
    ffmpeg.run([
        "-f", "lavfi", "-i", f"color=c=gray:s=160x240:r={FPS}:d={seconds}",
        "-f", "lavfi", "-i", f"sine=f=1000:sample_rate=48000:d={seconds}",
        "-af", f"volume='if(between(t,{a},{b}),4,0)':eval=frame,aformat=channel_layouts=stereo",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", str(path),
    ])
    return path


def _band_db(pcm, rate: int, start: float, end: float, freq: float) -> float:
    import numpy as np

    part = pcm[int(start * rate): int(end * rate)]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    bins = np.fft.rfftfreq(len(part), 1 / rate)
    near = (bins > freq - 30) & (bins < freq + 30)
    return float(20 * np.log10(spectrum[near].max() + 1e-12))


@pytest.mark.slow
def test_music_is_mixed_under_speech_ducked_and_loudness_normalised(tmp_path):
    from media import ffmpeg
    from media.music import Music
    from media.loudness import measure_loudness

    bed = tmp_path / "bed.wav"           # 3 s of a 4 kHz tone: looped under a 6 s cut
    ffmpeg.run(["-f", "lavfi", "-i", "sine=f=4000:sample_rate=44100:d=3", "-ac", "2", str(bed)])
    paths = [_spoken_clip(tmp_path / f"v{i}.mov", 2.0, (0.5, 1.3)) for i in range(3)]
    edit = Edit(music=Music(file=str(bed), volume=-12, fade_in=0.2, fade_out=0.2))
    store, _, keys = _stitch(paths, tmp_path, edit, speech=["one", "two", "three"])
    final = store.path(keys["video"])
    pcm, rate = audio_pcm(final)
    assert abs(len(pcm) / rate - 6.0) <= 1 / FPS
    talking = [_band_db(pcm, rate, s + 0.7, s + 1.1, 4000) for s in (0, 2, 4)]
    pauses = [_band_db(pcm, rate, s + 1.62, s + 1.95, 4000) for s in (0, 2)]
    # Measured: 25.1 dB under speech, 35.4 dB in the pauses (duck_db 12; AAC's noise around the
    # loud 'speech' fills the ducked bin a little), integrated -14.0 LUFS, true peak -11.9 dBTP.
    assert min(pauses) - max(talking) >= 8, (talking, pauses)
    assert min(talking) > min(pauses) - 30                  # ducked, not muted
    measured = measure_loudness(["-i", str(final)], SMALL)
    assert float(measured["input_i"]) == pytest.approx(SMALL.loudness, abs=1.0)
    assert float(measured["input_tp"]) <= -1.0


def test_a_full_scale_bed_under_full_scale_speech_is_not_clipped_before_the_loudness_pass(tmp_path):
    """``volume: 0`` is the bed as recorded: summed with loud speech it passed full scale and was
    rounded to 16 bits there, flat-topped, before the loudness pass lowered the whole mix."""
    import numpy as np

    from media.music import Music, music_graph, music_inputs
    from media.stitch import concat_list, join_audio

    clip = tone_clip(tmp_path / "speech.mov", seconds=2.0, freq=440, amplitude=0.99, fps=FPS)
    bed = tmp_path / "bed.wav"
    ffmpeg.run(["-f", "lavfi", "-i", "aevalsrc='0.99*sin(2*PI*100*t)':s=48000:d=2", "-ac", "2", str(bed)])
    music = Music(file=str(bed), volume=0, duck=False, fade_in=0, fade_out=0)
    listing = tmp_path / "clips.ffconcat"
    listing.write_text(concat_list([clip]))
    samples = 96000
    measured = join_audio(str(listing), SMALL, samples, tmp_path / "joined.pcm", audio_inputs=music_inputs(music),
                          audio_graph=music_graph(music, 1, samples, 48000, 2.0, [], "[0:a:0]", "[joined]"))
    pcm = np.fromfile(tmp_path / "joined.pcm", dtype="<i2")
    assert pcm.size == samples * 2
    assert int((np.abs(pcm.astype(np.int32)) >= 32767).sum()) == 0
    assert 0.3 < np.abs(pcm).max() / 32768 < 0.55                    # the sum (about 1.98) lowered 12 dB
    assert float(measured["input_tp"]) < -5


def test_a_percussive_bed_is_held_under_the_true_peak_ceiling_in_the_delivered_aac(tmp_path):
    """The PCM was limited 1.5 dB under the ceiling, but AAC overshoots sharp hits by more (2-5 dB
    measured on 30 ms noise bursts): the encoded track's peak is measured and limited lower."""
    from media.loudness import measure_loudness
    from media.music import Music

    bed = tmp_path / "drums.wav"
    ffmpeg.run(["-f", "lavfi", "-i", "anoisesrc=color=white:amplitude=1:d=6:r=44100:seed=7,"
                "volume='if(lt(mod(t,0.5),0.03),1,0.01)':eval=frame", "-ac", "2", str(bed)])
    paths = [_spoken_clip(tmp_path / f"v{i}.mov", 2.0, (0.5, 1.3)) for i in range(3)]
    edit = Edit(music=Music(file=str(bed), volume=0, duck=False, fade_in=0, fade_out=0))
    loud = SMALL.model_copy(update={"loudness": -9.0})      # measured before: +1.1 dBTP
    store, _, keys = _stitch(paths, tmp_path, edit, loud, speech=["one", "two", "three"])
    measured = measure_loudness(["-i", str(store.path(keys["video"]))], loud)
    assert float(measured["input_tp"]) <= loud.true_peak
    assert float(measured["input_i"]) == pytest.approx(loud.loudness, abs=1.0)


def test_music_must_be_a_file_inside_the_project(tmp_path):
    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    (folder / "audio").mkdir(parents=True)
    ffmpeg.run(["-f", "lavfi", "-i", "sine=d=0.3", str(folder / "audio" / "bed.mp3")])   # media is probed
    base = "title: T\nscenes:\n  - id: a\n    action: x\n"
    (folder / "project.yaml").write_text(base + "music:\n  file: ../bed.mp3\n")
    with pytest.raises(ProjectError, match=r"project.yaml:6: music.file: '../bed.mp3' is outside"):
        load_project(folder)
    (folder / "project.yaml").write_text(base + "music: {file: audio/bed.mp3, volume: 5}\n")
    with pytest.raises(ProjectError, match=r"project.yaml:5: music.volume:"):
        load_project(folder)
    (folder / "project.yaml").write_text(base + "music: {file: audio/bed.mp3, volume: -20}\n")
    edit = load_project(folder).edit()
    assert edit.music.file == str((folder / "audio" / "bed.mp3").resolve()) and edit.music.duck


def test_render_manifest_places_scenes_by_the_timeline():
    from projects.schema import Project
    from tasks.manifest import scene_cuts
    from tasks.models import NormalizedRef

    project = Project.model_validate({"title": "T", "output": {"fps": 12},
                                      "scenes": [{"id": "a", "action": "x"}, {"id": "b", "action": "y"}]})
    cut = [ClipRef(scene_id=s, index=i, key=f"k{i}", engine="animatic", cached=False) for i, s in enumerate("ab")]
    normalized = [NormalizedRef(scene_id=s, index=i, key=f"n{i}", frames=24) for i, s in enumerate("ab")]
    timeline = build_timeline(_rows(24, 24), Fraction(12), default=Transition(type="crossfade", duration=0.5))
    timeline.items[0].scene_id, timeline.items[1].scene_id = "a", "b"
    placed = scene_cuts(project, cut, normalized, {}, timeline)
    assert [(c.start, c.end) for c in placed] == [(0.0, 2.0), (1.5, 3.5)]
    assert [(c.start, c.end) for c in scene_cuts(project, cut, normalized, {})] == [(0.0, 2.0), (2.0, 4.0)]


@pytest.mark.slow
def test_title_and_end_cards_open_and_close_the_cut(tmp_path):
    import numpy as np

    from media.cards import Card
    from tests.media import frame_luma

    paths = [tone_clip(tmp_path / f"c{i}.mov", seconds=1.0, color="gray") for i in range(2)]
    edit = Edit(transition=Transition(type="dip", duration=0.25),
                title_card=Card(text="Race recap", duration=1.5), end_card=Card(text="Thanks", duration=1, color="#204080"),
                chapters={"s0": "Start"})
    store, _, keys = _stitch(paths, tmp_path, edit, speech=["one", "two"])
    timeline = keys["timeline"]
    assert [(i.scene_id, i.kind, i.frames) for i in timeline.items] == [
        ("title card", "card", 18), ("s0", "clip", 12), ("s1", "clip", 12), ("end card", "card", 12)]
    assert timeline.frames == 18 + 12 + 12 + 12 - 3 * 3
    final = store.path(keys["video"])
    assert probe(final, count_frames=True).video_frames == timeline.frames
    luma, _ = frame_luma(final)
    assert luma[0] < 40 and luma[20] > 80          # black title card, then the grey scene
    join = timeline.items[2].start                  # the dip between the two grey scenes goes through black
    assert luma[join + 1] < 50 < 100 < luma[join - 2], luma[join - 3: join + 5]
    import av

    with av.open(str(final)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
        c.seek(int((timeline.duration - 0.1) * 1_000_000))
        last = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][-1]
    assert first.max() > 200                        # the title's white text
    assert np.abs(last.reshape(-1, 3).mean(axis=0) - (0x20, 0x40, 0x80)).max() < 25   # end card colour
    # The cards share their neighbours' chapters; no subtitle on a card.
    assert [c.title for c in timeline.chapters()] == ["Start", "s1"]
    assert [round(c[0], 3) for c in timeline.cues()] == [round(timeline.seconds(timeline.items[1].start), 3),
                                                         round(timeline.seconds(timeline.items[2].start), 3)]


def test_card_image_must_be_readable(tmp_path):
    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "bg.png").write_text("not a picture")
    (folder / "project.yaml").write_text(
        "title: T\nscenes:\n  - id: a\n    action: x\ntitle_card:\n  text: Hi\n  image: bg.png\n")
    with pytest.raises(ProjectError) as err:
        load_project(folder)
    assert "project.yaml:7: title_card.image: 'bg.png'" in str(err.value)
    (folder / "project.yaml").write_text("title: T\nscenes:\n  - id: a\n    action: x\nend_card: {text: '<S>bye<E>'}\n")
    with pytest.raises(ProjectError, match="project.yaml:5: end_card.text: contains the prompt token"):
        load_project(folder)


def test_card_text_over_its_limit_is_refused_when_the_project_loads(tmp_path):
    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").write_text(f"title: T\nscenes:\n  - id: a\n    action: x\nend_card: {{text: {'a' * 301}}}\n")
    with pytest.raises(ProjectError, match="project.yaml:5: end_card.text: String should have at most 300 characters"):
        load_project(folder)
    (folder / "project.yaml").write_text(f"title: T\nscenes:\n  - id: a\n    action: x\nend_card: {{text: {'a' * 300}}}\n")
    assert load_project(folder).end_card.text == "a" * 300


@pytest.mark.parametrize("size", [(192, 320), (576, 896), (1920, 1080)])
def test_card_text_is_never_cut_it_is_drawn_smaller(size):
    """Every word of the longest card text fits the safe area (it was cut after eight lines)."""
    from media.cards import MAX_CARD_CHARS, card_layout

    width, height = size
    words = " ".join(f"w{i:02d}" for i in range(55)) + " " + "x" * 60 + "\nlast line"
    assert len(words) <= MAX_CARD_CHARS
    font, lines, line_h = card_layout(words, width, height)
    assert "".join(" ".join(lines).split()) == "".join(words.split())
    assert line_h * len(lines) <= height - 2 * (height // 10)
    assert max(font.getlength(line) for line in lines) <= width - 2 * (width // 10)
    assert card_layout("Race recap", width, height)[0].size == min(width // 12, height // 10)   # short text: full size


@pytest.mark.parametrize("name", ["Max\nVerstappen\nthe third", "Maximilian " * 30, "W" * 80])
def test_a_lower_third_name_stays_on_one_line_inside_the_frame(tmp_path, name):
    """A name with newlines failed the render (Pillow cannot measure them); a long one ran off the
    frame's right edge."""
    import numpy as np
    from PIL import Image

    from media.cards import LowerThird, lower_third_png

    png = lower_third_png(name, LowerThird(), 192, 320, tmp_path / "lt.png")
    alpha = np.asarray(Image.open(png))[:, :, 3]
    rows, cols = np.nonzero(alpha)
    assert cols.max() < 192 - 192 // 20 and rows.max() - rows.min() < 320 // 10    # one line, inside the margin


def test_burned_subtitles_move_the_animatic_caption_to_the_top(small_project):
    from projects import load_project
    from tasks.plan import plan_project

    spec = load_project(small_project)
    bottom = plan_project(spec)[0][0]
    spec.output.subtitles = "burn"
    top = plan_project(spec)[0][0]
    assert (bottom.request.caption_at, top.request.caption_at) == ("bottom", "top")
    assert bottom.key != top.key            # a different picture, a different clip
    assert "caption_at" not in bottom.request.model_dump_json(exclude_defaults=True)


@pytest.mark.slow
def test_with_burned_subtitles_the_caption_band_holds_only_the_subtitle(tmp_path):
    import av
    import numpy as np

    from engines.animatic import AnimaticEngine
    from engines.base import ClipRequest

    profile = SMALL.model_copy(update={"subtitles": "burn"})
    frames = {}
    for at in ("bottom", "top", "none"):
        request = ClipRequest(scene_id="s", prompt="a driver waving", caption="WAVING AT THE CROWD TODAY",
                              caption_at=at, width=160, height=240, fps=FPS, duration=1.0, seed=3)
        clip = Path(AnimaticEngine().generate(request, tmp_path / at).path)
        store, _, keys = _stitch([clip], tmp_path / f"r-{at}", None, profile, speech=["Hello there"])
        with av.open(str(store.path(keys["video"]))) as c:
            frames[at] = [f.to_ndarray(format="gray").astype(float) for f in c.decode(video=0)][6]
    band = slice(240 * 2 // 3, 240)            # the bottom third: where burned subtitles sit
    top = slice(0, 240 // 3)
    assert frames["none"][band].max() > 200                                     # the subtitle is there
    assert np.abs(frames["top"][band] - frames["none"][band]).mean() < 1.5      # and nothing else
    assert np.abs(frames["bottom"][band] - frames["none"][band]).mean() > 8     # (the collision it avoids)
    assert np.abs(frames["top"][top] - frames["none"][top]).mean() > 8          # the caption moved up


def test_ffmetadata_escapes_titles_and_counts_frames():
    from media.chapters import ffmetadata

    rows = _rows(12, 12)
    rows[0]["chapter"] = "Part 1; the = start #1"
    text = ffmetadata(build_timeline(rows, Fraction(24000, 1001)))
    assert text.startswith(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1001/24000\nSTART=0\nEND=12\n")
    assert "title=Part 1\\; the \\= start \\#1\n" in text and text.endswith("END=24\ntitle=s1\n")


@pytest.mark.slow
def test_chapters_in_the_mp4_are_readable_with_pyav(tmp_path):
    from media.chapters import read_chapters

    paths = [tone_clip(tmp_path / f"c{i}.mov", seconds=1.0) for i in range(3)]
    edit = Edit(transition=Transition(type="crossfade", duration=0.25), chapters={"s1": "Middle", "s2": "Middle"})
    profile = SMALL.model_copy(update={"chapters": True})
    store, _, keys = _stitch(paths, tmp_path, edit, profile)
    chapters = read_chapters(store.path(keys["video"]))
    assert [c[2] for c in chapters] == ["s0", "Middle"]
    assert chapters[0][0] == pytest.approx(0) and chapters[1][0] == pytest.approx(0.75, abs=0.002)
    assert chapters[1][1] == pytest.approx(keys["timeline"].duration, abs=0.002)
    # Without output.chapters nothing is written.
    store2, _, keys2 = _stitch(paths, tmp_path / "plain", edit, SMALL)
    assert read_chapters(store2.path(keys2["video"])) == []


def test_otio_export_at_ntsc_rates_and_odd_rates():
    from media.otio_export import build_otio, timecode_scale

    assert (timecode_scale(Fraction(24000, 1001)), timecode_scale(Fraction(12)), timecode_scale(Fraction(7))) == (1, 2, None)
    t = build_timeline(_rows(48, 48), Fraction(30000, 1001), default=Transition(type="crossfade", duration=0.5))
    cut = build_otio(t, "x", lambda key: f"https://bucket.example/{key}")
    clips = list(cut.find_clips())
    assert [c.trimmed_range_in_parent().start_time.to_frames() for c in clips] == [0, 33]
    assert clips[1].media_reference.target_url == "https://bucket.example/k1"
    assert clips[0].metadata["reelflow"]["speech"] == "line 0"


@pytest.mark.slow
def test_color_match_brings_a_tinted_clip_to_the_reference(tmp_path):
    from media import ffmpeg
    from media.color import measure

    def clip(name: str, vf: str) -> Path:
        path = tmp_path / name
        ffmpeg.run(["-f", "lavfi", "-i", f"testsrc2=s=160x240:r={FPS}:d=1", "-vf", vf,
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)])
        return path

    reference = clip("ref.mp4", "null")
    tinted = clip("tinted.mp4", "lutrgb=r='val*0.7+70':g='val*0.9':b='val*0.5+10'")   # warm, washed out
    store = LocalStore(tmp_path / "store")
    refs = [ClipRef(scene_id=s, index=i, key=store.put_file(f"footage/{p.name}", p), engine=None, cached=False,
                    duration=1.0) for i, (s, p) in enumerate((("ref", reference), ("warm", tinted)))]
    target = measure(reference)
    plain = normalize_stored(refs[1], SMALL, store, tmp_path / "w")
    matched = normalize_stored(refs[1], SMALL, store, tmp_path / "w", match=target)
    assert matched.key != plain.key and matched.key.endswith(f"-c{target.digest()}.mov")
    before, after = measure(store.path(plain.key)), measure(store.path(matched.key))
    assert max(abs(a - b) for a, b in zip(before.mean, target.mean)) > 30
    assert max(abs(a - b) for a, b in zip(after.mean, target.mean)) < 4, (after.mean, target.mean)
    assert max(abs(a - b) for a, b in zip(after.std, target.std)) < 8, (after.std, target.std)


def test_color_match_must_name_a_scene(tmp_path):
    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").write_text("title: T\ncolor_match: nope\nscenes:\n  - id: a\n    action: x\n")
    with pytest.raises(ProjectError, match=r"project.yaml:2: color_match: unknown scene 'nope' \(scenes: a\)"):
        load_project(folder)


@pytest.mark.slow
def test_a_finished_cut_through_the_cli(small_project, tmp_path, prefect_harness):
    """Every finishing option at once, the way a user runs it: reelflow render --out."""
    import yaml
    from typer.testing import CliRunner

    import opentimelineio as otio
    from media import ffmpeg
    from media.chapters import read_chapters
    from media.loudness import integrated_loudness
    from reelflow.cli import app

    (small_project / "audio").mkdir()
    ffmpeg.run(["-f", "lavfi", "-i", "sine=f=4000:d=2", "-ac", "2", str(small_project / "audio" / "bed.wav")])
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["output"].update(subtitles="burn", chapters=True, highlight="word")
    spec.update(transition={"type": "crossfade", "duration": 0.5}, color_match="s0",
                music={"file": "audio/bed.wav", "volume": -20},
                title_card={"text": "Small", "duration": 1}, end_card={"text": "The end", "duration": 1},
                lower_third=True)
    spec["scenes"][1]["chapter"] = spec["scenes"][2]["chapter"] = "Later"
    spec["scenes"][1]["transition"] = {"type": "crossfade", "duration": 2}     # longer than half a clip
    spec["scenes"][2]["transition"] = {"type": "dip", "duration": 0.5}
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", str(small_project), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "crossfade into 's1' shortened to 9 frames" in result.output
    frames = 12 + 3 * 18 + 12 - 3 * 6 - 9
    info = probe(out / "final.mp4", count_frames=True)
    assert info.video_frames == frames and info.audio_duration == pytest.approx(frames / FPS, abs=1 / FPS)
    assert [c[2] for c in read_chapters(out / "final.mp4")] == ["s0", "Later"]
    cut = otio.adapters.read_from_file(str(out / "final.otio"))
    assert [c.name for c in cut.find_clips()] == ["title card", "s0", "s1", "s2", "end card"]
    assert [c.trimmed_range_in_parent().start_time.to_frames() for c in cut.find_clips()] == [0, 6, 15, 27, 39]
    assert otio.adapters.read_from_file(str(out / "final.edl"), rate=24).duration().to_frames() == 2 * frames
    assert integrated_loudness(out / "final.mp4") == pytest.approx(-14, abs=1.0)
    assert all("-l" in c.metadata["reelflow"]["key"].rsplit("/", 1)[-1]
               for c in cut.find_clips() if c.metadata["reelflow"]["kind"] == "clip")   # lower thirds drawn
    assert len(list((tmp_path / "store").rglob("*.words.json"))) == 3     # the TTS's word timings, kept
