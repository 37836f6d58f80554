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
    video_start: float = 0.0               # where the video starts on the file's timeline (after its earliest stream)
    readable_video: float | None = None    # with count_frames: seconds of video the complete packets cover
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

    @property
    def video_end(self) -> float:
        """Where the picture ends on the file's timeline, the one ffmpeg plays it on (its earliest
        stream starts at 0): a clip kept at its own length runs to here, a late start included."""
        if not self.video_duration:
            return self.duration
        return self.video_start + self.video_duration


def _stream_seconds(stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _count_packets(container, path: Path) -> tuple[int, float | None]:
    """Video packets whose bytes are all in the file (a truncated file has fewer), and the seconds
    from the stream's start to the end of the last of them (None without timestamps).

    A complete file can hold fewer packets than its header counts (an AVI counts the empty chunk
    ffmpeg's MPEG-4 writer leaves for a frame it did not code), but they still reach its end."""
    stream = container.streams.video[0]
    size = path.stat().st_size
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    frame = round(1 / (rate * stream.time_base)) if rate and stream.time_base else 0   # a packet without a duration
    count, end = 0, None
    try:
        for packet in container.demux(stream):
            if packet.size > 0 and (packet.pos is None or packet.pos + packet.size <= size):
                count += 1
                if packet.pts is not None:
                    packet_end = packet.pts + (packet.duration or frame)
                    end = packet_end if end is None else max(end, packet_end)
    except Exception:  # noqa: BLE001 - reading stops where the file is broken (av's errors vary)
        pass
    if end is None or stream.time_base is None:
        return count, None
    return count, float((end - (stream.start_time or 0)) * stream.time_base)


def _measure(path: Path, info: MediaInfo) -> None:
    """A file whose header gives no length (live or browser-recorded Matroska/WebM): each stream's
    length from its packets' timestamps (no decoding), so it is neither cut to one frame nor let
    past a length limit as 0 s long."""
    import av

    from media.whitelist import OPEN_OPTIONS

    ends: dict[int, float] = {}
    starts: dict[int, float] = {}
    with av.open(str(path), options=dict(OPEN_OPTIONS)) as container:
        streams = [s for s in (container.streams.video[:1] + container.streams.audio[:1])]
        try:
            for packet in container.demux(streams):
                if packet.pts is None or packet.stream.time_base is None:
                    continue
                index, base = packet.stream.index, packet.stream.time_base
                starts[index] = min(starts.get(index, float(packet.pts * base)), float(packet.pts * base))
                ends[index] = max(ends.get(index, 0.0), float((packet.pts + (packet.duration or 0)) * base))
        except Exception:  # noqa: BLE001 - reading stops where the file is broken (av's errors vary)
            pass
        video = container.streams.video[0].index if container.streams.video else None
        audio = container.streams.audio[0].index if container.streams.audio else None
    if video in ends and not info.video_duration:
        info.video_duration = ends[video] - starts[video]
    if audio in ends and not info.audio_duration:
        info.audio_duration = ends[audio] - starts[audio]
    if ends:
        info.duration = max(ends.values()) - min(starts.values())


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
                if v.start_time is not None and v.time_base is not None and container.start_time is not None:
                    info.video_start = max(0.0, float(v.start_time * v.time_base) - container.start_time / 1_000_000)
                info.video_frames = info.declared_frames = v.frames or None
            if container.streams.audio:
                a = container.streams.audio[0]
                info.audio_codec = a.codec_context.name
                info.audio_rate = a.codec_context.sample_rate
                info.audio_channels = a.codec_context.channels
                info.audio_duration = _stream_seconds(a)
            if not info.duration and (container.streams.video or container.streams.audio):
                _measure(path, info)         # no length in the header (a browser's MediaRecorder WebM)
            if count_frames and container.streams.video:
                info.video_frames, info.readable_video = _count_packets(container, path)
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
