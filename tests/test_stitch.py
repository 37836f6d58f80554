"""Normalising and stitching real clips with real ffmpeg: exact profile, exact sync, loudness."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from media import ffmpeg

from media.probe import audio_samples, probe
from media.whitelist import DEMUXERS
from media.loudness import integrated_loudness, loudnorm_filter
from media.stitch import concat_list, filter_escape, normalize_args
from media.probe import MediaInfo
from projects.schema import Output
from storage import LocalStore
from tasks.models import ClipRef
from tasks.stitch import normalize_stored, stitch_render
from tests.media import audio_pcm, beep_onsets, flash_onsets, frame_luma, marked_clip

PROFILE = Output(width=576, height=896, fps=24, audio_rate=48000, fit="pad", loudness=-14, subtitles="srt")

# What reference 003 mixes: Ovi's 576x896 @ 24 with 16 kHz mono audio, a 960x960 @ 25 clip,
# and silent real-camera B-roll at 720x720 @ 24.
SHAPES = [
    dict(width=576, height=896, fps=24, seconds=5.0, audio_rate=16000, channels=1),
    dict(width=960, height=960, fps=25, seconds=4.0, audio_rate=48000, channels=2),
    dict(width=720, height=720, fps=24, seconds=3.0, audio_rate=None),
    dict(width=576, height=896, fps=24, seconds=2.5, audio_rate=44100, channels=2),
]


@pytest.fixture(scope="module")
def mixed_clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("mixed")
    return [marked_clip(folder / f"clip{i}.mp4", **shape) for i, shape in enumerate(SHAPES)]


@pytest.fixture(scope="module")
def stitched(mixed_clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("stitch")
    store = LocalStore(root / "store")
    refs = []
    for i, path in enumerate(mixed_clips):
        key = store.put_file(f"footage/clip{i}.mp4", path)
        refs.append(ClipRef(scene_id=f"s{i}", index=i, key=key, engine=None, cached=False,
                            duration=None, speech=f"line number {i}"))
    normalized = [normalize_stored(r, PROFILE, store, root / "work") for r in refs]
    keys = stitch_render(normalized, PROFILE, store, root / "work", "renders/t/1")
    return store, normalized, keys


@pytest.mark.slow
def test_each_normalized_clip_has_exact_frames_and_samples(stitched):
    store, normalized, _ = stitched
    for ref, shape in zip(normalized, SHAPES):
        path = store.path(ref.key)
        info = probe(path, count_frames=True)
        expected_frames = round(shape["seconds"] * 24)
        assert (info.width, info.height, info.fps) == (576, 896, 24.0)
        assert info.video_frames == ref.frames == expected_frames
        assert (info.audio_rate, info.audio_channels) == (48000, 2)
        assert audio_samples(path) == expected_frames * 2000  # 48000 / 24 samples per frame


def test_final_video_matches_profile_and_total_length(stitched):
    store, normalized, keys = stitched
    info = probe(store.path(keys["video"]), count_frames=True)
    total_frames = sum(r.frames for r in normalized)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height, info.fps) == (576, 896, 24.0)
    assert (info.audio_rate, info.audio_channels) == (48000, 2)
    assert info.video_frames == total_frames
    assert info.audio_duration == pytest.approx(total_frames / 24, abs=1 / 24)
    assert keys["duration"] == pytest.approx(total_frames / 24)


def test_audio_and_video_agree_at_every_join_and_the_end(stitched):
    store, normalized, keys = stitched
    final = store.path(keys["video"])
    luma, fps = frame_luma(final)
    pcm, rate = audio_pcm(final)
    flashes = flash_onsets(luma, fps)
    beeps = beep_onsets(pcm, rate)
    starts = [0.0]
    for ref in normalized[:-1]:
        starts.append(starts[-1] + ref.frames / 24)
    # Each clip's flash lands exactly on its join.
    assert flashes == pytest.approx(starts, abs=0.5 / 24)
    # The beep of every clip that has audio lands within one frame of its flash.
    with_audio = [s for s, shape in zip(starts, SHAPES) if shape["audio_rate"]]
    assert len(beeps) == len(with_audio)
    for beep, start in zip(beeps, with_audio):
        assert abs(beep - start) <= 1 / 24, (beep, start)
    # And the audio ends with the video.
    assert abs(len(pcm) / rate - len(luma) / fps) <= 1 / 24


def test_loudness_is_within_one_lu_of_target(stitched):
    store, _, keys = stitched
    assert integrated_loudness(store.path(keys["video"])) == pytest.approx(-14, abs=1.0)


def test_subtitle_cues_start_on_clip_boundaries(stitched):
    import pysubs2

    store, normalized, keys = stitched
    subs = pysubs2.load(str(store.path(keys["subtitles"])))
    starts, t = [], 0.0
    for ref in normalized:
        starts.append(t)
        t += ref.frames / 24
    assert [e.start / 1000 for e in subs] == pytest.approx(starts, abs=1 / 24)
    assert [e.text for e in subs] == [f"line number {i}" for i in range(4)]
    assert store.exists(keys["contact_sheet"])


def test_crop_fit_fills_the_frame(mixed_clips, tmp_path):
    profile = PROFILE.model_copy(update={"fit": "crop", "width": 320, "height": 320})
    store = LocalStore(tmp_path / "s")
    key = store.put_file("footage/wide.mp4", mixed_clips[0])
    ref = ClipRef(scene_id="w", index=0, key=key, engine=None, cached=False, duration=2.0)
    out = normalize_stored(ref, profile, store, tmp_path / "w")
    info = probe(store.path(out.key), count_frames=True)
    assert (info.width, info.height, info.video_frames) == (320, 320, 48)


def test_normalize_args_are_pure_and_pad_missing_audio():
    info = MediaInfo(path="in.mp4", duration=3, width=720, height=720, fps=24, video_codec="h264")
    args = normalize_args("in.mp4", info, PROFILE, 72, "out.mov")
    assert args[:6] == ["-protocol_whitelist", "file", "-format_whitelist", DEMUXERS, "-i", "in.mp4"]
    assert "anullsrc=r=48000:cl=stereo" in args
    graph = args[args.index("-filter_complex") + 1]
    assert "atrim=end_sample=144000" in graph and "pad=576:896" in graph
    assert "trim=end_frame=72," in graph and "-frames:v" not in args   # the graph ends the picture, not a limit


def test_silence_is_not_loudness_normalised():
    assert loudnorm_filter({"input_i": "-inf"}, PROFILE) is None


def test_filter_escape_and_concat_list_quote_paths(tmp_path):
    assert filter_escape("/a:b/it's.srt") == "/a\\:b/it\\'s.srt"
    body = concat_list([tmp_path / "it's.mov"])
    assert "it'\\''s.mov" in body


@pytest.mark.parametrize("mode", ["burn", "vtt"])
@pytest.mark.slow
def test_burned_and_vtt_subtitles(mixed_clips, tmp_path, mode):
    import av

    profile = PROFILE.model_copy(update={"width": 320, "height": 480, "subtitles": mode})
    store = LocalStore(tmp_path / "s")
    key = store.put_file("footage/a.mp4", mixed_clips[2])          # the silent 720x720 clip
    ref = ClipRef(scene_id="a", index=0, key=key, engine=None, cached=False, duration=2.0,
                  speech="Hello burned world")
    keys = stitch_render([normalize_stored(ref, profile, store, tmp_path / "w")], profile, store,
                         tmp_path / "w", "renders/x/1")
    with av.open(str(store.path(keys["video"]))) as c:
        frame = [f.to_ndarray(format="gray") for f in c.decode(c.streams.video[0])][30]
    text_rows = frame[-frame.shape[0] // 6:]                       # where subtitles sit
    if mode == "burn":
        assert keys["subtitles"].endswith(".srt") and text_rows.max() > 200
    else:
        assert keys["subtitles"].endswith(".vtt") and text_rows.max() < 40
        assert store.path(keys["subtitles"]).read_text().startswith("WEBVTT")


def test_footage_at_its_own_length_is_normalised_once(mixed_clips, tmp_path, monkeypatch):
    import media.stitch as media_stitch

    store = LocalStore(tmp_path / "s")
    key = store.put_file("footage/own.mp4", mixed_clips[3])
    ref = ClipRef(scene_id="own", index=0, key=key, engine=None, cached=False, duration=None)
    first = normalize_stored(ref, PROFILE, store, tmp_path / "w")
    runs = []
    original = media_stitch.normalize_clip
    monkeypatch.setattr(media_stitch, "normalize_clip", lambda *a, **kw: runs.append(a) or original(*a, **kw))
    again = normalize_stored(ref, PROFILE, store, tmp_path / "w")
    assert runs == [] and again == first and first.frames == 60     # 2.5 s at 24 fps

    # A clip kept with no frames (older versions stored an empty normalisation) is made again.
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    store.put_file(first.key, empty, {"scene": "own", "source": key, "frames": "0", "true_peak": "-inf"})
    remade = normalize_stored(ref, PROFILE, store, tmp_path / "w")
    assert len(runs) == 1 and remade == first and store.metadata(first.key)["frames"] == "60"


@pytest.mark.slow
def test_peaky_audio_is_limited_to_the_true_peak_ceiling_at_the_target_loudness(tmp_path):
    """Quiet tone with full-scale bursts: the gain to -14 LUFS would put peaks near +15 dBFS."""
    from media import ffmpeg
    from media.loudness import true_peak

    src = tmp_path / "peaky.mp4"
    tone = "if(lt(mod(t\\,1)\\,0.02)\\,0.99*sin(2*PI*1000*t)\\,0.05*sin(2*PI*300*t))"
    ffmpeg.run(["-f", "lavfi", "-i", "testsrc2=s=64x96:r=24:d=3", "-f", "lavfi",
                "-i", f"aevalsrc={tone}:s=48000:d=3", "-c:v", "libx264", "-preset", "ultrafast",
                "-c:a", "aac", "-shortest", str(src)])
    profile = PROFILE.model_copy(update={"width": 64, "height": 96})
    store = LocalStore(tmp_path / "store")
    ref = ClipRef(scene_id="p", index=0, key=store.put_file("footage/peaky.mp4", src), engine=None, cached=False,
                  duration=3.0, speech="peaks")
    keys = stitch_render([normalize_stored(ref, profile, store, tmp_path / "w")], profile, store, tmp_path / "w",
                         "renders/p/1")
    final = store.path(keys["video"])
    assert true_peak(final) <= -1.0
    assert integrated_loudness(final) == pytest.approx(-14, abs=1.0)


def test_loudness_filter_is_a_gain_and_limits_only_when_peaks_would_pass_the_ceiling():
    from media.loudness import loudness_filter

    assert loudness_filter({"input_i": "-20.0", "input_tp": "-12.0"}, PROFILE) == "volume=6.00dB"
    # the ceiling, -1 dBTP, less a 1.5 dB margin for the AAC encode: -2.5 dBFS
    limited = loudness_filter({"input_i": "-20.0", "input_tp": "-5.0"}, PROFILE)
    assert limited.startswith("volume=6.00dB,aresample=192000,alimiter=limit=0.74989:")
    assert limited.endswith(",aresample=48000") and "level=false" in limited and "latency=true" in limited


@pytest.mark.parametrize("video_delay, audio_delay", [(0.5, 0.0), (0.0, 0.5)])
def test_streams_that_start_at_different_times_come_out_in_sync(tmp_path, video_delay, audio_delay):
    """A flash (video) and a beep (audio) that a player shows together at t=1.0 s, in a file
    whose video (or audio) stream starts 0.5 s after the other: still together after normalising."""
    from media import ffmpeg
    from media.stitch import normalize_clip

    shape = dict(width=64, height=96, fps=24, seconds=3.0)
    video = marked_clip(tmp_path / "v.mp4", **shape, audio_rate=None, at=1.0 - video_delay)
    audio = marked_clip(tmp_path / "a.mp4", **shape, at=1.0 - audio_delay)
    src = tmp_path / "offset.mp4"
    ffmpeg.run(["-itsoffset", str(video_delay), "-i", str(video), "-itsoffset", str(audio_delay), "-i", str(audio),
                "-map", "0:v", "-map", "1:a", "-c", "copy", str(src)])
    profile = PROFILE.model_copy(update={"width": 64, "height": 96})
    out = tmp_path / "n.mov"
    normalize_clip(src, out, profile, 3.0)
    luma, fps = frame_luma(out)
    pcm, rate = audio_pcm(out)
    [flash] = flash_onsets(luma, fps)
    [beep] = beep_onsets(pcm, rate)
    assert flash == pytest.approx(1.0, abs=1.5 / fps)
    assert beep == pytest.approx(flash, abs=1 / fps)


@pytest.mark.slow
def test_joining_by_copy_matches_the_decoding_join_sample_for_sample(stitched, mixed_clips, tmp_path):
    """With each clip's true peak kept from its normalisation, the audio is copied out of the
    clips (read from their sample tables, one clip's sound still raw PCM from its first run) and
    only its loudness measured: the same samples, the same loudness and (clips fade at their
    ends, so no join adds a peak) the same true peak as decoding and measuring the join."""
    from media.probe import probe
    from media.stitch import join_audio, join_parts, sound_args

    store, normalized, _keys = stitched
    assert all(n.true_peak is not None for n in normalized)
    paths = [store.path(n.key) for n in normalized]
    listing = tmp_path / "clips.ffconcat"
    listing.write_text(concat_list(paths))
    total = sum(PROFILE.samples_for(n.frames) for n in normalized)
    decoded = join_audio(str(listing), PROFILE, total, tmp_path / "decoded.pcm")
    raw = tmp_path / "second.pcm"         # the second clip's sound as its first run makes it
    ffmpeg.run(sound_args(str(mixed_clips[1]), probe(mixed_clips[1]), PROFILE, normalized[1].frames, str(raw)))
    parts = [(p, PROFILE.samples_for(n.frames)) for p, n in zip(paths, normalized)]
    parts[1] = (raw, parts[1][1])
    copied = join_parts(parts, PROFILE, total, tmp_path / "copied.pcm", [n.true_peak for n in normalized])
    assert (tmp_path / "copied.pcm").read_bytes() == (tmp_path / "decoded.pcm").read_bytes()
    assert (tmp_path / "copied.pcm").stat().st_size == total * 4
    assert float(copied["input_i"]) == pytest.approx(float(decoded["input_i"]), abs=0.05)
    assert float(copied["input_tp"]) == pytest.approx(float(decoded["input_tp"]), abs=0.05)


@pytest.mark.slow
def test_the_sound_made_first_is_the_one_run_normalisation_s(mixed_clips, tmp_path):
    """normalize_clip makes a clip's sound in a first run and hands it over before encoding the
    picture: that PCM is the finished clip's, sample for sample, and the same as one run of
    normalize_args makes (sound and picture together)."""
    from media.mov_pcm import copy_pcm
    from media.stitch import normalize_args, normalize_clip

    src = mixed_clips[0]
    heard = []
    info, made = normalize_clip(src, tmp_path / "two.mov", PROFILE,
                                heard=lambda sound: heard.append((sound.pcm.read_bytes(), sound.true_peak, sound.frames)))
    [(sound, tp, frames)] = heard
    assert (tp, frames) == (made.true_peak, info.video_frames)
    ffmpeg.run(normalize_args(str(src), probe(src), PROFILE, frames, str(tmp_path / "one.mov")))
    two, one = io.BytesIO(), io.BytesIO()
    copy_pcm(tmp_path / "two.mov", two, PROFILE.samples_for(frames))
    copy_pcm(tmp_path / "one.mov", one, PROFILE.samples_for(frames))
    assert sound == two.getvalue() == one.getvalue()
    assert probe(tmp_path / "one.mov", count_frames=True).video_frames == frames


@pytest.mark.slow
def test_a_cut_s_loudness_from_its_clips_blocks_is_the_measured_one(stitched, mixed_clips, tmp_path):
    """Each clip's loudness blocks, measured when its sound is made (a silent clip has none over
    the gate), give the cut's integrated loudness without measuring the joined audio: within
    0.1 LU of ebur128 on the join, though each of these clips' sound is a beep at its very start
    (the blocks across the joins decide it)."""
    from media import gating
    from media.loudness import SILENT_PEAK
    from media.stitch import join_audio, join_parts, sound_args

    store, normalized, _keys = stitched
    blocks = []
    for i, (src, n) in enumerate(zip(mixed_clips, normalized)):
        kept = tmp_path / f"{i}.blocks"
        ffmpeg.run(sound_args(str(src), probe(src), PROFILE, n.frames, str(tmp_path / f"{i}.pcm"), str(kept)))
        blocks.append(gating.read_blocks(kept, 48000, PROFILE.samples_for(n.frames)))
        assert len(blocks[-1].blocks) == PROFILE.samples_for(n.frames) // 4800 - 3
        if n.true_peak <= SILENT_PEAK:
            assert max(blocks[-1].head + blocks[-1].blocks + blocks[-1].tail) < gating.ABSOLUTE_GATE
    paths = [store.path(n.key) for n in normalized]
    listing = tmp_path / "clips.ffconcat"
    listing.write_text(concat_list(paths))
    total = sum(PROFILE.samples_for(n.frames) for n in normalized)
    measured = join_audio(str(listing), PROFILE, total, tmp_path / "decoded.pcm")
    parts = [(p, PROFILE.samples_for(n.frames)) for p, n in zip(paths, normalized)]
    computed = join_parts(parts, PROFILE, total, tmp_path / "copied.pcm", [n.true_peak for n in normalized],
                          blocks=blocks)
    assert float(computed["input_i"]) == pytest.approx(float(measured["input_i"]), abs=0.1)


def test_gating_blocks_give_ebur128_s_integrated_loudness(tmp_path):
    """media.gating on a tone that gets quieter and then falls silent: the same integrated
    loudness as ebur128's own (the quiet part under the relative gate, silence under the absolute)."""
    from media import gating
    from media.loudness import measure_loudness

    shape = "volume='if(lt(t,3),0.5,if(lt(t,4.5),0.02,0))':eval=frame"
    pcm, kept = tmp_path / "tone.pcm", tmp_path / "tone.blocks"
    ffmpeg.run(["-f", "lavfi", "-i", "sine=f=997:r=48000:d=6", "-filter_complex",
                f"[0:a]{shape},asplit=2[a][t];[t]{gating.meter(str(kept), 48000)}[m]",
                "-map", "[a]", "-f", "s16le", "-ac", "2", str(pcm), "-map", "[m]", "-f", "null", "-"])
    blocks = gating.read_blocks(kept, 48000, 6 * 48000)
    assert (len(blocks.head), len(blocks.blocks), len(blocks.tail)) == (3, 57, 3)
    assert blocks.blocks[-1] < gating.ABSOLUTE_GATE
    expected = float(measure_loudness(["-f", "s16le", "-ar", "48000", "-ac", "2", "-i", str(pcm)], PROFILE)["input_i"])
    assert gating.cut_loudness([blocks]) == pytest.approx(expected, abs=0.1)
    assert gating.cut_loudness([gating.ClipBlocks.silent(10)]) == float("-inf")
    assert gating.ClipBlocks.loads(blocks.dumps()).blocks[:5] == pytest.approx(blocks.blocks[:5], abs=0.001)
    with pytest.raises(ValueError):
        gating.read_blocks(kept, 48000, 6 * 48000 + 1)       # not whole hops: measured on the join instead


