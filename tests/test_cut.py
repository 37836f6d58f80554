"""The cut: the timeline model, clean hard cuts, crossfades and dips that re-encode only the joins."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from media import ffmpeg
from media.probe import probe
from media.timeline import Edit, Transition, build_timeline
from media.transitions import audio_graph, plan_segments
from projects.schema import Output
from storage import LocalStore
from tasks.models import ClipRef
from tasks.stitch import normalize_stored, stitch_render
from tests.media import audio_pcm, beep_onsets, click_energy, flash_onsets, frame_luma, marked_clip, tone_clip

FPS = 12
SMALL = Output(width=160, height=240, fps=FPS, subtitles="srt")


def _rows(*frames: int) -> list[dict]:
    return [dict(scene_id=f"s{i}", key=f"k{i}", frames=n, speech=f"line {i}") for i, n in enumerate(frames)]


def test_timeline_duration_is_clips_minus_overlaps_to_the_frame():
    t = build_timeline(_rows(24, 30, 36), Fraction(12), default=Transition(type="crossfade", duration=0.5),
                       transitions={"s2": Transition(type="cut")})
    assert [j.frames for j in t.joins] == [6, 0]
    assert [i.start for i in t.items] == [0, 18, 48]
    assert t.frames == 24 + 30 + 36 - 6 and t.duration == pytest.approx(84 / 12)
    assert t.samples == 84 * 4000
    # A cue runs until the next clip starts; chapters tile the video.
    assert t.cues() == [(0.0, 1.5, "line 0"), (1.5, 4.0, "line 1"), (4.0, 7.0, "line 2")]
    assert [(c.title, c.start, c.end) for c in t.chapters()] == [("s0", 0, 18), ("s1", 18, 48), ("s2", 48, 84)]


def test_an_overlap_never_takes_more_than_half_a_clip():
    t = build_timeline(_rows(10, 40), Fraction(24), default=Transition(type="dip", duration=2))
    assert t.joins[0].frames == 5 and t.warnings and "shortened" in t.warnings[0]


def test_chapter_labels_group_scenes_in_a_row():
    rows = _rows(12, 12, 12)
    rows[0]["chapter"] = rows[1]["chapter"] = "Opening"
    t = build_timeline(rows, Fraction(12))
    assert [(c.title, c.start, c.end) for c in t.chapters()] == [("Opening", 0, 24), ("s2", 24, 36)]


def test_segments_copy_whole_gops_and_blend_only_around_joins():
    t = build_timeline(_rows(36, 36, 36), Fraction(12), default=Transition(type="crossfade", duration=0.5))
    keys = [[0, 12, 24]] * 3
    segs = plan_segments(t, keys)
    assert [(s.kind, s.item) for s in segs] == [("copy", 0), ("blend", 0), ("copy", 1), ("blend", 1), ("copy", 2)]
    assert (segs[0].first, segs[0].end) == (0, 24)            # last keyframe before the tail (frame 30)
    assert (segs[1].tail_from, segs[1].head_to) == (24, 12)   # first keyframe after the head (frame 6)
    assert sum(s.frames(t) for s in segs) == t.frames
    # A clip with no whole GOP between its joins is split inside the re-encoded part.
    short = build_timeline(_rows(36, 14, 36), Fraction(12), default=Transition(type="crossfade", duration=0.5))
    segs = plan_segments(short, [[0, 12, 24], [0, 12], [0, 12, 24]])
    assert [s.kind for s in segs] == ["copy", "blend", "blend", "copy"]
    assert sum(s.frames(short) for s in segs) == short.frames


def test_audio_graph_concats_cuts_and_crossfades_overlaps_by_exact_samples():
    t = build_timeline(_rows(24, 24, 24), Fraction(12), transitions={"s2": Transition(type="crossfade", duration=0.25)})
    graph = audio_graph(t, 1)
    assert "[1:a][2:a]concat=n=2:v=0:a=1[j0]" in graph
    assert "[j0][3:a]acrossfade=ns=12000" in graph and graph.endswith("[joined]")


def test_a_dip_fades_each_side_to_silence_at_its_middle_in_exact_samples():
    t = build_timeline(_rows(24, 24, 24), Fraction(12), default=Transition(type="dip", duration=0.5),
                       transitions={"s1": Transition(type="crossfade", duration=0.25)})
    graph = audio_graph(t, 1)
    n = t.samples_at(6)                                   # 24000 samples of dip into s2
    length = t.samples_at(24)
    assert "[1:a][d1]acrossfade=ns=12000" in graph
    assert (f"[2:a]afade=t=out:start_sample={length - n}:nb_samples={n // 2}:curve=qua,"
            f"atrim=start_sample=0:end_sample={length - n // 2},asetpts=PTS-STARTPTS[d1]") in graph
    assert (f"[3:a]afade=t=in:start_sample={n // 2}:nb_samples={n // 2}:curve=qua,"
            f"atrim=start_sample={n // 2}:end_sample={length},asetpts=PTS-STARTPTS[d2]") in graph
    assert "[j0][d2]concat=n=2:v=0:a=1[j1]" in graph
    # Samples out = sum of clips - the dip's overlap - the crossfade's overlap.
    assert (length - n // 2) + (length - n // 2) + length - 12000 == t.samples_at(t.frames)


@pytest.mark.slow
def test_a_dip_goes_through_silence_and_a_crossfade_does_not(tmp_path):
    import numpy as np

    from tests.media import audio_pcm, tone_clip

    paths = [tone_clip(tmp_path / f"t{i}.mov", freq=f, seconds=1.5) for i, f in enumerate((440, 660))]
    levels = {}
    for kind in ("dip", "crossfade"):
        store, normalized, keys = _stitch(paths, tmp_path / kind, Edit(transition=Transition(type=kind, duration=0.5)))
        timeline = keys["timeline"]
        joined = tmp_path / kind / "joined.wav"                        # the join graph alone: exact in samples
        ffmpeg.run([*(a for n in normalized for a in ("-i", str(store.path(n.key)))),
                    "-filter_complex", audio_graph(timeline, 0), "-map", "[joined]", "-c:a", "pcm_s16le", str(joined)])
        assert len(audio_pcm(joined)[0]) == timeline.samples
        pcm, rate = audio_pcm(store.path(keys["video"]))
        assert abs(len(pcm) / rate - timeline.duration) <= 1 / FPS
        middle = timeline.seconds(timeline.items[1].start) + timeline.seconds(timeline.joins[0].frames) / 2
        window = pcm[int((middle - 0.005) * rate):int((middle + 0.005) * rate)]
        levels[kind] = 20 * np.log10(max(1e-9, float(np.sqrt((window ** 2).mean()))))
        steady = pcm[int(0.4 * rate):int(0.6 * rate)]
        assert 20 * np.log10(np.sqrt((steady ** 2).mean())) > -20     # the tones themselves are loud
    assert levels["dip"] < -50 and levels["crossfade"] > -30, levels

    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").write_text(
        "title: T\ntransition: {type: crossfade, duration: 0.5}\nscenes:\n"
        "  - id: a\n    action: x\n  - id: b\n    action: y\n    transition: {type: wipe}\n"
    )
    with pytest.raises(ProjectError) as err:
        load_project(folder)
    assert "project.yaml:8: scenes[1].transition.type:" in str(err.value)
    (folder / "project.yaml").write_text(
        "title: T\ntransition: {type: crossfade, duration: 0.5}\nscenes:\n"
        "  - id: a\n    action: x\n    chapter: Start\n  - id: b\n    action: y\n    transition: {type: dip, duration: 1}\n"
    )
    edit = load_project(folder).edit()
    assert edit.transition.type == "crossfade" and edit.transitions["b"].type == "dip"
    assert edit.chapters == {"a": "Start"}


def test_a_transition_on_the_first_scene_is_an_error_unless_a_title_card_precedes_it(tmp_path):
    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    folder.mkdir()
    body = ("scenes:\n  - id: a\n    action: x\n    transition: {type: dip, duration: 0.5}\n"
            "  - id: b\n    action: y\n")
    (folder / "project.yaml").write_text("title: T\n" + body)
    with pytest.raises(ProjectError) as err:
        load_project(folder)
    assert "project.yaml:5: scenes[0].transition: the first scene has no join before it" in str(err.value)
    assert "title_card" in str(err.value)
    # After a title card it is the join from the card, and the timeline uses it.
    (folder / "project.yaml").write_text("title: T\ntitle_card: {text: Hi, duration: 1}\n" + body)
    edit = load_project(folder).edit()
    rows = [dict(scene_id="title card", key="k", frames=12, kind="card"),
            dict(scene_id="a", key="ka", frames=12), dict(scene_id="b", key="kb", frames=12)]
    t = build_timeline(rows, Fraction(12), default=edit.transition, transitions=edit.transitions)
    assert [(j.type, j.frames) for j in t.joins] == [("dip", 6), ("cut", 0)]


def _stitch(paths: list[Path], root: Path, edit: Edit | None, profile: Output = SMALL, speech=None):
    store = LocalStore(root / "store")
    refs = []
    for i, path in enumerate(paths):
        key = store.put_file(f"footage/c{i}{path.suffix}", path)
        refs.append(ClipRef(scene_id=f"s{i}", index=i, key=key, engine=None, cached=False, duration=None,
                            speech=speech[i] if speech else None))
    normalized = [normalize_stored(r, profile, store, root / "work") for r in refs]
    keys = stitch_render(normalized, profile, store, root / "work", "renders/t/1", edit)
    return store, normalized, keys


@pytest.mark.slow
def test_hard_cuts_do_not_click(tmp_path):
    # Tones at frequencies that stop mid-cycle: an unfaded cut steps from one level to another.
    paths = [tone_clip(tmp_path / f"t{i}.mov", freq=f, seconds=1.0) for i, f in enumerate((441.7, 663.3, 552.9))]
    store, _, keys = _stitch(paths, tmp_path, None)
    pcm, rate = audio_pcm(store.path(keys["video"]))
    # Measured on the stitch before edge fades (main at e1a1a76): 0.0108 and 0.0120 at the joins;
    # with 4 ms fades 0.0006-0.0007; the tones alone read 0.0005-0.0011 mid-clip.
    joins = [click_energy(pcm, rate, t) for t in (1.0, 2.0)]
    assert max(joins) < 0.003, joins
    assert click_energy(pcm, rate, 0.5) > 0.0002          # the measure hears the tone itself


MARKED = [dict(seconds=2.0), dict(seconds=2.5), dict(seconds=3.0, audio_rate=None), dict(seconds=2.0)]


@pytest.mark.slow
def test_crossfades_and_dips_keep_sync_and_exact_duration(tmp_path):
    paths = [marked_clip(tmp_path / f"m{i}.mp4", width=200, height=200, fps=FPS, at=1.0, **shape)
             for i, shape in enumerate(MARKED)]
    edit = Edit(transition=Transition(type="crossfade", duration=0.5),
                transitions={"s2": Transition(type="dip", duration=0.5), "s3": Transition(type="cut")})
    store, normalized, keys = _stitch(paths, tmp_path, edit, speech=["a", "b", "c", "d"])
    timeline = keys["timeline"]
    assert [j.frames for j in timeline.joins] == [6, 6, 0]
    assert timeline.frames == 24 + 30 + 36 + 24 - 12

    final = store.path(keys["video"])
    info = probe(final, count_frames=True)
    assert info.video_frames == timeline.frames
    assert keys["duration"] == pytest.approx(timeline.frames / FPS)
    luma, fps = frame_luma(final)
    pcm, rate = audio_pcm(final)
    assert len(luma) == timeline.frames
    assert abs(len(pcm) / rate - timeline.frames / FPS) <= 1 / FPS
    marks = [timeline.seconds(item.start) + 1.0 for item in timeline.items]
    assert flash_onsets(luma, fps) == pytest.approx(marks, abs=0.5 / FPS)
    with_audio = [m for m, shape in zip(marks, MARKED) if shape.get("audio_rate", 1)]
    beeps = beep_onsets(pcm, rate)
    assert len(beeps) == len(with_audio)
    for beep, mark in zip(beeps, with_audio):
        assert abs(beep - mark) <= 1 / FPS, (beep, mark)
    # The editor handoff: final.otio reads back with one clip per item at the same frames.
    import opentimelineio as otio

    cut = otio.adapters.read_from_file(str(store.path(keys["otio"])))
    clips = list(cut.find_clips())
    assert [c.name for c in clips] == ["s0", "s1", "s2", "s3"]
    for clip, item in zip(clips, timeline.items):
        placed = clip.trimmed_range_in_parent()
        assert placed.start_time.to_frames() == item.start
        assert Path(clip.media_reference.target_url.removeprefix("file://")) == store.path(item.key)
        assert clip.markers[0].name == item.scene_id
    assert cut.duration().to_frames() == timeline.frames
    assert [(t.name, t.out_offset.to_frames()) for t in cut.tracks[0]
            if isinstance(t, otio.schema.Transition)] == [("crossfade", 6), ("dip", 6)]
    # ...and the CMX 3600 EDL (timecode at 24: two ticks per 12 fps frame) parses with its reader.
    edl = otio.adapters.read_from_file(str(store.path(keys["edl"])), adapter_name="cmx_3600", rate=24)
    assert [c.trimmed_range_in_parent().start_time.to_frames() for c in edl.find_clips()] == \
        [2 * item.start for item in timeline.items]
    assert edl.duration().to_frames() == 2 * timeline.frames
    # Subtitle cues follow the new starts.
    import pysubs2

    cues = pysubs2.load(str(store.path(keys["subtitles"])))
    assert [e.start / 1000 for e in cues] == pytest.approx([timeline.seconds(i.start) for i in timeline.items], abs=0.002)


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
    from media.stitch import measure_loudness

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
    from media.stitch import integrated_loudness
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


def test_lower_third_names_whoever_speaks(tmp_path):
    from projects import load_project

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").write_text(
        "title: T\nlower_third: true\ncharacters:\n  max: {name: Max}\n  lena: {name: Lena}\nscenes:\n"
        "  - {id: a, character: max, speech: Hi.}\n  - {id: b, character: max, action: waves}\n"
        "  - {id: c, character: lena, speech: Hello., speaker2: {character: max, speech: Hey.}}\n")
    spec = load_project(folder)
    assert spec.lower_third.duration == 3.0
    assert spec.speaker_names() == {"a": "Max", "c": "Lena & Max"}


@pytest.mark.slow
def test_lower_third_is_drawn_over_the_first_seconds_only(tmp_path):
    import av

    from media.cards import LowerThird

    store = LocalStore(tmp_path / "store")
    path = tone_clip(tmp_path / "c.mov", seconds=2.0, color="gray")
    ref = ClipRef(scene_id="a", index=0, key=store.put_file("footage/c.mov", path), engine=None, cached=False,
                  duration=2.0)
    plain = normalize_stored(ref, SMALL, store, tmp_path / "w")
    named = normalize_stored(ref, SMALL, store, tmp_path / "w", lower_third=("Max", LowerThird(duration=1)))
    assert named.key != plain.key and named.frames == plain.frames == 24
    with av.open(str(store.path(named.key))) as c:
        frames = [f.to_ndarray(format="gray").astype(float) for f in c.decode(video=0)]
    band = slice(int(240 * 0.6), int(240 * 0.75))
    assert frames[3][band].max() > 200 and frames[3][band].min() < 60      # white name on a dark bar
    assert frames[18][band].max() < 160                                    # gone after a second
    assert frames[3][:int(240 * 0.6)].std() < 3                            # nothing drawn elsewhere


# -- word-by-word highlight ---------------------------------------------------------------------

_KF = r"\{\\kf?(\d+)\}"


def _karaoke(text: str) -> tuple[list[str], list[int], int]:
    """(words, their \\kf centiseconds, the silent lead-in) of one karaoke event's text."""
    import re

    lead = re.match(r"^\{\\k(\d+)\}(?=\{)", text)
    words = re.findall(r"\{\\kf(\d+)\}([^{\\]+)", text.replace(r"\N", " "))
    return [w.strip() for _, w in words], [int(d) for d, _ in words], int(lead.group(1)) if lead else 0


