"""Frame rates that are not whole numbers: NTSC rates are exact, and every clip keeps its sound.

At 30000/1001 and 60000/1001, ffmpeg's ``-frames:v`` ended the normalised clip's file 70-80 ms
before its sound did: the clip was stored short, every later render of it failed on the join,
and a crossfade after it played the sound early. And ``fps: 29.97`` meant 2997/100, a rate no
editor knows, so no EDL was written.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from media import ffmpeg
from media.profile import exact_rate
from projects.schema import Output
from tests.media import audio_pcm, beep_onsets, flash_onsets, frame_luma, marked_clip, tone_clip


def _counts(path) -> tuple[int, int]:
    import av

    with av.open(str(path)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    return frames, samples


@pytest.mark.parametrize("fps, rate", [
    (29.97, Fraction(30000, 1001)), (23.976, Fraction(24000, 1001)), (23.98, Fraction(24000, 1001)),
    (59.94, Fraction(60000, 1001)), (30000 / 1001, Fraction(30000, 1001)), (119.88, Fraction(120000, 1001)),
    (30, Fraction(30)), (24, Fraction(24)), (5, Fraction(5)), (12.5, Fraction(25, 2)), (29.9, Fraction(299, 10)),
    (23.97, Fraction(24000, 1001)), (59.9, Fraction(599, 10)), (23.96, Fraction(599, 25)),
])
def test_ntsc_rates_are_exact_as_people_write_them(fps, rate):
    assert exact_rate(fps) == rate
    assert Output(fps=fps).rate == rate


@pytest.mark.parametrize("output, field", [({"fps": 0.001}, "output.fps"), ({"fps": 0.5}, "output.fps"),
                                           ({"audio_rate": 192000}, "output.audio_rate"),
                                           ({"audio_rate": 176400}, "output.audio_rate")])
def test_rates_a_video_cannot_have_are_refused_at_validate(small_project, output, field):
    """fps 0.001 became a rate of 0 (a division by zero in every clip), and 192 kHz was delivered
    as 96 kHz without a word (the AAC encoder's limit): both are bad input, one line."""
    import yaml
    from typer.testing import CliRunner

    from reelflow.cli import app

    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["output"].update(output)
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = CliRunner().invoke(app, ["validate", str(small_project)])
    assert result.exit_code == 2 and f"project.yaml:" in result.output and f": {field}: " in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("fps", [29.97, 60000 / 1001, 24, 25])
@pytest.mark.parametrize("audio_rate", [48000, 44100])
def test_a_normalised_clip_has_every_sample_of_its_frames(tmp_path, fps, audio_rate):
    from media.stitch import normalize_clip

    src = tone_clip(tmp_path / "src.mov", fps=25, seconds=3)
    profile = Output(width=96, height=144, fps=fps, audio_rate=audio_rate)
    for seconds in (1.1, 2.2):
        frames = profile.frames_for(seconds)
        normalize_clip(src, tmp_path / "n.mov", profile, seconds)
        assert _counts(tmp_path / "n.mov") == (frames, profile.samples_for(frames))


def test_a_normalised_clip_whose_sound_is_short_is_refused(tmp_path):
    from media.stitch import check_normalized

    short = tmp_path / "short.mov"
    ffmpeg.run(["-f", "lavfi", "-i", "color=c=gray:s=96x144:r=12:d=1", "-f", "lavfi", "-i",
                "anullsrc=r=48000:cl=stereo", "-t", "1", "-af", "atrim=end_sample=40000",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", str(short)])
    profile = Output(width=96, height=144, fps=12)
    with pytest.raises(ffmpeg.FFmpegError, match="normalising made 12 frames and 40000 audio samples where "
                                                 "12 frames and 48000 samples were asked"):
        check_normalized("clip.mp4", short, profile, 12)


@pytest.mark.slow
def test_a_29_97_cut_with_crossfades_keeps_sync_renders_again_and_has_an_edl(tmp_path):
    import opentimelineio as otio

    from media.timeline import Edit, Transition
    from tests.cut_helpers import _stitch

    profile = Output(width=96, height=144, fps=29.97, subtitles="srt")
    paths = [marked_clip(tmp_path / f"m{i}.mp4", width=120, height=120, fps=25, seconds=s, at=0.8)
             for i, s in enumerate([1.2, 1.4, 1.6])]
    edit = Edit(transition=Transition(type="crossfade", duration=0.3))
    for attempt in range(2):                 # the second stitch reuses the stored normalised clips
        store, normalized, keys = _stitch(paths, tmp_path, edit, profile)
        assert [n.frames for n in normalized] == [36, 42, 48]
    timeline = keys["timeline"]
    final = store.path(keys["video"])
    luma, fps = frame_luma(final)
    pcm, rate = audio_pcm(final)
    assert (len(luma), fps) == (timeline.frames, pytest.approx(30000 / 1001))
    assert abs(len(pcm) / rate - timeline.frames / fps) <= 1 / fps
    flashes, beeps = flash_onsets(luma, fps), beep_onsets(pcm, rate)
    assert len(flashes) == len(beeps) == 3
    for flash, beep in zip(flashes, beeps):
        assert abs(flash - beep) <= 1 / fps, (flashes, beeps)
    edl = otio.adapters.read_from_file(str(store.path(keys["edl"])), adapter_name="cmx_3600", rate=30000 / 1001)
    assert len(list(edl.find_clips())) == 3
    assert not timeline.warnings
