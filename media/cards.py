"""Title and end cards: text over a colour or an image, made into a clip like any normalised one.

The card is drawn with Pillow (Roboto from the font-roboto wheel, the same glyphs on every
machine) and then goes through the very same normalisation as a clip, so it has exact
frames, silent audio of exactly that length and the shared encoder settings: it joins the
cut by stream copy and takes transitions like any scene.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from media import ffmpeg
from media.probe import MediaInfo
from media.profile import OutputProfile

MAX_CARD_CHARS = 300      # a card's text
MIN_CARD_PX = 6           # the smallest text size a card is drawn at


class Card(BaseModel):
    """``title_card:`` / ``end_card:`` in project.yaml (``image`` resolved by the loader)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_CARD_CHARS)
    duration: float = Field(3.0, gt=0, le=60)
    color: str = Field("#000000", pattern=r"^#[0-9a-fA-F]{6}$", description="Background colour.")
    text_color: str = Field("#ffffff", pattern=r"^#[0-9a-fA-F]{6}$")
    image: str | None = Field(None, description="Background image inside the project folder (fills the frame).")


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


def card_png(card: Card, width: int, height: int, path: str | Path) -> Path:
    """Draw the card: background, then the text centred inside a 10 % safe margin, at the largest
    size (up to a twelfth of the width) at which every line of it fits."""
    from PIL import Image, ImageDraw, ImageOps

    from media.images import rgb

    if card.image:
        with Image.open(card.image) as img:
            canvas = ImageOps.fit(rgb(img), (width, height), Image.Resampling.LANCZOS)
        canvas = Image.blend(canvas, Image.new("RGB", canvas.size, _rgb(card.color)), 0.35)  # text stays legible
    else:
        canvas = Image.new("RGB", (width, height), _rgb(card.color))
    draw = ImageDraw.Draw(canvas)
    font, lines, line_h = card_layout(card.text, width, height)
    top = (height - line_h * len(lines)) / 2
    for i, line in enumerate(lines):
        w = font.getlength(line)
        draw.text(((width - w) / 2, top + i * line_h), line, font=font, fill=_rgb(card.text_color))
    canvas.save(path)
    return Path(path)


def card_layout(text: str, width: int, height: int) -> tuple:
    """(font, lines, line height) for ``text`` on a ``width`` x ``height`` card: wrapped to the
    safe area's width as drawn, the size lowered until every line fits its height too. Nothing
    is cut: only below ``MIN_CARD_PX`` (frames too small to read any card) may lines overflow."""
    from media.images import fit_font, wrap_to_width

    box_w, box_h = width - 2 * (width // 10), height - 2 * (height // 10)

    def lines_of(font) -> list[str]:
        return [line for para in text.splitlines() for line in wrap_to_width(para, font, box_w)]

    font, size = fit_font(min(width // 12, height // 10), lambda f, s: int(s * 1.3) * len(lines_of(f)) <= box_h,
                          MIN_CARD_PX)
    return font, lines_of(font), int(size * 1.3)


def card_digest(png: Path, frames: int) -> str:
    return hashlib.sha256(png.read_bytes() + f":{frames}".encode()).hexdigest()[:32]


def render_card(png: Path, profile: OutputProfile, frames: int, out: str | Path) -> Path:
    """Normalise the still ``png`` into a clip of exactly ``frames`` frames with silent audio."""
    from media.stitch import check_normalized, normalize_args

    info = MediaInfo(path=str(png), duration=float(frames / profile.rate), width=profile.width,
                     height=profile.height, video_codec="png")
    args = normalize_args(str(png), info, profile, frames, str(out))
    if "-format_whitelist" in args:        # our own PNG, not user media: open it as an image
        k = args.index("-format_whitelist")
        del args[k:k + 2]
    at = args.index(str(png)) - 1          # its "-i"
    args[at:at] = ["-f", "image2", "-loop", "1", "-framerate", f"{profile.rate.numerator}/{profile.rate.denominator}"]
    ffmpeg.run(args)
    check_normalized(png, out, profile, frames)
    return Path(out)


class LowerThird(BaseModel):
    """``lower_third:`` in project.yaml: the speaking character's name over a scene's first seconds."""

    model_config = ConfigDict(extra="forbid")

    duration: float = Field(3.0, gt=0, le=30, description="Seconds from the start of each scene.")
    color: str = Field("#000000", pattern=r"^#[0-9a-fA-F]{6}$", description="The bar behind the name.")
    text_color: str = Field("#ffffff", pattern=r"^#[0-9a-fA-F]{6}$")

    def digest(self, name: str) -> str:
        return hashlib.sha256(f"{LOWER_THIRD_VERSION}:{name}:{self.model_dump_json()}".encode()).hexdigest()[:12]


LOWER_THIRD_VERSION = 2


def lower_third_png(name: str, style: LowerThird, width: int, height: int, path: str | Path) -> Path:
    """A full-frame RGBA PNG: ``name`` on a bar at the left, two thirds down the frame.

    That is above both the burned subtitles' safe area and the animatic's bottom caption.
    """
    from PIL import Image, ImageDraw

    from media.images import fit_font, with_ellipsis

    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    name = " ".join(name.split())          # one line: a name's newlines are spaces
    left, top = width // 20, int(height * 0.62)

    def room(size: int) -> int:            # inside the frame's margins, beside the bar's padding and accent
        return width - 2 * left - 2 * (size // 2) - max(2, size // 6)

    font, size = fit_font(max(10, min(width // 16, height // 18)), lambda f, s: f.getlength(name) <= room(s),
                          MIN_CARD_PX)
    if font.getlength(name) > room(size):  # frames too small for it even so: shortened, and marked
        name = with_ellipsis(name, font, room(size))
    pad, accent = size // 2, max(2, size // 6)
    bar_w = min(width - left, int(font.getlength(name)) + 2 * pad + accent)
    draw.rectangle([left, top, left + bar_w, top + size + 2 * pad], fill=(*_rgb(style.color), 170))
    draw.rectangle([left, top, left + accent, top + size + 2 * pad], fill=(*_rgb(style.text_color), 255))
    draw.text((left + pad + accent, top + pad * 0.8), name, font=font, fill=(*_rgb(style.text_color), 255))
    img.save(path)
    return Path(path)
