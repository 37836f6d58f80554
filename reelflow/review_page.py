"""HTML pages of ``reelflow serve``: the list of renders and one review page per render.

A render's page reads its manifest ``renders/<slug>/<render_id>/render.json`` (the render's
``RenderResult``: scenes with their takes and the picked one). Renders made before manifests
existed still get a page from the files beside their final video, and so does a render that
has no final video (yet): it is running, waiting for review, or failed, and its folder holds
the storyboard it published before its first clip. Every value from a
manifest is escaped; every key is checked before it becomes a link; a number that is not a
finite, non-negative one (``1e400``, ``NaN``, text) shows as nothing. A local store is read
through ``serve.served_view``: nothing the object route would answer 404 for (a symlink that
leaves the store, a hidden file) is read, listed or linked.
"""

from __future__ import annotations

import html
import math
from urllib.parse import quote

from media.storyboard import timecode
from storage import ClipStore
from storage.base import check_key

_CSS = """
body{margin:0;padding:16px;background:#121216;color:#ebebeb;font:15px/1.45 system-ui,-apple-system,Roboto,sans-serif}
a{color:#8ab4ff}
h1{font-size:1.35em;margin:0 0 4px}
h2{font-size:1.1em;margin:28px 0 8px}
.dim{color:#a0a0aa}
.final video{width:100%;max-width:720px;max-height:70vh;background:#000;border-radius:6px}
.board img{max-width:100%;border-radius:6px}
.scenes{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.scene{background:#1c1c22;border-radius:8px;padding:10px 12px;max-width:100%;box-sizing:border-box}
.scene h3{margin:0 0 2px;font-size:1em}
.speech{color:#c8dcff;margin:4px 0}
.takes{display:flex;flex-wrap:wrap;gap:10px;margin-top:8px}
.take{margin:0;padding:6px;border:2px solid transparent;border-radius:8px;background:#26262e;width:220px}
.take video{width:100%;max-height:300px;background:#000;border-radius:4px}
.take.picked{border-color:#5fd38d}
.badge{background:#5fd38d;color:#111;border-radius:4px;padding:0 6px;font-size:.85em;font-weight:600}
table{border-collapse:collapse}td,th{padding:4px 10px;text-align:left;border-bottom:1px solid #2c2c34}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


def _safe_key(key) -> str | None:
    try:
        return check_key(key) if isinstance(key, str) else None
    except ValueError:
        return None


def _seconds(value) -> float | None:
    """``value`` as a finite, non-negative number of seconds, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _list(value) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


RENDER_FILES = ("final.mp4", "render.json", "storyboard.png", "storyboard.html")   # any one: a render's folder


def render_folders(store: ClipStore) -> list[tuple[str, str]]:
    """(slug, render_id) of every render folder (a final video, a manifest or a storyboard), newest first."""
    from reelflow.serve import served_view

    store = served_view(store)
    found = set()
    for key in store.list("renders"):
        parts = key.split("/")
        if len(parts) == 4 and parts[3] in RENDER_FILES:
            found.add((parts[1], parts[2]))
    return sorted(found, key=lambda f: (f[1], f[0]), reverse=True)


def index_html(store: ClipStore) -> str:
    from reelflow.serve import link_for, served_view

    store = served_view(store)
    rows = []
    for slug, render_id in render_folders(store):
        review = f"/review/{quote(slug)}/{quote(render_id)}"
        final = f"renders/{slug}/{render_id}/final.mp4"
        video = (f' · <a href="{html.escape(link_for(store, final))}">final.mp4</a>' if store.exists(final)
                 else ' · <span class="dim">not finished (no final video: running, waiting for review, or failed)</span>')
        rows.append(f'<tr><td>{html.escape(slug)}</td><td><a href="{html.escape(review)}">'
                    f"{html.escape(render_id)}</a>{video}</td></tr>")
    body = "<h1>reelflow renders</h1>"
    if rows:
        body += "<table><tr><th>production</th><th>render</th></tr>" + "".join(rows) + "</table>"
    else:
        body += '<p class="dim">No render in this store yet: <code>reelflow render projects/&lt;slug&gt;</code>.</p>'
    return _page("reelflow renders", body)


def scenes_of(manifest: dict) -> list[dict]:
    """The manifest's scenes (each with takes); a manifest without ``scenes`` (one clip per
    scene, the older shape) is read as one take per scene, timed by its clips' durations."""
    if isinstance(manifest.get("scenes"), list):
        return _list(manifest["scenes"])
    scenes, start = [], 0.0
    for clip in _list(manifest.get("clips")):
        length = _seconds(clip.get("duration")) or 0.0
        scenes.append({
            "scene_id": clip.get("scene_id", "?"), "start": start, "end": start + length,
            "speech": clip.get("speech"), "action": "", "engine": clip.get("engine"), "picked": 1,
            "takes": [{"take": 1, "seed": None, "key": clip.get("key"), "engine": clip.get("engine"),
                       "model": clip.get("model"), "cached": clip.get("cached")}],
        })
        start += length
    return scenes


