"""Frames straight into ffmpeg: raw rgb24 on stdin, typed errors, exact frame counts."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from engines.clip_audio import Soundtrack, model_soundtrack
from engines.errors import InvalidClip
from engines.frame_writer import as_uint8_frames, encode_args, write_clip
from media.ffmpeg import FFmpegError, run_piped
from media.probe import probe
from media.soundtrack import AUDIO_RATE, soundtrack_args


def bed(seconds: float) -> Soundtrack:
    args, graph = soundtrack_args(1, None, False, 0, round(seconds * AUDIO_RATE))
    return Soundtrack(args, graph, AUDIO_RATE, 2, "bed")


def test_encode_args_read_raw_frames_from_stdin():
    args = encode_args(64, 32, Fraction(24), bed(10 / 24), "out.mp4")
    assert args[:10] == ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x32", "-framerate", "24/1", "-i", "pipe:0"]
    assert "-frames:v" not in args and args[args.index("-ar") + 1] == str(AUDIO_RATE)   # the pipe holds the frames


def test_frames_are_piped_into_an_exact_clip_without_image_files(tmp_path):
    floats = np.random.default_rng(0).random((13, 32, 48, 3), dtype=np.float32)
    frames = as_uint8_frames(floats)
    assert frames.dtype == np.uint8 and frames.shape == (13, 32, 48, 3)
    out = write_clip(frames, 12, Fraction(24), bed(0.5), tmp_path / "clip.mp4")
    info = probe(out, count_frames=True)
    assert (info.video_frames, info.width, info.height) == (12, 48, 32)
    assert info.audio_duration == pytest.approx(0.5, abs=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_torch_frames_are_converted_where_they_are():
    import torch

    frames = as_uint8_frames(torch.rand(5, 3, 16, 24))          # output_type="pt": frames x C x H x W
    assert frames.dtype == torch.uint8 and tuple(frames.shape) == (5, 16, 24, 3)


def test_a_failing_piped_ffmpeg_is_a_typed_error_with_its_stderr(tmp_path):
    with pytest.raises(FFmpegError, match="ffmpeg exited") as info:
        run_piped(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "8x8", "-i", "pipe:0", "-c:v", "no-such-codec",
                   str(tmp_path / "x.mp4")], iter([bytes(8 * 8 * 3)] * 50))
    assert "no-such-codec" in info.value.stderr or "Unknown encoder" in info.value.stderr


def test_model_audio_far_shorter_than_the_clip_is_invalid(tmp_path):
    audio = np.zeros((2, 12000), dtype=np.float32)               # 0.5 s at 24 kHz for a 1 s clip
    with pytest.raises(InvalidClip, match="the model's audio is 0.500 s long, the clip needs 1.000 s"):
        model_soundtrack(1, audio, 24000, 1.0, tmp_path, "s1")
    sound = model_soundtrack(1, np.zeros((2, 23000)), 24000, 1.0, tmp_path, "s1")   # 42 ms short: padded
    assert (sound.rate, sound.channels, sound.source) == (24000, 2, "model")
