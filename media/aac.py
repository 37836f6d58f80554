"""The final video's AAC, encoded in chunks that are kept and spliced (smart rendering of audio).

Encoding two minutes of audio to AAC costs seconds on one core, and every render re-encoded
all of it although an edit changes a few seconds. Here the finished PCM (loudness applied) is
cut on a fixed grid of AAC frames (1024 samples) into chunks of ``CHUNK_FRAMES`` frames. Each
chunk is encoded on its own, from ``PRE_ROLL`` samples before its start to ``POST_ROLL`` after
its end, and only the packets of its own frames are kept: the MDCT frames at each splice were made from
the same samples by both encoders, so the join decodes like a single encode's (the test
compares the error at the splices with the error elsewhere). A chunk is cached on this machine
under the SHA-256 of its own samples and the ``OVERLAP`` either side (the samples its boundary
frames' MDCT windows reach; the rest of the pre-roll only lets the encoder's rate control settle,
so a chunk kept from an encode whose pre-roll differed still joins cleanly: a test splices one)
and the encoder settings. A re-render encodes only the chunks whose own audio changed, and the
chunks of a cold render are encoded in parallel. The track is spliced in order as each chunk is
ready, while later ones are still being encoded. The first chunk keeps the encoder's priming
packet, so the file starts like any AAC encode (an edit list drops the priming) and the last
keeps the encoder's shortened final packet: the track is exactly ``samples`` long.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

from media import ffmpeg

log = logging.getLogger("reelflow")

FRAME = 1024               # samples per AAC frame
CHUNK_FRAMES = 512         # frames per chunk: 10.9 s at 48 kHz
PRE_ROLL = 256 * FRAME     # samples encoded before a chunk and thrown away: the encoder's rate
                           # control settles over about 5 s (measured: a chunk without it codes
                           # 2-3 dB noisier than the same seconds inside one long encode)
POST_ROLL = 4 * FRAME      # samples encoded after a chunk: its last MDCT frames see real audio
OVERLAP = 2 * FRAME        # samples either side of a chunk that its boundary frames' MDCT windows
                           # reach: with its own samples, what its key hashes (the pre-roll only
                           # settles the encoder, so an edit there does not make it again)
CHANNELS = 2
PEAK_RANGE = 30.0          # dBTP: no decoded chunk peaks higher (a kept peak above it is damaged)
BYTES_PER_SAMPLE = 2 * CHANNELS   # s16le stereo
VERSION = 2                # bump when the chunk encode (or what keys it) changes


def chunk_bounds(samples: int, frames: int | None = None) -> list[tuple[int, int]]:
    """[start, end) of each chunk, on a fixed grid of ``frames`` AAC frames from the start."""
    size = (frames or CHUNK_FRAMES) * FRAME
    return [(start, min(samples, start + size)) for start in range(0, samples, size)] or [(0, 0)]


def cache_dir() -> Path:
    from reelflow.settings import get_settings

    return Path(get_settings().work_dir) / "cache" / "aac"


def encode(pcm: str | Path, rate: int, out: str | Path, bitrate: str = "192k", folder: Path | None = None,
           workers: int | None = None, gain: float = 0.0, ahead: Encoding | None = None) -> Path:
    """Encode ``pcm`` (raw s16le stereo at ``rate``) to an AAC ``.m4a`` at ``out``, reusing the
    chunks encoded before from the same samples. ``gain`` (dB, to 0.01) is applied on the way
    into the encoder, in floating point: no pass over the PCM, no second rounding to 16 bits.

    The chunks are spliced in order as they are ready, while the later ones are still being
    encoded. ``ahead``: an encode made ahead (:func:`start`). Of the same samples and settings, it
    is this encode (its keys and its encodes under way taken as they are: the PCM is not read
    again); otherwise its encodes this track needs are waited for, the others cancelled where
    they have not begun."""
    return encode_track(pcm, rate, out, bitrate, folder, workers, gain, ahead)[0]


def encode_track(pcm: str | Path, rate: int, out: str | Path, bitrate: str = "192k", folder: Path | None = None,
                 workers: int | None = None, gain: float = 0.0,
                 ahead: Encoding | None = None) -> tuple[Path, Callable[[], float]]:
    """:func:`encode`, and a function that gives the track's true peak as decoded (dBTP): the
    largest of its chunks', each measured once (kept beside it) on a thread of its own as the
    splice takes it, so the measuring runs beside the rest of the splice and whatever follows.
    An AAC encode can overshoot the PCM's peak by a few dB on sharp transients; this is what a
    player gets."""
    if ahead is not None and ahead.source == _source(pcm, rate, bitrate, folder, gain):
        encoding = ahead
    else:
        running = ahead.running if ahead is not None else {}
        encoding = start(pcm, rate, bitrate, folder, workers, gain, running)
        for path, future in running.items():
            if path not in encoding.running:
                future.cancel()                  # made ahead for samples this track does not have
    peaks: list[Future] = []
    measuring = ThreadPoolExecutor(1, thread_name_prefix="reelflow-aac-peak")
    try:
        _splice(encoding, Path(pcm).stat().st_size // BYTES_PER_SAMPLE, rate, Path(out),
                lambda job: peaks.append(measuring.submit(_chunk_peak, job[4], _own_start(job) / rate)))
    finally:
        measuring.shutdown(wait=False)
    return Path(out), lambda: max(future.result() for future in peaks)


def _source(pcm: str | Path, rate: int, bitrate: str, folder: Path | None, gain: float) -> tuple:
    """What an encoding's chunks are keyed from, but the samples themselves."""
    return str(Path(pcm).resolve()), rate, bitrate, str(folder or cache_dir()), f"{gain:.2f}dB"


