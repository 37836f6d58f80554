"""Frames from a pipeline straight into the encoder: raw rgb24 through ffmpeg's stdin, no image files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

from engines.clip_audio import Soundtrack
from media import ffmpeg
from media.soundtrack import ENCODE_ARGS

CHUNK_FRAMES = 8


def as_uint8_frames(frames):
    """Pipeline frames -> uint8 frames x height x width x 3 (numpy, or a tensor on its device).

    Takes what diffusers returns: float numpy (frames, H, W, 3) for ``output_type="np"``, or a
    float tensor (frames, 3, H, W) for ``"pt"``, converted where it is (on the GPU for "pt")."""
    if hasattr(frames, "permute"):                  # torch: convert on its device, then move uint8 only
        import torch

        if frames.ndim == 4 and frames.shape[1] in (1, 3) and frames.shape[-1] not in (1, 3):
            frames = frames.permute(0, 2, 3, 1)
        return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    import numpy as np

    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def _chunks(frames, count: int) -> Iterator[bytes]:
    for start in range(0, count, CHUNK_FRAMES):
        block = frames[start:min(count, start + CHUNK_FRAMES)]
        block = block.cpu().numpy() if hasattr(block, "cpu") else block
        yield block.tobytes()


def encode_args(width: int, height: int, rate: Fraction, sound: Soundtrack, out: Path) -> list[str]:
    """ffmpeg arguments: raw rgb24 frames on stdin (input 0) plus the soundtrack -> H.264/AAC (pure)."""
    r = f"{rate.numerator}/{rate.denominator}"
    audio = list(ENCODE_ARGS)
    audio[audio.index("-ar") + 1] = str(sound.rate)
    audio[audio.index("-ac") + 1] = str(sound.channels)
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", r, "-i", "pipe:0",
            *sound.args, "-filter_complex", ";".join(["[0:v]format=yuv420p,setsar=1[v]", *sound.graph]),
            "-map", "[v]", "-map", "[a]", "-r", r, *audio, str(out)]     # the pipe holds the frames: no -frames:v
                                                                          # (that limit cut the sound short at 29.97)


def write_clip(frames, count: int, rate: Fraction, sound: Soundtrack, out: Path) -> Path:
    """Encode the first ``count`` uint8 frames with ``sound`` into ``out``, piping the frames."""
    height, width = int(frames.shape[1]), int(frames.shape[2])
    ffmpeg.run_piped(encode_args(width, height, rate, sound, out), _chunks(frames, count))
    return out