def test_espeak_word_timings_are_monotonic_and_inside_the_spoken_audio(tmp_path):
    import wave

    from media import tts

    text = "Max takes the lead in lap 12, and the crowd goes wild!"
    speech = tts.speak(text, tmp_path / "a.wav", "en-us")
    with wave.open(str(tmp_path / "a.wav")) as w:
        seconds = w.getnframes() / w.getframerate()
    assert speech.duration == pytest.approx(seconds)
    spoken = [w.text for w in speech.words]
    assert spoken[:4] == ["Max", "takes", "the", "lead"] and "wild" in spoken
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts) and starts[0] < 0.2 and starts[-1] < seconds
    assert all(0 <= w.start <= w.end <= seconds for w in speech.words)
    assert all(text[w.offset:].startswith(w.text) for w in speech.words)
    # Deterministic: the same line gives the same timings (and the same bytes).
    again = tts.speak(text, tmp_path / "b.wav", "en-us")
    assert again == speech and (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_karaoke_has_one_kf_per_word_summing_to_the_cue():
    from media.karaoke import SpokenLine, WordTiming
    from media.subtitles import build_karaoke

    line = SpokenLine(text="Hello there, my old friend.", words=[
        WordTiming(text="Hello", offset=0, start=0.30, end=0.62), WordTiming(text="there", offset=6, start=0.62, end=1.2),
        WordTiming(text="my", offset=13, start=1.2, end=1.35), WordTiming(text="old", offset=16, start=1.35, end=1.6),
        WordTiming(text="friend", offset=20, start=1.6, end=2.4)])
    cues = [(1.5, 4.0, "Hello there, my old friend.", line),            # TTS timings
            (4.0, 6.25, "No timings here, so words share it by length", None)]   # proportional fallback
    subs = build_karaoke(cues)
    assert subs.styles["Default"].primarycolor != subs.styles["Default"].secondarycolor
    first, second = subs
    words, ticks, lead = _karaoke(first.text)
    assert words == ["Hello", "there,", "my", "old", "friend."]
    assert lead == 30 and ticks == [32, 58, 15, 25, 90]   # each from its own start; the last holds to the end
    assert lead + sum(ticks) == (first.end - first.start) // 10 == 250
    words, ticks, lead = _karaoke(second.text)
    assert len(words) == 9 and lead == 0 and sum(ticks) == 225
    assert ticks[words.index("length")] > ticks[words.index("by")]
    # Timings that do not fit the cue's text fall back to proportional ones.
    other = build_karaoke([(0.0, 2.0, "Completely different words", line)])[0]
    assert sum(_karaoke(other.text)[1]) == 200 and _karaoke(other.text)[2] == 0


def test_highlight_needs_burned_subtitles(tmp_path):
    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").write_text(
        "title: T\noutput:\n  subtitles: srt\n  highlight: word\nscenes:\n  - id: a\n    action: x\n")
    with pytest.raises(ProjectError) as err:
        load_project(folder)
    assert "project.yaml:4: output.highlight:" in str(err.value) and "subtitles: burn" in str(err.value)
    (folder / "project.yaml").write_text(
        "title: T\noutput:\n  subtitles: burn\n  highlight: word\nscenes:\n  - id: a\n    action: x\n")
    assert load_project(folder).output.highlight == "word"


