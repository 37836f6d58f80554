"""Footage as cameras and other tools write it: AVI index quirks, late streams, non-square pixels,
full-range video. Real files made by ffmpeg, measured after validation and normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines import InvalidClip
from media import ffmpeg
from media.probe import probe
from tasks.clip import validate_clip


def plain_avi(path: Path, seconds: float = 2.0) -> Path:
    """What ``ffmpeg -i x out.avi`` writes: MPEG-4 Part 2 and MP3 with ffmpeg's default settings."""
    ffmpeg.run(["-f", "lavfi", "-i", f"testsrc2=s=160x120:r=25:d={seconds}",
                "-f", "lavfi", "-i", f"sine=r=48000:d={seconds}", str(path)])
    return path


def test_a_plain_avi_is_complete_and_a_cut_one_is_truncated(tmp_path):
    avi = plain_avi(tmp_path / "a.avi")
    counted = probe(avi, count_frames=True)
    assert counted.video_codec == "mpeg4"
    assert counted.video_frames < counted.declared_frames       # the header counts an empty chunk
    assert validate_clip(avi, None).video_frames == 50
    data = avi.read_bytes()
    for share in (0.5, 0.9, 0.97):                             # the last missing frame too
        cut = tmp_path / f"cut{share}.avi"
        cut.write_bytes(data[: int(len(data) * share)])
        with pytest.raises(InvalidClip, match="truncated"):
            validate_clip(cut, None)


def test_footage_whose_picture_starts_late_keeps_its_end(tmp_path):
    """Video 2.5 s long starting 0.52 s after its 3 s of sound (its last 0.5 s white, the rest
    black): at its own length the clip runs to the picture's end on the file's timeline, 3.04 s."""
    from media.stitch import normalize_clip
    from projects.schema import Output
    from tests.media import audio_pcm, frame_luma

    src = tmp_path / "late.mp4"
    ffmpeg.run(["-itsoffset", "0.5", "-f", "lavfi", "-i", "color=c=black:s=64x48:r=25:d=2.5",
                "-f", "lavfi", "-i", "sine=r=48000:d=3",
                "-vf", "drawbox=c=white:t=fill:enable='gte(t,2.5)'",   # t counts from the offset
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(src)])
    info = probe(src)
    assert info.video_start == pytest.approx(0.52, abs=0.01) and info.video_end == pytest.approx(3.04, abs=0.01)
    out = tmp_path / "n.mov"
    normalize_clip(src, out, Output(width=64, height=48, fps=25, audio_rate=48000), None)
    luma, fps = frame_luma(out)
    pcm, rate = audio_pcm(out)
    assert len(luma) == 76 and len(pcm) == 76 * 48000 // 25
    white = [i for i, v in enumerate(luma) if v > 128]
    assert len(white) >= 12 and white == list(range(white[0], 76))    # the source's last 0.5 s, to the end
    assert abs(pcm[int(2.9 * rate):int(2.95 * rate)]).max() > 0.05     # its sound, up to its end


def _normalised_first_frame(src: Path, tmp_path: Path, **output):
    from media.stitch import normalize_clip
    from projects.schema import Output

    out = tmp_path / f"{src.stem}-n.mov"
    normalize_clip(src, out, Output(fps=25, audio_rate=48000, **output), 1.0)
    import av

    with av.open(str(out)) as c:
        return next(c.decode(video=0))


def _red_box(frame) -> tuple[int, int, int, int]:
    """First and last column and row of the red picture in ``frame``."""
    import numpy as np

    rgb = frame.to_ndarray(format="rgb24").astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 80)
    cols, rows = np.flatnonzero(red.any(axis=0)), np.flatnonzero(red.any(axis=1))
    return int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])


@pytest.mark.parametrize("size, sar, output, fit, box", [
    ("720x576", "64/45", (320, 180), "pad", (0, 319, 0, 179)),     # PAL 16:9 fills a 16:9 frame
    ("720x480", "8/9", (320, 240), "pad", (0, 319, 0, 239)),       # NTSC 4:3 fills a 4:3 frame
    ("720x576", "64/45", (320, 240), "pad", (0, 319, 30, 209)),    # 16:9 in 4:3: bars top and bottom
])
def test_anamorphic_footage_is_fitted_by_its_display_shape(tmp_path, size, sar, output, fit, box):
    src = tmp_path / "anamorphic.mp4"
    ffmpeg.run(["-f", "lavfi", "-i", f"color=c=red:s={size}:r=25:d=1", "-vf", f"setsar={sar}",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(src)])
    frame = _normalised_first_frame(src, tmp_path, width=output[0], height=output[1], fit=fit)
    assert (frame.width, frame.height) == output
    found = _red_box(frame)
    assert all(abs(a - b) <= 1 for a, b in zip(found, box)), found


