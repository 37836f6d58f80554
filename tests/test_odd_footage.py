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
