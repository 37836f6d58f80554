"""Draw a storyboard: one panel per scene, as a PNG sheet and a self-contained HTML page.

Pure drawing: the caller gives :class:`Panel` values (the picture and the words); nothing here
knows about projects, engines or stores. All text is untrusted (it comes from a production):
the HTML escapes every value and the PNG draws it as plain glyphs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from media.glyphs import draw_line
from media.images import load_font
from media.png_stream import PngBands
from storage.file_memo import keep_checked, read_checked

PANEL_W, IMAGE_H, TEXT_H, GAP = 320, 300, 196, 12
BACKGROUND, CARD, TEXT, DIM, WARN = (18, 18, 22), (34, 34, 40), (235, 235, 235), (160, 160, 170), (255, 190, 70)


@dataclass
class Panel:
    scene_id: str
    image: Image.Image | bytes | Path   # the picture, as JPEG bytes (:func:`compact`), or a JPEG file
                                        # named by its content (kept on disk: a long storyboard holds none)
    start: float
    end: float
    engine: str
    model: str | None = None
    action: str = ""
    speech: str | None = None
    cost: str = ""
    warnings: list[str] = field(default_factory=list)

    def picture(self) -> Image.Image:
        if isinstance(self.image, (bytes, Path)):
            with Image.open(io.BytesIO(self.image) if isinstance(self.image, bytes) else self.image) as img:
                return img.convert("RGB")
        return self.image

    def jpeg(self) -> bytes | None:
        """The picture as JPEG bytes, when it is kept as one."""
        if isinstance(self.image, Path):
            return self.image.read_bytes()
        return self.image if isinstance(self.image, bytes) else None

    @property
    def timecode(self) -> str:
        return f"{timecode(self.start)}–{timecode(self.end)}"

    @property
    def engine_label(self) -> str:
        return f"{self.engine} · {self.model}" if self.model else self.engine


def timecode(seconds: float) -> str:
    """``m:ss.s`` (``h:mm:ss.s`` past an hour)."""
    tenths = round(seconds * 10)
    h, rest = divmod(tenths, 36000)
    m, rest = divmod(rest, 600)
    s = f"{m:02d}:{rest / 10:04.1f}" if h else f"{m}:{rest / 10:04.1f}"
    return f"{h}:{s}" if h else s


def fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled to fit a width x height box, centred on the card colour."""
    img = image.convert("RGB")
    img.thumbnail((width, height), Image.Resampling.BILINEAR)
    box = Image.new("RGB", (width, height), CARD)
    box.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
    return box


def _wrap(text: str, chars: int, lines: int) -> list[str]:
    wrapped = textwrap.wrap(" ".join(text.split()), width=chars) or []
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: chars - 1].rstrip() + "…"
    return wrapped


KEPT = 520               # side of the JPEG a panel keeps of its picture (the HTML's size)
FULL_PANELS = 24         # up to this many panels the PNG draws them full size; past it, smaller