def test_a_clip_whose_sound_is_not_plain_pcm_is_copied_by_ffmpeg(stitched, tmp_path):
    """A clip the sample-table reader does not take (here: AAC sound, and a file cut short) is
    refused before anything is written, and the join copies it with ffmpeg instead."""
    from media.mov_pcm import NotPlainPcm, copy_pcm
    from media.stitch import join_parts

    store, normalized, _keys = stitched
    first = store.path(normalized[0].key)
    aac = tmp_path / "aac.mov"
    ffmpeg.run(["-i", str(first), "-c:v", "copy", "-c:a", "aac", "-f", "mov", str(aac)])
    short = tmp_path / "short.mov"
    short.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    for broken in (aac, short):
        sink = io.BytesIO()
        with pytest.raises(NotPlainPcm):
            copy_pcm(broken, sink)
        assert sink.getvalue() == b""
    samples = PROFILE.samples_for(normalized[0].frames)
    twos = tmp_path / "twos.mov"          # big-endian PCM: the reader refuses it, ffmpeg decodes it
    ffmpeg.run(["-i", str(first), "-c:v", "copy", "-c:a", "pcm_s16be", "-f", "mov", str(twos)])
    join_parts([(first, samples)], PROFILE, samples, tmp_path / "plain.pcm", [0.0])
    join_parts([(twos, samples)], PROFILE, samples, tmp_path / "twos.pcm", [0.0])
    assert (tmp_path / "twos.pcm").read_bytes() == (tmp_path / "plain.pcm").read_bytes()
    assert (tmp_path / "plain.pcm").stat().st_size == samples * 4