def test_the_storyboard_frame_of_anamorphic_footage_has_its_display_shape(tmp_path):
    from media.stitch import middle_frame

    src = tmp_path / "pal.mp4"
    ffmpeg.run(["-f", "lavfi", "-i", "color=c=red:s=720x576:r=25:d=1", "-vf", "setsar=64/45",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(src)])
    assert middle_frame(src, fit=(320, 320)).size == (320, 180)


@pytest.mark.parametrize("codec", [["-c:v", "mjpeg", "-q:v", "2"],                 # yuvj420p, as cameras write
                                   ["-c:v", "libx264", "-color_range", "pc"]])   # H.264 flagged full range
def test_full_range_footage_is_normalised_to_limited_range(tmp_path, codec):
    """White and black halves at full range (0-255) come out as limited-range white and black."""
    src = tmp_path / ("full.mkv" if "mjpeg" in codec else "full.mp4")
    ffmpeg.run(["-f", "lavfi", "-i", "color=c=white:s=64x48:r=25:d=1", "-f", "lavfi", "-i",
                "color=c=black:s=64x48:r=25:d=1", "-filter_complex", "[0][1]hstack,format=yuvj420p", *codec, str(src)])
    frame = _normalised_first_frame(src, tmp_path, width=128, height=48)
    luma = frame.to_ndarray(format="yuv420p")[:48]
    assert frame.format.name == "yuv420p" and frame.color_range != 2      # not JPEG (full) range
    assert abs(int(luma[24, 16]) - 235) <= 2 and abs(int(luma[24, 112]) - 16) <= 2


def recorded_webm(path: Path, seconds: float = 3.0) -> Path:
    """What a browser's MediaRecorder (or a live recording) writes: WebM with no length in its header."""
    ffmpeg.run(["-f", "lavfi", "-i", f"testsrc2=d={seconds}:s=160x288:r=12", "-f", "lavfi", "-i",
                f"sine=d={seconds}:sample_rate=48000", "-shortest", "-c:v", "libvpx", "-b:v", "200k",
                "-c:a", "libopus", "-live", "1", "-f", "webm", str(path)])
    return path


def test_footage_with_no_length_in_its_header_is_measured_not_cut_to_a_frame(small_project, isolated_storage):
    """It probed as 0 s long: a footage scene took that length and became one frame (and a
    4000 s recording passed the footage limit)."""
    import yaml

    from flows.local import render_local

    clips = small_project / "clips"
    clips.mkdir()
    webm = recorded_webm(clips / "rec.webm")
    info = probe(webm)
    assert info.duration == pytest.approx(3.0, abs=0.05) and info.video_end == pytest.approx(3.0, abs=0.05)
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["scenes"].append({"id": "rec", "footage": "clips/rec.webm", "speech": "Footage here."})
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = render_local(str(small_project))
    assert probe(result.video, count_frames=True).video_frames == 3 * 18 + 36


@pytest.mark.parametrize("field, value", [("audio", "voice.wav"), ("engine", {"name": "animatic"}), ("seed", 3),
                                          ("atmosphere", "rain"),
                                          ("speaker2", {"character": "max", "speech": "Hi."})])
def test_what_a_footage_scene_would_ignore_is_refused_by_validate(small_project, field, value):
    """A footage scene's `audio` (a voice-over) was accepted and silently left out of the video."""
    import yaml
    from typer.testing import CliRunner

    from reelflow.cli import app

    (small_project / "clips").mkdir()
    recorded_webm(small_project / "clips" / "rec.webm", 1.0)
    if field == "audio":
        ffmpeg.run(["-f", "lavfi", "-i", "sine=d=1:sample_rate=48000", str(small_project / "voice.wav")])
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["scenes"].append({"id": "rec", "footage": "clips/rec.webm", "speech": "Hello.", field: value})
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = CliRunner().invoke(app, ["validate", str(small_project)])
    assert result.exit_code == 2, result.output
    assert f"scenes[3].{field}: a footage scene" in result.output, result.output
