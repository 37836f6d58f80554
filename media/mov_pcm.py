"""Copy the PCM out of a normalised clip (our own ``.mov``: H.264 + s16le stereo) without ffmpeg.

A normalised clip's sound is little-endian 16-bit stereo (``sowt``) in chunks whose places the
sample tables give; reading those byte ranges gives the same bytes as ffmpeg's stream copy, at
the cost of a file read rather than a process and a demuxer. Anything else (another codec, an edit
list that trims, tables that do not add up) raises :class:`NotPlainPcm`, and the caller copies
with ffmpeg instead. Every size and offset is checked against the file, so a damaged file
cannot make it read outside itself or loop.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import BinaryIO, Iterator

FRAME_BYTES = 4          # one s16le stereo sample frame
MAX_TABLE = 64 << 20     # bytes: no sample table of ours comes near this


class NotPlainPcm(ValueError):
    """The file is not a clip whose sound this module can copy (use ffmpeg)."""


def copy_pcm(path: str | Path, sink: BinaryIO, frames: int | None = None) -> int:
    """Append the clip's PCM to ``sink``; returns the sample frames written. With ``frames``, the
    clip must hold exactly that many (checked before anything is written).

    The file is mapped and its sound gathered in one buffer, written at once: a handful of
    calls that let go of the GIL per clip, not one per chunk (a render's other threads would
    each time make this one wait its turn)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise NotPlainPcm(f"{path}: empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            ranges = list(pcm_ranges(data))
            total = sum(size for _, size in ranges)
            if frames is not None and total != frames * FRAME_BYTES:
                raise NotPlainPcm(f"{path}: {total // FRAME_BYTES} sample frames where {frames} were expected")
            sink.write(b"".join(data[offset:offset + size] for offset, size in ranges))
    return total // FRAME_BYTES


def pcm_ranges(data) -> Iterator[tuple[int, int]]:
    """(offset, bytes) of each chunk of the sound track's PCM in ``data`` (the file's bytes, mapped), in order."""
    end = len(data)
    moov = _find(data, 0, end, "moov")
    tracks = [t for t in _atoms(data, *moov) if t[0] == "trak" and _handler(data, t) == b"soun"]
    if len(tracks) != 1:
        raise NotPlainPcm(f"{len(tracks)} sound tracks")
    _, start, stop = tracks[0]
    if (edit := _find(data, start, stop, "edts", "elst", required=False)) is not None:
        _plain_edit(_read(data, edit))
    stbl = _find(data, start, stop, "mdia", "minf", "stbl")
    tables = {kind: (a, b) for kind, a, b in _atoms(data, *stbl)}
    _sowt_stereo(_read(data, tables.get("stsd")))
    stsz = _read(data, tables.get("stsz"))
    if len(stsz) < 12:
        raise NotPlainPcm("a sample table is cut short")
    size, count = struct.unpack_from(">II", stsz, 4)
    if size != FRAME_BYTES:
        raise NotPlainPcm(f"sample size {size}")
    runs = _entries(_read(data, tables.get("stsc")), ">III")
    if "stco" in tables:
        offsets = [o for (o,) in _entries(_read(data, tables["stco"]), ">I")]
    else:
        offsets = [o for (o,) in _entries(_read(data, tables.get("co64")), ">Q")]
    written = 0
    for i, offset in enumerate(offsets):
        per_chunk = _per_chunk(runs, i + 1)
        if per_chunk <= 0 or offset + per_chunk * FRAME_BYTES > end:
            raise NotPlainPcm(f"chunk {i + 1} lies outside the file")
        written += per_chunk
        yield offset, per_chunk * FRAME_BYTES
    if written != count:
        raise NotPlainPcm(f"the chunks hold {written} samples, the table says {count}")


def _atoms(data, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            if pos + 16 > end:
                raise NotPlainPcm(f"a broken {kind!r} atom at {pos}")
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise NotPlainPcm(f"a broken {kind!r} atom at {pos}")
        yield kind.decode("latin-1"), pos + head, pos + size
        pos += size


def _find(data, start: int, end: int, *path: str, required: bool = True) -> tuple[int, int] | None:
    for kind, a, b in _atoms(data, start, end):
        if kind == path[0]:
            return (a, b) if len(path) == 1 else _find(data, a, b, *path[1:], required=required)
    if required:
        raise NotPlainPcm(f"no {path[0]!r} atom")
    return None


def _read(data, span: tuple[int, int] | None) -> bytes:
    if span is None:
        raise NotPlainPcm("a sample table is missing")
    if span[1] - span[0] > MAX_TABLE:
        raise NotPlainPcm("a sample table is too large")
    return bytes(data[span[0]:span[1]])


def _handler(data, trak: tuple[str, int, int]) -> bytes:
    hdlr = _find(data, trak[1], trak[2], "mdia", "hdlr", required=False)
    return _read(data, hdlr)[8:12] if hdlr else b""


def _entries(data: bytes, shape: str) -> list[tuple]:
    """A full box's table: version and flags, an entry count, the entries."""
    if len(data) < 8:
        raise NotPlainPcm("a sample table is cut short")
    (count,) = struct.unpack_from(">I", data, 4)
    width = struct.calcsize(shape)
    if 8 + count * width > len(data):
        raise NotPlainPcm("a sample table is cut short")
    return [struct.unpack_from(shape, data, 8 + i * width) for i in range(count)]


def _per_chunk(runs: list[tuple], chunk: int) -> int:
    """Samples in ``chunk`` (1-based) from the sample-to-chunk runs (first chunk, samples, description)."""
    per = 0
    for first, samples, _ in runs:
        if first > chunk:
            break
        per = samples
    return per


def _sowt_stereo(stsd: bytes) -> None:
    # version/flags, count, then the entry: size, format, 6 reserved, data ref, version, revision,
    # vendor, channels, bits per sample (a QuickTime sound description)
    if len(stsd) < 36 or stsd[12:16] != b"sowt" or struct.unpack_from(">HH", stsd, 32) != (2, 16):
        raise NotPlainPcm("not 16-bit little-endian stereo PCM")


def _plain_edit(elst: bytes) -> None:
    version = elst[0] if elst else 0
    entries = _entries(elst, ">QqI" if version == 1 else ">IiI")
    if len(entries) != 1 or entries[0][1] != 0:
        raise NotPlainPcm("an edit list that moves or trims the sound")
