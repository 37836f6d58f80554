"""A PNG written band by band, so a large sheet is never held whole in memory.

Storyboards and contact sheets of long productions are 10-20 MB as a Pillow image; drawing
them a row of panels at a time and writing each band as it is done keeps a render's memory
flat in its length. The file is a plain 8-bit RGB PNG (each scanline with the Sub filter,
deflated at level 1: drawn per render, so speed over a few KB). :class:`PngBands` can also
keep a reduced copy of what went through it (``preview``), for a thumbnail without decoding
the file again.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageChops

SIGNATURE = b"\x89PNG\r\n\x1a\n"
IDAT_SIZE = 1 << 16


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
        self._deflate = zlib.compressobj(1)
        self._pending = bytearray()
        self.scale = min(1.0, preview / width) if preview else None
        self.thumbnail = (Image.new("RGB", (max(1, round(width * self.scale)), max(1, round(height * self.scale))))
                          if self.scale else None)

    def add(self, band: Image.Image) -> None:
        """The next ``band.height`` rows (``band`` is as wide as the sheet)."""
        if band.width != self.width or band.mode != "RGB":
            raise ValueError(f"a band must be RGB and {self.width} px wide")
        if self.rows + band.height > self.height:
            raise ValueError("more rows than the PNG's height")
        # Sub: each byte less the same channel of the pixel to its left (mod 256), done by Pillow
        # (numpy's import alone is 0.2 s of a render that draws a sheet and needs nothing else of it).
        left = Image.new("RGB", band.size)
        left.paste(band.crop((0, 0, band.width - 1, band.height)), (1, 0))
        pixels = ImageChops.subtract_modulo(band, left).tobytes()
        stride = self.width * 3
        filtered = b"".join(b"\x01" + pixels[i:i + stride] for i in range(0, len(pixels), stride))
        self._pending += self._deflate.compress(filtered)
        self._flush_idat()
        if self.thumbnail is not None:
            top = round(self.rows * self.scale)
            bottom = max(top + 1, round((self.rows + band.height) * self.scale))
            small = band.resize((self.thumbnail.width, bottom - top), Image.Resampling.BILINEAR)
            self.thumbnail.paste(small, (0, top))
        self.rows += band.height

    def _flush_idat(self, final: bool = False) -> None:
        while len(self._pending) >= IDAT_SIZE or (final and self._pending):
            data, self._pending = bytes(self._pending[:IDAT_SIZE]), self._pending[IDAT_SIZE:]
            self._file.write(_chunk(b"IDAT", data))

    def close(self) -> Path:
        if self.rows != self.height:
            self.abort()
            raise ValueError(f"{self.rows} of {self.height} rows were written")
        self._pending += self._deflate.flush()
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
