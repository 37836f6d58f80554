"""Sheets written a band at a time: a plain PNG, pixel for pixel what was drawn."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from media.png_stream import PngBands


def test_bands_make_a_png_with_the_very_pixels_drawn_and_a_preview(tmp_path):
    rng = np.random.default_rng(3)
    drawn = Image.fromarray(rng.integers(0, 256, (301, 197, 3), dtype=np.uint8))
    with PngBands(tmp_path / "sheet.png", 197, 301, preview=50) as out:
        for top in range(0, 301, 64):
            out.add(drawn.crop((0, top, 197, min(301, top + 64))))
    with Image.open(tmp_path / "sheet.png") as back:
        assert back.format == "PNG" and back.mode == "RGB" and back.size == (197, 301)
        assert np.array_equal(np.asarray(back), np.asarray(drawn))
    assert out.thumbnail.size == (50, 76)
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]       # no part file left


def test_a_sheet_that_fails_half_drawn_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with PngBands(tmp_path / "sheet.png", 10, 20) as out:
            out.add(Image.new("RGB", (10, 10)))
            raise RuntimeError("drawing failed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="10 of 20 rows"):
        with PngBands(tmp_path / "short.png", 10, 20) as out:
            out.add(Image.new("RGB", (10, 10)))
    with pytest.raises(ValueError, match="px wide"):
        with PngBands(tmp_path / "wide.png", 10, 20) as out:
            out.add(Image.new("RGB", (11, 5)))
    assert list(tmp_path.iterdir()) == []


def test_a_thumbnail_of_our_own_png_is_read_a_band_at_a_time_and_matches_pillows(tmp_path):
    from media.png_stream import thumbnail

    rng = np.random.default_rng(5)
    drawn = Image.fromarray(np.repeat(rng.integers(0, 256, (300, 1, 3), dtype=np.uint8), 400, axis=1))
    with PngBands(tmp_path / "ours.png", 400, 300) as out:
        for top in range(0, 300, 100):
            out.add(drawn.crop((0, top, 400, top + 100)))
    drawn.save(tmp_path / "pillows.png")                       # another writer's filters: opened whole
    ours, theirs = thumbnail(tmp_path / "ours.png", 100, band_rows=32), thumbnail(tmp_path / "pillows.png", 100)
    assert ours.size == theirs.size == (100, 75)
    assert np.abs(np.asarray(ours, float) - np.asarray(theirs, float)).mean() < 8


def test_adler32_combine_is_zlibs():
    import os
    import zlib

    from media.png_stream import adler32_combine

    for first, second in [(b"", b""), (b"a", b""), (b"", b"b"), (os.urandom(70000), os.urandom(123457)),
                          (b"\xff" * 100000, b"\xff" * 5552 * 13)]:
        assert adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second)) == zlib.adler32(first + second)


def test_kept_bands_are_spliced_unchanged_and_a_damaged_one_is_drawn_again(tmp_path, monkeypatch):
    """A band kept from an earlier sheet is neither drawn nor compressed again; the sheet is the
    same pixels; a kept file that does not check out is drawn again and replaced."""
    from media.png_stream import PngBands as Bands

    rng = np.random.default_rng(7)
    drawn = Image.fromarray(rng.integers(0, 256, (300, 120, 3), dtype=np.uint8))
    bands = [drawn.crop((0, top, 120, top + 100)) for top in range(0, 300, 100)]
    calls: list[int] = []

    def sheet(name: str, preview: int | None = None) -> Bands:
        with Bands(tmp_path / name, 120, 300, preview) as out:
            for i, band in enumerate(bands):
                out.add_kept(tmp_path / "kept" / f"band{i}", 100, lambda i=i, band=band: calls.append(i) or band)
        with Image.open(tmp_path / name) as back:
            assert np.array_equal(np.asarray(back), np.asarray(drawn))
        return out

    sheet("1.png")
    assert calls == [0, 1, 2]
    calls.clear()
    compressed: list[int] = []
    real = Bands._deflated
    monkeypatch.setattr(Bands, "_deflated", lambda self, band: compressed.append(1) or real(self, band))
    sheet("2.png")
    assert calls == [] and compressed == []
    assert (tmp_path / "2.png").read_bytes() == (tmp_path / "1.png").read_bytes()
    kept = tmp_path / "kept" / "band1"
    kept.write_bytes(kept.read_bytes()[:-10] + b"x" * 10)      # damaged behind reelflow's back
    sheet("3.png")
    assert calls == [1] and compressed == [1]
    calls.clear()
    assert sheet("4.png", preview=60).thumbnail.size == (60, 150)   # a preview draws the bands again
    assert calls == [0, 1, 2]
    with pytest.raises(ValueError, match="rows"):
        with Bands(tmp_path / "5.png", 120, 150) as out:
            out.add_kept(tmp_path / "kept" / "band0", 100, lambda: bands[0])
            out.add_kept(tmp_path / "kept" / "band1", 100, lambda: bands[1])