def compact(image: Image.Image, side: int = KEPT) -> bytes:
    """``image`` as JPEG bytes fitting ``side`` x ``side``: what a panel keeps, so a storyboard of
    hundreds of scenes does not hold hundreds of full pictures."""
    img = image.convert("RGB")
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def draw_png(panels: list[Panel], title: str, summary: str, path: str | Path, *, columns: int = 4,
             tiles: Path | None = None, preview: int | None = None) -> Path:
    """Tile the panels into one PNG sheet under a title and a summary line.

    Past ``FULL_PANELS`` panels the sheet gets more columns of smaller panels (picture, number,
    id and timecode only), so its size, and the memory to draw it, stay about the same however
    long the production is; the HTML page keeps every panel's words. ``tiles``: a folder where
    drawn panels are kept by everything drawn on them, so a re-render draws only the panels
    that changed. The sheet is written a row of panels at a time, never held whole; with
    ``preview`` (a width) a small JPEG of it is kept at :func:`preview_path`, made on the way."""
    if not panels:
        raise ValueError("a storyboard needs at least one panel")
    if len(panels) > FULL_PANELS:
        return _draw_overview(panels, title, summary, path, preview)
    cols = min(columns, len(panels))
    rows = -(-len(panels) // cols)
    width = GAP + cols * (PANEL_W + GAP)
    with PngBands(path, width, HEADER + rows * (IMAGE_H + TEXT_H + GAP) + GAP, preview) as out:
        out.add(_header(width, title, summary))
        for top in range(0, len(panels), cols):           # a row of panels at a time (media.png_stream)
            row = [(panels[i], i + 1) for i in range(top, min(top + cols, len(panels)))]
            if tiles is None:
                out.add(_band(row, width))
                continue
            keys = [_tile_key(panel, number) for panel, number in row]
            band_key = hashlib.sha256(repr((TILE_VERSION, width, cols, keys)).encode()).hexdigest()[:40]
            out.add_kept(tiles / f"band-{band_key}.deflate", IMAGE_H + TEXT_H + GAP,
                         lambda row=row, keys=keys: _band(row, width, tiles, keys))
        out.add(Image.new("RGB", (width, GAP), BACKGROUND))
    _keep_preview(out, path)
    return Path(path)


HEADER = 74


def _header(width: int, title: str, summary: str) -> Image.Image:
    band = Image.new("RGB", (width, HEADER), BACKGROUND)
    draw = ImageDraw.Draw(band)
    draw_line(draw, (GAP, 12), title[:120], load_font(24), TEXT)
    draw_line(draw, (GAP, 44), summary[:160], load_font(14), DIM)
    return band


def preview_path(png: str | Path) -> Path:
    """Where :func:`draw_png` keeps a small JPEG of the sheet when asked (``preview``)."""
    return Path(png).with_suffix(".preview.jpg")


def _keep_preview(out: PngBands, png: str | Path) -> None:
    if out.thumbnail is not None:
        out.thumbnail.save(preview_path(png), "JPEG", quality=72)


TILE_VERSION = 2           # bump when draw_tile draws the same panel differently


def draw_tile(panel: Panel, number: int) -> Image.Image:
    """One full-size panel: its picture over its number, id, timecode, engine, cost and words."""
    tile = Image.new("RGB", (PANEL_W, IMAGE_H + TEXT_H), CARD)
    draw = ImageDraw.Draw(tile)
    bold, small = load_font(17), load_font(14)
    tile.paste(fit_image(panel.picture(), PANEL_W, IMAGE_H), (0, 0))
    ty = IMAGE_H + 8
    draw_line(draw, (10, ty), f"{number}. {panel.scene_id}"[:30], bold, TEXT)
    tc = panel.timecode
    draw_line(draw, (PANEL_W - 10 - draw.textlength(tc, font=small), ty + 3), tc, small, DIM)
    ty += 24
    meta = f"{panel.engine_label} · {panel.cost}" if panel.cost else panel.engine_label
    for line in _wrap(meta, 42, 1):
        draw_line(draw, (10, ty), line, small, DIM)
        ty += 19
    for line in _wrap(panel.action, 42, 2):
        draw_line(draw, (10, ty), line, small, TEXT)
        ty += 19
    if panel.speech:
        for line in _wrap(f"“{panel.speech}”", 42, 3):
            draw_line(draw, (10, ty), line, small, (200, 220, 255))
            ty += 19
    for warning in panel.warnings[:1]:
        for line in _wrap(f"⚠ {warning}", 42, 3):
            draw_line(draw, (10, ty), line, small, WARN)
            ty += 19
    return tile


def _band(row: list[tuple[Panel, int]], width: int, tiles: Path | None = None,
          keys: list[str] | None = None) -> Image.Image:
    """A row of panels (kept tiles when ``tiles`` is given, with their ``keys``)."""
    band = Image.new("RGB", (width, IMAGE_H + TEXT_H + GAP), BACKGROUND)
    for column, (panel, number) in enumerate(row):
        tile = _kept_tile(panel, number, tiles, keys[column]) if tiles and keys else draw_tile(panel, number)
        band.paste(tile, (GAP + column * (PANEL_W + GAP), 0))
    return band


def _tile_key(panel: Panel, number: int) -> str:
    """A digest of everything :func:`draw_tile` draws for ``panel``."""
    if isinstance(panel.image, Path):
        picture = panel.image.name.encode()           # its name is its content's digest
    else:
        picture = panel.image if isinstance(panel.image, bytes) else panel.image.convert("RGB").tobytes()
    key = hashlib.sha256(repr((TILE_VERSION, number, panel.scene_id, panel.timecode, panel.engine_label,
                               panel.cost, panel.action, panel.speech, panel.warnings[:1])).encode())
    key.update(hashlib.sha256(picture).digest())
    return key.hexdigest()[:40]


def _kept_tile(panel: Panel, number: int, folder: Path, key: str) -> Image.Image:
    """:func:`draw_tile`, kept in ``folder`` under its :func:`_tile_key` (raw RGB behind its
    SHA-256: loading one costs well under a millisecond; a damaged one is drawn again)."""
    path = folder / f"{key}.rgb"
    size = (PANEL_W, IMAGE_H + TEXT_H)
    data = read_checked(path)
    if data is not None and len(data) == size[0] * size[1] * 3:
        return Image.frombytes("RGB", size, data)
    tile = draw_tile(panel, number)
    keep_checked(path, tile.tobytes())
    return tile


def _draw_overview(panels: list[Panel], title: str, summary: str, path: str | Path,
                   preview: int | None = None) -> Path:
    """Many panels on a sheet of about the area of ``FULL_PANELS`` full ones."""
    area = FULL_PANELS * (PANEL_W + GAP) * (IMAGE_H + TEXT_H + GAP)
    label = 22
    per = area / len(panels)                                  # pixels per panel
    w = max(48, int((per * PANEL_W / (IMAGE_H + label)) ** 0.5))
    h = max(36, w * IMAGE_H // PANEL_W)
    cols = max(4, round((FULL_PANELS ** 0.5 * 2 * (PANEL_W + GAP)) / (w + 4)))
    rows = -(-len(panels) // cols)
    width = GAP * 2 + cols * (w + 4)
    small = load_font(11)
    with PngBands(path, width, HEADER + rows * (h + label + 4) + GAP, preview) as out:
        out.add(_header(width, title, summary))
        for top in range(0, len(panels), cols):
            band = Image.new("RGB", (width, h + label + 4), BACKGROUND)
            draw = ImageDraw.Draw(band)
            for i in range(top, min(top + cols, len(panels))):
                x = GAP + (i - top) * (w + 4)
                band.paste(fit_image(panels[i].picture(), w, h), (x, 0))
                draw_line(draw, (x + 2, h + 3), f"{i + 1} {panels[i].scene_id}"[: max(4, w // 7)], small, TEXT)
            out.add(band)
        out.add(Image.new("RGB", (width, GAP), BACKGROUND))
    _keep_preview(out, path)
    return Path(path)


def _data_uri(panel: Panel) -> str:
    if (jpeg := panel.jpeg()) is not None:   # already a JPEG of the HTML's size
        return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    return jpeg_data_uri(panel.image, KEPT, KEPT)


def jpeg_data_uri(image: Image.Image, width: int, height: int, quality: int = 80) -> str:
    buf = io.BytesIO()
    img = image.convert("RGB")
    img.thumbnail((width, height), Image.Resampling.BILINEAR)
    img.save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """
body{margin:0;padding:16px;background:#121216;color:#ebebeb;font:15px/1.4 system-ui,-apple-system,Roboto,sans-serif}
h1{font-size:1.3em;margin:0 0 4px}
.sum{color:#a0a0aa;margin:0 0 16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.card{background:#222228;border-radius:8px;overflow:hidden}
.card img{display:block;width:100%;height:260px;object-fit:contain;background:#222228}
.txt{padding:8px 10px 12px}
.head{display:flex;justify-content:space-between;gap:8px;font-weight:600}
.tc{color:#a0a0aa;font-weight:400;font-variant-numeric:tabular-nums;white-space:nowrap}
.meta{color:#a0a0aa;font-size:.9em;margin:2px 0 6px}
.speech{color:#c8dcff;margin:6px 0 0}
.warn{color:#ffbe46;font-size:.9em;margin:6px 0 0}
"""


def write_html(panels: list[Panel], title: str, summary: str, path: str | Path) -> Path:
    """One HTML file with every picture inlined (data URIs): it opens anywhere, phones included.
    Written a card at a time: a long production's page (megabytes of pictures) is never one string."""
    part = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.part")
    try:
        _write_page(part, panels, title, summary)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return Path(path)


def _write_page(part: Path, panels: list[Panel], title: str, summary: str) -> None:
    esc = html.escape
    with open(part, "w", encoding="utf-8") as out:
        out.write('<!doctype html><html lang="en"><head><meta charset="utf-8">'
                  '<meta name="viewport" content="width=device-width,initial-scale=1">'
                  f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
                  f'<h1>{esc(title)}</h1><p class="sum">{esc(summary)}</p><div class="grid">')
        for i, p in enumerate(panels):
            meta = esc(p.engine_label) + (f" · {esc(p.cost)}" if p.cost else "")
            out.write("".join([
                f'<div class="card" id="scene-{esc(p.scene_id)}">',
                f'<img alt="{esc(p.scene_id)}" src="{_data_uri(p)}">',
                '<div class="txt">',
                f'<div class="head"><span>{i + 1}. {esc(p.scene_id)}</span><span class="tc">{esc(p.timecode)}</span></div>',
                f'<div class="meta">{meta}</div>',
                f"<div>{esc(p.action)}</div>" if p.action else "",
                f'<p class="speech">“{esc(p.speech)}”</p>' if p.speech else "",
                *[f'<p class="warn">⚠ {esc(w)}</p>' for w in p.warnings],
                "</div></div>",
            ]))
        out.write("</div></body></html>\n")