@dataclass
class Encoding:
    """The chunks of one PCM at one gain (``jobs``, in order) and their encodes still under way."""
    jobs: list[tuple]
    running: dict[Path, Future]
    redo: Callable[[tuple], None]            # encodes one job's chunk here and now
    source: tuple = ()                       # :func:`_source` of what it encodes

    def ready(self, job: tuple) -> Path:
        """The chunk of ``job``, waiting for its encode; one whose encode failed (or was cancelled)
        is encoded again here, once, and that failure is raised."""
        future = self.running.get(job[4])
        if future is not None:
            try:
                future.result()
            except (Exception, CancelledError):  # noqa: BLE001 - encoded again just below
                pass
        if not job[4].exists():
            self.redo(job)
        return job[4]

    def wait(self) -> list[tuple]:
        for job in self.jobs:
            self.ready(job)
        return self.jobs


def encode_chunks(pcm: str | Path, rate: int, bitrate: str = "192k", folder: Path | None = None,
                  workers: int | None = None, gain: float = 0.0) -> list[tuple]:
    """Make sure every chunk of ``pcm`` at ``gain`` is in the cache (encoding the missing ones in
    parallel); the chunks, for :func:`_splice`."""
    return start(pcm, rate, bitrate, folder, workers, gain).wait()


def start(pcm: str | Path, rate: int, bitrate: str = "192k", folder: Path | None = None,
          workers: int | None = None, gain: float = 0.0, running: dict[Path, Future] | None = None) -> Encoding:
    """Key every chunk of ``pcm`` at ``gain`` and start encoding the missing ones in parallel, in
    order (a chunk in ``running`` is already under way); returns at once. On its own: an encode
    made ahead of need (a render encodes with the last gain while it measures whether that gain
    still holds)."""
    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    samples = Path(pcm).stat().st_size // BYTES_PER_SAMPLE
    if not samples:
        raise ffmpeg.FFmpegError(f"{pcm}: no audio samples to encode")
    volume = f"{gain:.2f}dB"
    settings = f"aac-v{VERSION}|{ffmpeg.ffmpeg_binary_version()}|{rate}|{bitrate}|{volume}"
    jobs = []
    with open(pcm, "rb") as handle:
        for start_at, end in chunk_bounds(samples):
            lo, hi = max(0, start_at - PRE_ROLL), min(samples, end + POST_ROLL)
            digest = hashlib.sha256(f"{settings}|{start_at - lo}|{hi - end}|{end == samples}".encode())
            # One read of a chunk's own samples (2 MB): its key, and nothing held that grows with length.
            first, last = max(0, start_at - OVERLAP), min(samples, end + OVERLAP)
            digest.update(os.pread(handle.fileno(), (last - first) * BYTES_PER_SAMPLE, first * BYTES_PER_SAMPLE))
            jobs.append((start_at, end, lo, hi, folder / f"{digest.hexdigest()[:40]}.m4a"))

    def redo(job: tuple) -> None:
        _encode_chunk(pcm, job[2], job[3], rate, bitrate, job[4], volume)

    running = running or {}
    under_way = {job[4]: running[job[4]] for job in jobs if job[4] in running}
    missing = [job for job in jobs if job[4] not in under_way and not job[4].exists()]
    if missing:
        pool = ThreadPoolExecutor(max(1, min(len(missing), workers or os.cpu_count() or 1)),
                                  thread_name_prefix="reelflow-aac")
        for job in missing:
            under_way[job[4]] = pool.submit(redo, job)
        pool.shutdown(wait=False)
    return Encoding(jobs, under_way, redo, _source(pcm, rate, bitrate, folder, gain))


def _encode_chunk(pcm: str | Path, lo: int, hi: int, rate: int, bitrate: str, dest: Path,
                  volume: str = "0.00dB") -> None:
    """Samples [lo, hi) of ``pcm`` as one chunk, written atomically (two renders may make the same
    chunk at once). ffmpeg reads them from the file itself (skipping to ``lo``, trimming at
    ``hi``): nothing passes through this process, whose other threads would slow the feed."""
    fd, part = tempfile.mkstemp(dir=dest.parent, suffix=".part.m4a")
    os.close(fd)
    shape = f"atrim=end_sample={hi - lo}" + ("" if volume == "0.00dB" else f",volume={volume}")
    try:
        ffmpeg.run(["-f", "s16le", "-ar", str(rate), "-ac", str(CHANNELS), "-skip_initial_bytes",
                    str(lo * BYTES_PER_SAMPLE), "-t", f"{(hi - lo) / rate + 1:.3f}", "-i", str(pcm), "-af", shape,
                    "-c:a", "aac", "-b:a", bitrate, "-map_metadata", "-1", "-fflags", "+bitexact",
                    "-f", "mp4", "-y", part])
        os.replace(part, dest)
    finally:
        Path(part).unlink(missing_ok=True)


