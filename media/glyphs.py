"""Lines of text drawn from glyphs rasterised once: a storyboard's panels, quickly.

FreeType rasterises every glyph of every ``ImageDraw.text`` call again (about 30 µs a glyph
here): a 24-panel storyboard spent 0.24 s of its 0.56 s on its words. :func:`draw_line` keeps
each glyph of a font file and size as a small mask and stamps it, advancing by the glyph's
width. Text it cannot set this way (anything past Latin, punctuation and common symbols:
scripts that need shaping, combining marks) goes to ``ImageDraw.text``, as do fonts that are
not FreeType files. Kerning is not applied; at panel sizes that moves a glyph by a pixel here
and there.
"""

from __future__ import annotations

import re

from PIL import Image, ImageDraw, ImageFont

# Basic Latin to Latin Extended-B, general punctuation, currency, arrows, symbols: glyphs that
# stand alone. The set is also what bounds the cache: about 1,200 characters per font and size.
SIMPLE = re.compile(r"[\u0020-\u007e\u00a0-\u024f\u2010-\u205e\u20a0-\u20bf\u2190-\u21ff\u2600-\u26ff]*\Z")

Glyph = tuple[Image.Image | None, int, int, float]     # mask (None: blank), left, top, advance
_GLYPHS: dict[tuple[str, float, str], Glyph] = {}


def _glyph(font: ImageFont.FreeTypeFont, char: str) -> Glyph:
    key = (font.path, font.size, char)
    glyph = _GLYPHS.get(key)
    if glyph is None:
        left, top, right, bottom = font.getbbox(char, anchor="la")
        mask = None
        if right > left and bottom > top:
            mask = Image.new("L", (right - left, bottom - top), 0)
            ImageDraw.Draw(mask).text((-left, -top), char, font=font, fill=255, anchor="la")
        glyph = _GLYPHS[key] = (mask, left, top, font.getlength(char))
    return glyph


def draw_line(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
              font: ImageFont.FreeTypeFont | ImageFont.ImageFont, fill) -> None:
    """``draw.text(xy, text, font=font, fill=fill)`` for one line, from glyphs drawn once."""
    if not (isinstance(font, ImageFont.FreeTypeFont) and isinstance(font.path, str) and SIMPLE.match(text)):
        draw.text(xy, text, font=font, fill=fill)
        return
    x, y = xy
    for char in text:
        mask, left, top, advance = _glyph(font, char)
        if mask is not None:
            draw.bitmap((round(x) + left, round(y) + top), mask, fill=fill)
        x += advance