def test_the_decoding_join_measures_the_true_peak(stitched, tmp_path):
    """A clip whose peak was not kept (a store from before) takes the decoding join, which measures it."""
    from media.stitch import join_audio

    store, normalized, _keys = stitched
    listing = tmp_path / "clips.ffconcat"
    listing.write_text(concat_list([store.path(n.key) for n in normalized[:2]]))
    total = sum(PROFILE.samples_for(n.frames) for n in normalized[:2])
    measured = join_audio(str(listing), PROFILE, total, tmp_path / "j.pcm")
    assert float(measured["input_tp"]) < 0 and (tmp_path / "j.pcm").stat().st_size == total * 4


def test_a_one_frame_clip_is_held_for_its_scene_and_an_empty_result_is_never_kept(tmp_path, monkeypatch):
    """A single frame (shorter than one output frame) came out of the fps filter with none; the
    empty file was stored as the normalised clip and the stitch failed on it at every render."""
    from media import stitch

    one = tmp_path / "one.mp4"
    ffmpeg.run(["-f", "lavfi", "-i", "testsrc=s=160x240:r=25:d=1", "-frames:v", "1", "-c:v", "libx264",
                "-pix_fmt", "yuv420p", str(one)])
    profile = Output(width=96, height=144, fps=12)
    info, _ = stitch.normalize_clip(one, tmp_path / "n.mov", profile, duration=2.0)
    assert (probe(tmp_path / "n.mov", count_frames=True).video_frames, info.has_audio) == (24, True)

    monkeypatch.setattr(stitch, "_video_out", lambda p: ["-frames:v", "5", *stitch.X264, "-c:a", "pcm_s16le",
                                                        "-f", "mov"])
    with pytest.raises(ffmpeg.FFmpegError, match=r"one\.mp4: normalising made 5 frames and \d+ audio samples "
                                                 r"where 24 frames and 96000 samples were asked$"):
        stitch.normalize_clip(one, tmp_path / "m.mov", profile, duration=2.0)
