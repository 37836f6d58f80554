"""Test media made with ffmpeg's lavfi sources, and measurements of what a video contains."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from media import ffmpeg


def marked_clip(path: Path, *, width: int, height: int, fps: float, seconds: float,
                audio_rate: int | None = 48000, channels: int = 2, flash: float = 0.12, at: float = 0.0) -> Path:
    """Black video with a white flash at t=``at`` and, if it has audio, a 1 kHz beep at the same time.

    The flash and the beep mark each clip (its start by default) so sync can be measured
    after stitching.
    """
    args = ["-f", "lavfi", "-i", f"color=c=black:s={width}x{height}:r={fps}:d={seconds}"]
    vf = f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='between(t,{at},{at + flash - 1e-6})'"
    if audio_rate:
        layout = "stereo" if channels == 2 else "mono"
        args += ["-f", "lavfi", "-i", f"sine=f=1000:sample_rate={audio_rate}:d={seconds}"]
        af = f"volume='if(between(t,{at},{at + flash - 1e-6}),0.8,0)':eval=frame,aformat=channel_layouts={layout}"
        args += ["-vf", vf, "-af", af, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                 "-c:a", "aac", "-ar", str(audio_rate), "-ac", str(channels), str(path)]
    else:
        args += ["-vf", vf, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    ffmpeg.run(args)
    return path


def frame_luma(path: Path) -> tuple[np.ndarray, float]:
    """Mean luma of every frame, and the stream's fps."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        values = [frame.to_ndarray(format="gray").mean() for frame in c.decode(stream)]
        return np.array(values), float(stream.average_rate)


def audio_pcm(path: Path) -> tuple[np.ndarray, int]:
    """Decoded audio as a float mono array (channels averaged) and its rate."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        chunks = []
        for frame in c.decode(stream):
            data = frame.to_ndarray()
            if data.ndim == 2 and not frame.format.is_planar:  # packed: (1, samples*channels)
                data = data.reshape(-1, frame.layout.nb_channels).T
            chunks.append(data.astype(np.float64).mean(axis=0))
        return np.concatenate(chunks), stream.rate


def onsets(signal: np.ndarray, threshold: float) -> list[int]:
    """Indices where ``signal`` rises above ``threshold``."""
    above = signal > threshold
    return [int(i) for i in np.flatnonzero(above[1:] & ~above[:-1]) + 1] + ([0] if above[0] else [])


def beep_onsets(pcm: np.ndarray, rate: int, window: float = 0.002) -> list[float]:
    n = max(1, int(rate * window))
    usable = len(pcm) // n * n
    rms = np.sqrt((pcm[:usable].reshape(-1, n) ** 2).mean(axis=1))
    return sorted(i * window for i in onsets(rms, 0.05))


def flash_onsets(luma: np.ndarray, fps: float) -> list[float]:
    return sorted(i / fps for i in onsets(luma, 128))


def tone_clip(path: Path, *, width: int = 160, height: int = 240, fps: float = 12, seconds: float = 1.0,
              freq: float = 440, amplitude: float = 0.5, color: str = "gray") -> Path:
    """A plain clip with a steady tone from its first sample to its last (cut mid-cycle)."""
    ffmpeg.run([
        "-f", "lavfi", "-i", f"color=c={color}:s={width}x{height}:r={fps}:d={seconds}",
        "-f", "lavfi", "-i", f"sine=f={freq}:sample_rate=48000:d={seconds}",
        "-af", f"volume={amplitude * 8:.4f},aformat=channel_layouts=stereo",   # sine= is 1/8 full scale
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "pcm_s16le", "-ar", "48000", "-ac", "2", "-shortest", str(path),
    ])
    return path


def click_energy(pcm: np.ndarray, rate: int, at: float, window: float = 0.010) -> float:
    """RMS of the second difference (a steep high-pass) in ``window`` s centred on ``at`` s.

    A steady tone barely registers; a step (a click) at a hard cut does.
    """
    d2 = np.diff(pcm, n=2)
    half = int(rate * window / 2)
    centre = int(at * rate)
    part = d2[max(0, centre - half): centre + half]
    return float(np.sqrt((part ** 2).mean()))