def _take_html(store: ClipStore, take: dict, picked: bool) -> str:
    from reelflow.serve import link_for

    esc = html.escape
    key = _safe_key(take.get("key"))
    number = take.get("take", "?")
    # "#t=0.1": browsers then show a frame of the take instead of a black box before play
    video = (f'<video controls preload="metadata" src="{esc(link_for(store, key))}#t=0.1"></video>'
             if key else '<p class="dim">no clip</p>')
    bits = [f"take {esc(str(number))}"]
    if take.get("seed") is not None:
        bits.append(f"seed {esc(str(take['seed']))}")
    bits.append(esc(" · ".join(str(t) for t in (take.get("engine"), take.get("model")) if t)))
    if take.get("cached") is not None:
        bits.append("reused" if take.get("cached") else "generated")
    badge = ' <span class="badge">picked</span>' if picked else ""
    cls = "take picked" if picked else "take"
    return f'<figure class="{cls}" data-take="{esc(str(number))}">{video}<figcaption>{" · ".join(b for b in bits if b)}{badge}</figcaption></figure>'


def _scene_html(store: ClipStore, index: int, scene: dict) -> str:
    esc = html.escape
    start, end = _seconds(scene.get("start") or 0), _seconds(scene.get("end") or 0)
    span = f"{timecode(start)}–{timecode(end)}" if start is not None and end is not None else ""
    takes = _list(scene.get("takes"))
    picked = scene.get("picked", 1)
    parts = [
        f'<section class="scene" id="scene-{esc(str(scene.get("scene_id")))}">',
        f'<h3>{index}. {esc(str(scene.get("scene_id")))} <span class="dim">{esc(span)}</span></h3>',
    ]
    if scene.get("action"):
        parts.append(f'<div class="dim">{esc(str(scene["action"]))}</div>')
    if scene.get("speech"):
        parts.append(f'<p class="speech">“{esc(str(scene["speech"]))}”</p>')
    parts.append('<div class="takes">' + "".join(_take_html(store, t, t.get("take") == picked) for t in takes) + "</div>")
    parts.append("</section>")
    return "".join(parts)


def review_html(store: ClipStore, slug: str, render_id: str) -> str | None:
    """The review page of one render, or None if the store has no such render."""
    from reelflow.serve import link_for, read_json, served_view

    store = served_view(store)
    esc = html.escape
    prefix = _safe_key(f"renders/{slug}/{render_id}")
    if prefix is None or "/" in slug or "/" in render_id:
        return None
    manifest = read_json(store, f"{prefix}/render.json") or {}
    final = f"{prefix}/final.mp4"
    has_final = store.exists(final)
    files = {k for k in store.list(prefix) if k.startswith(prefix + "/")}
    if not manifest and not has_final and not files & {f"{prefix}/storyboard.{x}" for x in ("png", "html")}:
        return None
    body = [f"<h1>{esc(slug)} — render {esc(render_id)}</h1>"]
    facts = []
    if (duration := _seconds(manifest.get("duration"))) is not None:
        facts.append(f"{duration:.2f} s")
    counts = [manifest.get(k) for k in ("generated", "reused")]
    if all(isinstance(n, int) and not isinstance(n, bool) for n in counts):
        facts.append(f"{counts[0]} clip(s) generated, {counts[1]} reused")
    links = [f'<a href="{esc(link_for(store, k))}">{esc(k.rsplit("/", 1)[-1])}</a>' for k in sorted(files)
             if k.rsplit("/", 1)[-1] != "render.json"]
    body.append(f'<p class="dim">{" · ".join(facts + links)}</p>')
    if has_final:
        body.append(f'<div class="final"><video id="final" controls preload="metadata" '
                    f'src="{esc(link_for(store, final))}"></video></div>')
    else:
        body.append('<p class="dim">No final video yet (the render is running, waiting for review, or failed).</p>')
    board, page = f"{prefix}/storyboard.png", f"{prefix}/storyboard.html"
    if board in files:
        target = link_for(store, page) if page in files else link_for(store, board)
        body.append(f'<h2>Storyboard</h2><div class="board"><a href="{esc(target)}">'
                    f'<img alt="storyboard" src="{esc(link_for(store, board))}"></a></div>')
    elif page in files:
        body.append(f'<h2>Storyboard</h2><p><a href="{esc(link_for(store, page))}">storyboard.html</a></p>')
    scenes = scenes_of(manifest)
    if scenes:
        body.append('<h2>Scenes and takes</h2><div class="scenes">')
        body += [_scene_html(store, i + 1, s) for i, s in enumerate(scenes)]
        body.append("</div>")
    return _page(f"{slug} — {render_id}", "".join(body))
