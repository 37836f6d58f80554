"""A PNG written band by band, so a large sheet is never held whole in memory.

Storyboards and contact sheets of long productions are 10-20 MB as a Pillow image; drawing
them a row of panels at a time and writing each band as it is done keeps a render's memory
flat in its length. The file is a plain 8-bit RGB PNG (each scanline with the Sub filter,
deflated at level 1: drawn per render, so speed over a few KB). :class:`PngBands` can also
keep a reduced copy of what went through it (``preview``), for a thumbnail without decoding
the file again.

Each band is deflated on its own and ends on a byte boundary (a sync flush), so a band's
compressed rows can be kept and spliced into a later sheet unchanged (:meth:`PngBands.add_kept`):
a storyboard re-drawn after an edit compresses only the band that changed. The zlib stream's
checksum is combined from the bands' (:func:`adler32_combine`).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import Callable

from PIL import Image, ImageChops

SIGNATURE = b"\x89PNG\r\n\x1a\n"
IDAT_SIZE = 1 << 16
ZLIB_HEADER = b"\x78\x01"          # deflate, 32 KB window, the fastest level
FINAL_BLOCK = b"\x03\x00"          # an empty last block (fixed codes): ends the deflate stream
KEPT_MAGIC = b"reelflow-png-band-1\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


class PngBands:
    """Write a ``width`` x ``height`` RGB PNG to ``path`` from bands added top to bottom.

    ``preview``: the width of a reduced copy kept as the bands go by (:attr:`thumbnail`).
    Written to a part file and renamed into place on :meth:`close`; use as a context manager.
    """

    def __init__(self, path: str | Path, width: int, height: int, preview: int | None = None):
        self.path, self.width, self.height = Path(path), width, height
        self.part = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        self.rows = 0
        self._file = open(self.part, "wb")
        self._file.write(SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        self._pending = bytearray(ZLIB_HEADER)
        self._adler = 1
        self.scale = min(1.0, preview / width) if preview else None
        self.thumbnail = (Image.new("RGB", (max(1, round(width * self.scale)), max(1, round(height * self.scale))))
                          if self.scale else None)

    def add(self, band: Image.Image) -> None:
        """The next ``band.height`` rows (``band`` is as wide as the sheet)."""
        self._check(band)
        self._append(self._deflated(band))
        self._thumb(band)
        self.rows += band.height

    def add_kept(self, kept: Path, height: int, draw: Callable[[], Image.Image]) -> None:
        """The next ``height`` rows, as :meth:`add` of ``draw()``, kept compressed in the file
        ``kept`` (named by everything drawn on the band): a band kept from an earlier sheet is
        neither drawn (unless for the preview) nor compressed again. A kept file that does not
        check out is drawn again and replaced."""
        from storage.file_memo import keep_file

        segment = _read_kept(kept, height * (self.width * 3 + 1))
        band = None
        if segment is None:
            band = draw()
            if band.height != height:
                raise ValueError(f"a band drawn {band.height} rows high where {height} were said")
            self._check(band)
            segment = self._deflated(band)
            adler, size, data = segment
            keep_file(kept, KEPT_MAGIC + struct.pack(">IQ", adler, size) + hashlib.sha256(data).digest() + data)
        elif self.rows + height > self.height:
            raise ValueError("more rows than the PNG's height")
        self._append(segment)
        if self.thumbnail is not None:
            self._thumb(band or draw())
        self.rows += height

    def _check(self, band: Image.Image) -> None:
        if band.width != self.width or band.mode != "RGB":
            raise ValueError(f"a band must be RGB and {self.width} px wide")
        if self.rows + band.height > self.height:
            raise ValueError("more rows than the PNG's height")

    def _deflated(self, band: Image.Image) -> tuple[int, int, bytes]:
        """(adler-32 of the filtered rows, their length, the rows deflated and sync-flushed)."""
        # Sub: each byte less the same channel of the pixel to its left (mod 256), done by Pillow
        # (numpy's import alone is 0.2 s of a render that draws a sheet and needs nothing else of it).
        left = Image.new("RGB", band.size)
        left.paste(band.crop((0, 0, band.width - 1, band.height)), (1, 0))
        pixels = ImageChops.subtract_modulo(band, left).tobytes()
        stride = self.width * 3
        filtered = b"".join(b"\x01" + pixels[i:i + stride] for i in range(0, len(pixels), stride))
        deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
        return zlib.adler32(filtered), len(filtered), deflate.compress(filtered) + deflate.flush(zlib.Z_SYNC_FLUSH)

    def _append(self, segment: tuple[int, int, bytes]) -> None:
        adler, size, data = segment
        self._adler = adler32_combine(self._adler, adler, size)
        self._pending += data
        self._flush_idat()

    def _thumb(self, band: Image.Image) -> None:
        if self.thumbnail is not None:
            top = round(self.rows * self.scale)
            bottom = max(top + 1, round((self.rows + band.height) * self.scale))
            small = band.resize((self.thumbnail.width, bottom - top), Image.Resampling.BILINEAR)
            self.thumbnail.paste(small, (0, top))

    def _flush_idat(self, final: bool = False) -> None:
        while len(self._pending) >= IDAT_SIZE or (final and self._pending):
            data, self._pending = bytes(self._pending[:IDAT_SIZE]), self._pending[IDAT_SIZE:]
            self._file.write(_chunk(b"IDAT", data))

    def close(self) -> Path:
        if self.rows != self.height:
            self.abort()
            raise ValueError(f"{self.rows} of {self.height} rows were written")
        self._pending += FINAL_BLOCK + struct.pack(">I", self._adler)
        self._flush_idat(final=True)
        self._file.write(_chunk(b"IEND", b""))
        self._file.close()
        try:
            os.replace(self.part, self.path)
        except OSError:
            self.part.unlink(missing_ok=True)
            raise
        return self.path

    def abort(self) -> None:
        self._file.close()
        self.part.unlink(missing_ok=True)

    def __enter__(self) -> "PngBands":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _read_kept(path: Path, size: int) -> tuple[int, int, bytes] | None:
    """A kept band's (adler-32, length, deflated rows) if its file is whole and of ``size`` rows' bytes."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    head = len(KEPT_MAGIC) + 12 + 32
    if not raw.startswith(KEPT_MAGIC) or len(raw) < head:
        return None
    adler, length = struct.unpack(">IQ", raw[len(KEPT_MAGIC):len(KEPT_MAGIC) + 12])
    data = raw[head:]
    if length != size or hashlib.sha256(data).digest() != raw[head - 32:head]:
        return None
    return adler, length, data


