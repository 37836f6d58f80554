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