def _peak_file(chunk: Path) -> Path:
    return chunk.with_suffix(".tp")


def _own_start(job: tuple) -> int:
    """Samples of ``job``'s chunk file before its own audio, less the frames at the join."""
    return max(0, job[0] - job[2] - OVERLAP)


def _chunk_peak(chunk: Path, skip: float = 0.0) -> float:
    """A chunk's true peak as decoded (dBTP), from ``skip`` seconds into its file: its own audio
    and the frames at its joins (the rest of the pre-roll is the previous chunk's audio, which
    that chunk measures as the track has it); kept beside it once measured."""
    from media.loudness import SILENT_PEAK, true_peak
    from storage.file_memo import finite, keep_checked, read_checked

    kept = read_checked(_peak_file(chunk))
    text = kept.decode("ascii", errors="replace").strip() if kept is not None else ""
    if text == "-inf" or finite(text, SILENT_PEAK, PEAK_RANGE):     # else damaged: measured again
        return float(text)
    peak = true_peak(chunk, skip)
    keep_checked(_peak_file(chunk), f"{peak!r}\n".encode())
    return peak


def _splice(encoding: Encoding, samples: int, rate: int, out: Path,
            taken: Callable[[tuple], None] = lambda job: None) -> None:
    """Keep each chunk's own packets (global pts in [start, end); the first chunk also its priming
    packet, the last every packet to the end) and mux them into one track, each chunk as soon as
    its encode is done. ``taken(job)`` is called with each chunk's job as the splice takes it.

    A chunk is read whole before any of its packets is muxed: a cached chunk that cannot be read
    (cut short by a crash or a full disk after it was kept) is encoded again, once, instead of
    failing every later render of the production."""
    import av

    jobs = encoding.jobs
    base = Fraction(1, rate)
    first = _readable(encoding, jobs[0], rate)
    with av.open(str(jobs[0][4])) as head:                      # the track's codec parameters
        template = head.streams.audio[0]
        with av.open(str(out), "w", format="mp4", options={"movie_timescale": str(rate)}) as output:
            stream = output.add_stream_from_template(template)
            stream.time_base = base
            last = len(jobs) - 1
            for index, job in enumerate(jobs):
                start, end, lo = job[0], job[1], job[2]
                time_base, packets = first if index == 0 else _readable(encoding, job, rate)
                taken(job)
                scale = time_base * rate                         # pts units -> samples
                num, den = scale.numerator, scale.denominator    # integers: no Fraction per packet
                for packet in packets:
                    at = lo + _trunc(packet.pts * num, den)
                    if at < start and not (index == 0 and at < 0):
                        continue                         # pre-roll (and a later chunk's priming)
                    if at >= end and index != last:
                        continue                         # post-roll
                    duration = _trunc((packet.duration or FRAME) * num, den)
                    packet.stream = stream
                    packet.time_base = base
                    packet.pts = packet.dts = at
                    packet.duration = duration
                    output.mux(packet)


def _readable(encoding: Encoding, job: tuple, rate: int) -> tuple:
    """The time base and the packets of ``job``'s chunk, read whole; a chunk that cannot be read
    is encoded again, once."""
    import av

    path, samples = encoding.ready(job), job[3] - job[2]
    try:
        return _packets(path, samples, rate)
    except (av.FFmpegError, IndexError, OSError, ValueError) as exc:
        log.warning("the cached AAC chunk %s cannot be read (%s); it is encoded again", path.name, exc)
        path.unlink(missing_ok=True)
        _peak_file(path).unlink(missing_ok=True)
        encoding.redo(job)
    try:
        return _packets(path, samples, rate)
    except (av.FFmpegError, IndexError, OSError, ValueError) as exc:
        raise ffmpeg.FFmpegError(f"{path}: the AAC chunk just encoded cannot be read ({exc})") from exc


def _packets(path: Path, samples: int, rate: int) -> tuple:
    """The chunk's time base and packets; ValueError if they end before its ``samples``."""
    import av

    with av.open(str(path)) as chunk:
        source = chunk.streams.audio[0]
        packets = [p for p in chunk.demux(source) if p.pts is not None and p.size]
    if not packets or (packets[-1].pts + (packets[-1].duration or 0)) * source.time_base * rate < samples:
        raise ValueError("cut short")
    return source.time_base, packets


def _trunc(numerator: int, denominator: int) -> int:
    """``int(numerator / denominator)`` exactly (towards zero, like ``int(Fraction)``)."""
    q = abs(numerator) // denominator
    return q if numerator >= 0 else -q