ADLER_BASE = 65521


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The adler-32 of two byte strings joined, from each one's and the second's length (zlib's
    ``adler32_combine``, which Python's zlib module does not expose)."""
    rem = second_length % ADLER_BASE
    low = first & 0xFFFF
    high = (rem * low) % ADLER_BASE
    low += (second & 0xFFFF) + ADLER_BASE - 1
    high += ((first >> 16) & 0xFFFF) + ((second >> 16) & 0xFFFF) + ADLER_BASE - rem
    low = low - ADLER_BASE if low >= ADLER_BASE else low
    low = low - ADLER_BASE if low >= ADLER_BASE else low
    high = high - 2 * ADLER_BASE if high >= 2 * ADLER_BASE else high
    high = high - ADLER_BASE if high >= ADLER_BASE else high
    return low | (high << 16)


def thumbnail(path: str | Path, width: int, band_rows: int = 256) -> Image.Image:
    """``path`` reduced to ``width`` (keeping its shape), read a band at a time when it is a PNG
    this module wrote (8-bit RGB, every scanline Sub-filtered); any other image is opened whole."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return _banded_thumbnail(data, width, band_rows)
    except _NotOurs:
        with Image.open(path) as img:
            img = img if img.mode == "RGB" else img.convert("RGB")
            img.thumbnail((width, width * 4), Image.Resampling.BILINEAR)
            return img


class _NotOurs(ValueError):
    pass


def _banded_thumbnail(data: bytes, width: int, band_rows: int) -> Image.Image:
    import numpy as np

    w, h, chunks = _own_png(data)
    scale = min(1.0, width / w)
    out = Image.new("RGB", (max(1, round(w * scale)), max(1, round(h * scale))))
    inflate, stride, pending, row = zlib.decompressobj(), w * 3 + 1, b"", 0
    for chunk in chunks:
        pending += inflate.decompress(chunk)
        while len(pending) >= stride * band_rows or (pending and len(pending) % stride == 0
                                                      and row + len(pending) // stride == h):
            count = min(band_rows, len(pending) // stride)
            raw = np.frombuffer(pending[:count * stride], np.uint8).reshape(count, stride)
            pending = pending[count * stride:]
            if not (raw[:, 0] == 1).all():
                raise _NotOurs("a scanline filter other than Sub")
            pixels = np.cumsum(raw[:, 1:].reshape(count, w, 3), axis=1, dtype=np.uint8)   # undo Sub (mod 256)
            top = round(row * scale)
            bottom = max(top + 1, round((row + count) * scale))
            out.paste(Image.fromarray(pixels, "RGB").resize((out.width, bottom - top), Image.Resampling.BILINEAR),
                      (0, top))
            row += count
    return out


def _own_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, IDAT payloads) of an 8-bit RGB PNG without interlacing, else _NotOurs."""
    if not data.startswith(SIGNATURE):
        raise _NotOurs("not a PNG")
    at, width, height, idats = len(SIGNATURE), 0, 0, []
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + size]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if (depth, colour, interlace) != (8, 2, 0):
                raise _NotOurs("not 8-bit RGB")
        elif kind == b"IDAT":
            idats.append(body)
        at += 12 + size
    if not (width and height and idats):
        raise _NotOurs("no image data")
    return width, height, idats
