"""Normalising and stitching real clips with real ffmpeg: exact profile, exact sync, loudness."""

from __future__ import annotations

from pathlib import Path

import pytest

from media.probe import audio_samples, probe
from media.whitelist import DEMUXERS
from media.stitch import concat_list, filter_escape, integrated_loudness, loudnorm_filter, normalize_args
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
    assert args[args.index("-frames:v") + 1] == "72"


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


@pytest.mark.slow
def test_peaky_audio_is_limited_to_the_true_peak_ceiling_at_the_target_loudness(tmp_path):
    """Quiet tone with full-scale bursts: the gain to -14 LUFS would put peaks near +15 dBFS."""
    from media import ffmpeg
    from media.stitch import true_peak

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
    from media.stitch import loudness_filter

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
def test_joining_by_copy_matches_the_decoding_join_sample_for_sample(stitched, tmp_path):
    """With each clip's true peak kept from its normalisation, the audio is copied out of the
    clips and only its loudness measured: the same samples, the same loudness and (clips fade at
    their ends, so no join adds a peak) the same true peak as decoding and measuring the join."""
    from media.stitch import join_audio

    store, normalized, _keys = stitched
    assert all(n.true_peak is not None for n in normalized)
    listing = tmp_path / "clips.ffconcat"
    listing.write_text(concat_list([store.path(n.key) for n in normalized]))
    total = sum(PROFILE.samples_for(n.frames) for n in normalized)
    decoded = join_audio(str(listing), PROFILE, total, tmp_path / "decoded.pcm")
    copied = join_audio(str(listing), PROFILE, total, tmp_path / "copied.pcm", peaks=[n.true_peak for n in normalized])
    assert (tmp_path / "copied.pcm").read_bytes() == (tmp_path / "decoded.pcm").read_bytes()
    assert (tmp_path / "copied.pcm").stat().st_size == total * 4
    assert float(copied["input_i"]) == pytest.approx(float(decoded["input_i"]), abs=0.05)
    assert float(copied["input_tp"]) == pytest.approx(float(decoded["input_tp"]), abs=0.05)


def test_a_clip_normalised_before_its_peak_was_kept_is_measured_in_the_join(stitched, tmp_path):
    """An unknown peak (a store from before) takes the decoding join, which measures it."""
    from media.stitch import join_audio

    store, normalized, _keys = stitched
    listing = tmp_path / "clips.ffconcat"
    listing.write_text(concat_list([store.path(n.key) for n in normalized[:2]]))
    total = sum(PROFILE.samples_for(n.frames) for n in normalized[:2])
    measured = join_audio(str(listing), PROFILE, total, tmp_path / "j.pcm", peaks=[normalized[0].true_peak, None])
    assert float(measured["input_tp"]) < 0 and (tmp_path / "j.pcm").stat().st_size == total * 4
