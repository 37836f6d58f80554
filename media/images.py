"""Still images made with Pillow: caption overlays, placeholder cards, contact sheets."""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image, ImageDraw, ImageFont

from media.png_stream import PngBands


def font_path() -> str | None:
    """Roboto from the font-roboto wheel: the same glyphs on every machine."""
    try:
        import font_roboto

        return str(font_roboto.Roboto)
    except Exception:  # noqa: BLE001 - Pillow's built-in font still works
        return None


def font_dir() -> str | None:
    path = font_path()
    return str(Path(path).parent) if path else None


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = font_path()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


_UNSEEN = ("Cc", "Cf", "Zs", "Zl", "Zp")     # controls, format marks and spaces: nothing to draw


def undrawable(text: str) -> str:
    """The characters of ``text`` the bundled font has no glyph for, once each, in order: cards,
    lower thirds, captions and burned subtitles draw them as boxes (the font's ``.notdef``)."""
    if text.isascii() or font_path() is None:
        return ""
    import unicodedata

    return "".join(c for c in dict.fromkeys(text)
                   if not c.isascii() and unicodedata.category(c) not in _UNSEEN and not _drawn(c))


@functools.cache
def _drawn(char: str) -> bool:
    return _glyph_print(char) != _glyph_print("\U0010FFFF")     # a code point no font has


@functools.cache
def _glyph_print(char: str) -> tuple:
    font = _probe_font()
    mask = font.getmask(char)
    return mask.size, bytes(mask), font.getlength(char)


@functools.cache
def _probe_font():
    return load_font(32)


def wrap_to_width(paragraph: str, font, width: float) -> list[str]:
    """``paragraph`` in lines no wider than ``width`` as drawn; a word wider than that is split."""
    lines: list[str] = []
    line = ""
    for word in paragraph.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while len(word) > 1 and font.getlength(word) > width:
            cut = 1
            while cut < len(word) and font.getlength(word[:cut + 1]) <= width:
                cut += 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    lines.append(line)
    return lines


