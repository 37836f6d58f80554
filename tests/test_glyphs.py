"""Lines drawn from cached glyphs look like Pillow's own, and anything it cannot set goes to Pillow."""

from __future__ import annotations

from PIL import Image, ImageChops, ImageDraw, ImageStat

from media.glyphs import SIMPLE, draw_line
from media.images import load_font


BACKGROUND = (20, 20, 28)


def both(text: str, size: int = 14) -> tuple[Image.Image, Image.Image]:
    font = load_font(size)
    ours, pillows = (Image.new("RGB", (520, 32), BACKGROUND) for _ in range(2))
    draw_line(ImageDraw.Draw(ours), (10, 6), text, font, (200, 220, 255))
    ImageDraw.Draw(pillows).text((10, 6), text, font=font, fill=(200, 220, 255))
    return ours, pillows


def test_a_panel_line_matches_pillow_but_for_a_pixel_of_kerning():
    ours, pillows = both("3. hall_intro · animatic · $0.00 “Where were you?” ⚠ 4.1 words/s")
    blank = Image.new("RGB", ours.size, BACKGROUND)
    ink = lambda image: ImageChops.difference(image, blank)  # noqa: E731
    top, bottom = ink(ours).getbbox(), ink(pillows).getbbox()
    assert top[1] == bottom[1] and top[3] == bottom[3] and abs(top[2] - bottom[2]) <= 2   # same line, same end
    # The glyphs land where Pillow puts them: the two differ by under half their ink (moving
    # Pillow's own line 3 px to the right differs by more than all of it).
    assert mean(ImageChops.difference(ours, pillows)) < 0.5 * mean(ink(pillows))


def mean(image: Image.Image) -> float:
    return ImageStat.Stat(image.convert("L")).mean[0]


def test_text_that_needs_shaping_is_left_to_pillow():
    for text in ("مرحبا بالعالم", "नमस्ते दुनिया", "e\u0301te\u0301"):
        assert not SIMPLE.match(text)
        ours, pillows = both(text)
        assert ImageChops.difference(ours, pillows).getbbox() is None