@pytest.mark.slow
def test_a_burned_render_highlights_words_from_the_animatic_tts(tmp_path):
    import av
    import numpy as np

    from engines.animatic import AnimaticEngine
    from engines.base import ClipRequest
    from media.karaoke import words_key, write_words
    from media.subtitles import build_karaoke

    store = LocalStore(tmp_path / "store")
    refs = []
    for i, line in enumerate(("Hello there, my friend.", "The race is on")):
        request = ClipRequest(scene_id=f"s{i}", prompt=f"a driver waving <S>{line}<E>", width=160, height=240,
                              fps=FPS, duration=2.0, seed=i, caption_at="top")
        result = AnimaticEngine().generate(request, tmp_path / f"g{i}")
        key = store.put_file(f"clips/c{i}.mp4", result.path)
        store.put_file(words_key(key), write_words(result.meta["words"], tmp_path / f"w{i}.json"))
        refs.append(ClipRef(scene_id=f"s{i}", index=i, key=key, engine="animatic", cached=False, duration=2.0,
                            speech=line))
    profile = SMALL.model_copy(update={"subtitles": "burn", "highlight": "word"})
    normalized = [normalize_stored(r, profile, store, tmp_path / "work") for r in refs]
    assert all(n.words and n.words.words for n in normalized)        # read back from beside the clip
    edit = Edit(transition=Transition(type="crossfade", duration=0.5))
    keys = stitch_render(normalized, profile, store, tmp_path / "work", "renders/t/1", edit)
    timeline = keys["timeline"]
    for (start, end, _text, line), event in zip(timeline.spoken_cues(), build_karaoke(timeline.spoken_cues())):
        words, ticks, lead = _karaoke(event.text)
        assert len(words) == len(line.words) and lead + sum(ticks) == round((end - start) * 100)
        assert lead == round(line.words[0].start * 100)                    # the 0.3 s lead-in before the line
    with av.open(str(store.path(keys["video"]))) as c:
        frames = [f.to_ndarray(format="rgb24").astype(float) for f in c.decode(video=0)]
    assert len(frames) == timeline.frames
    band = slice(240 * 2 // 3, 240)
    # The line's words turn yellow as they are spoken: none before the lead-in, some by 1.25 s.
    def yellow(frame):
        r, g, b = frame[band, :, 0], frame[band, :, 1], frame[band, :, 2]
        return int(((r > 150) & (g > 120) & (b < 100)).sum())
    assert yellow(frames[2]) == 0 and yellow(frames[15]) > 20, (yellow(frames[2]), yellow(frames[15]))
