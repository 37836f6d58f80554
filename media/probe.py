"""Probe media files with PyAV (no ffprobe binary needed)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel
from reelflow.errors import InputError


class ProbeError(InputError):
    """The file is not readable media or lacks what the caller needs."""


class MediaInfo(BaseModel):
    path: str
    duration: float            # container duration, seconds
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    video_frames: int | None = None        # counted packets with count_frames, else declared
    declared_frames: int | None = None     # what the container's index says
    video_duration: float | None = None
    audio_codec: str | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None
    audio_duration: float | None = None
    size_bytes: int = 0

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None


def _stream_seconds(stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _count_packets(container, path: Path) -> int:
    """Video packets whose bytes are all in the file (a truncated file has fewer)."""
    size = path.stat().st_size
    count = 0
    try:
        for packet in container.demux(container.streams.video[0]):
            if packet.size > 0 and (packet.pos is None or packet.pos + packet.size <= size):
                count += 1
    except Exception:  # noqa: BLE001 - reading stops where the file is broken (av's errors vary)
        pass
    return count


def probe(path: str | Path, *, count_frames: bool = False) -> MediaInfo:
    """Read stream metadata; with ``count_frames`` decode-free packet counting of video."""
    import av

    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"{path}: no such file")
    from media.whitelist import OPEN_OPTIONS

    try:
        with av.open(str(path), options=dict(OPEN_OPTIONS)) as container:
            info = MediaInfo(
                path=str(path),
                duration=float(container.duration / 1_000_000) if container.duration else 0.0,
                size_bytes=path.stat().st_size,
            )
            if container.streams.video:
                v = container.streams.video[0]
                rate = v.average_rate or v.guessed_rate or v.base_rate
                info.width, info.height = v.codec_context.width, v.codec_context.height
                info.fps = float(Fraction(rate)) if rate else None
                info.video_codec = v.codec_context.name
                info.video_duration = _stream_seconds(v)
                info.video_frames = info.declared_frames = v.frames or None
            if container.streams.audio:
                a = container.streams.audio[0]
                info.audio_codec = a.codec_context.name
                info.audio_rate = a.codec_context.sample_rate
                info.audio_channels = a.codec_context.channels
                info.audio_duration = _stream_seconds(a)
            if count_frames and container.streams.video:
                info.video_frames = _count_packets(container, path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ProbeError(f"{path}: not readable media ({type(exc).__name__})") from exc
    return info


def decodes(path: str | Path, kind: str) -> bool:
    """Does the first ``kind`` ("audio"/"video") stream decode at least one frame?"""
    import av

    from media.whitelist import OPEN_OPTIONS

    try:
        with av.open(str(path), options=dict(OPEN_OPTIONS)) as container:
            streams = container.streams.video if kind == "video" else container.streams.audio
            if not streams:
                return False
            for _ in container.decode(streams[0]):
                return True
    except (av.error.FFmpegError, OSError):
        return False
    return False


def audio_samples(path: str | Path) -> int:
    """Exact number of decoded audio samples per channel in the first audio stream."""
    import av

    from media.whitelist import OPEN_OPTIONS

    with av.open(str(path), options=dict(OPEN_OPTIONS)) as container:
        if not container.streams.audio:
            return 0
        return sum(frame.samples for frame in container.decode(container.streams.audio[0]))