def fit_font(start: int, fits: Callable[[ImageFont.FreeTypeFont, int], bool], smallest: int) -> tuple:
    """(font, size): the largest size from ``start`` down (a tenth at a time) at which ``fits(font,
    size)``, or ``smallest``."""
    size = max(smallest, start)
    while True:
        font = load_font(size)
        if size == smallest or fits(font, size):
            return font, size
        size = max(smallest, size * 9 // 10)


def with_ellipsis(text: str, font, room: float) -> str:
    """``text`` cut to end in an ellipsis within ``room`` pixels: it says that more was there."""
    while text and font.getlength(text + "\u2026") > room:
        text = text[:-1].rstrip()
    return text + "\u2026"


CAPTION_LINES = 3


def caption_lines(text: str, font, room: float) -> list[str]:
    """``text`` wrapped to ``room`` pixels in at most :data:`CAPTION_LINES` lines: a caption is a
    preview of the action, so a longer one is cut, and ends in an ellipsis to say so."""
    lines = wrap_to_width(" ".join(text.split()), font, room)
    if len(lines) > CAPTION_LINES:
        lines = [*lines[:CAPTION_LINES - 1], with_ellipsis(lines[CAPTION_LINES - 1], font, room)]
    return lines


def caption_png(text: str, width: int, height: int, path: str | Path, at: str = "bottom") -> Path:
    """A transparent width x height PNG with ``text`` on a dark band near the bottom (or the top).

    ``at="top"`` keeps the bottom free for burned-in subtitles; ``"none"`` draws nothing.
    """
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    if text.strip() and at != "none":
        size = max(14, width // 22)
        font = load_font(size)
        lines = caption_lines(text, font, width - 2 * (width // 24))
        draw = ImageDraw.Draw(img)
        line_h = int(size * 1.3)
        band_h = line_h * len(lines) + size
        top = height // 12 if at == "top" else height - band_h - height // 12
        draw.rectangle([0, top, width, top + band_h], fill=(0, 0, 0, 150))
        for i, line in enumerate(lines):
            w = draw.textlength(line, font=font)
            draw.text(((width - w) / 2, top + size / 2 + i * line_h), line, font=font, fill=(255, 255, 255, 255))
    img.save(path)
    return Path(path)


def placeholder_image(label: str, width: int, height: int) -> Image.Image:
    """A deterministic two-tone card for scenes without a character image."""
    import numpy as np

    h = hashlib.sha256(label.encode()).digest()
    top, bottom = np.array(list(h[0:3]), float), np.array([h[3] // 3, h[4] // 3, h[5] // 3], float)
    t = np.arange(height, dtype=float)[:, None] / max(1, height - 1)
    rows = (top + (bottom - top) * t).astype(np.uint8)          # one colour per line, top to bottom
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(rows[:, None, :], (height, width, 3))), "RGB")


def placeholder_png(label: str, width: int, height: int, path: str | Path) -> Path:
    """:func:`placeholder_image` saved as a PNG."""
    placeholder_image(label, width, height).save(path)
    return Path(path)


def sheet_layout(count: int, columns: int = 3, thumb_width: int = 240) -> tuple[int, int]:
    """(columns, thumbnail width) for ``count`` frames: a long cut gets more, smaller thumbnails,
    so the sheet stays readable and its size bounded (360 scenes: 19 columns of 96 px)."""
    cols = max(columns, math.ceil(math.sqrt(count)))
    return min(cols, max(1, count)), max(96, thumb_width * columns // cols)


def contact_sheet(frames: Iterable[tuple[str, Image.Image]], path: str | Path, *, columns: int = 3,
                  thumb_width: int = 240, count: int | None = None, aspect: float | None = None) -> Path:
    """Tile (label, frame) pairs into one PNG, labels under each thumbnail.

    ``frames`` may be a generator (then give ``count`` and ``aspect`` = height / width): each
    frame is pasted as it arrives and dropped, so memory does not grow with the number of clips.
    """
    if count is None or aspect is None:
        frames = list(frames)
        if not frames:
            raise ValueError("a contact sheet needs at least one frame")
        count = len(frames)
        aspect = frames[0][1].size[1] / frames[0][1].size[0]
    tw, th = thumb_width, max(1, round(thumb_width * aspect))
    label_h = 28
    cols = min(columns, count)
    rows = -(-count // cols)
    font = load_font(16 if tw >= 160 else 11)
    band = draw = None
    # One row of thumbnails at a time (media.png_stream): the sheet is never held whole.
    with PngBands(path, cols * tw, rows * (th + label_h)) as out:
        for i, (label, frame) in enumerate(frames):
            if i % cols == 0:
                if band is not None:
                    out.add(band)
                band = Image.new("RGB", (cols * tw, th + label_h), (20, 20, 20))
                draw = ImageDraw.Draw(band)
            x = (i % cols) * tw
            thumb = frame.convert("RGB")
            band.paste(thumb if thumb.size == (tw, th) else thumb.resize((tw, th)), (x, 0))
            draw.text((x + 6, th + 5), label[:28], font=font, fill=(230, 230, 230))
        if band is not None:
            out.add(band)
        while out.rows < out.height:                                   # fewer frames than said
            out.add(Image.new("RGB", (cols * tw, th + label_h), (20, 20, 20)))
    return Path(path)


ORIENTATION = 0x0112      # the EXIF tag a phone sets instead of turning the pixels


def upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF says the camera was (a phone's portrait photo is stored on its side)."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(img) if img.getexif().get(ORIENTATION, 1) not in (0, 1) else img


_DEEP = ("I;16", "I;16L", "I;16B", "I;16N", "I")     # 16-bit PNGs open as these


def eight_bit(img: Image.Image) -> Image.Image:
    """``img`` with 8-bit samples: a 16-bit image scaled down (``convert`` clips it instead, and
    a 16-bit grey photo came out white)."""
    if img.mode not in _DEEP:
        return img
    wide = img if img.mode == "I" else img.convert("I")
    return wide.point(lambda value: value * (1 / 256)).convert("L")


def rgb(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB, the right way up (:func:`upright`, :func:`eight_bit`)."""
    return eight_bit(upright(img)).convert("RGB")


def upright_copy(path: str | Path, folder: Path) -> Path:
    """``path`` itself, or a PNG copy of it in ``folder`` when its EXIF says the camera was turned
    or its samples are 16-bit: engines and models read 8-bit pixels, not EXIF."""
    try:
        with Image.open(path) as img:
            if img.getexif().get(ORIENTATION, 1) in (0, 1) and img.mode not in _DEEP:
                return Path(path)
            out = folder / f"upright-{Path(path).stem}.png"
            eight_bit(upright(img)).save(out, "PNG")
            return out
    except (OSError, ValueError, SyntaxError):
        return Path(path)          # unreadable: the engine says so, as for any image
