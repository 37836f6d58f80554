"""The storyboard of a production: what each scene will be, before any engine is called.

Plain functions (no Prefect import: ``reelflow storyboard`` must answer in well under 3 s).
The CLI plans the project itself; a render hands in the chains it already planned.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from media import storyboard as board
from media.images import placeholder_image, rgb
from projects import Project
from reelflow.settings import Settings
from storage import ClipStore
from storage.file_memo import keep_file
from tasks.cost import SceneCost, estimate_chains
from tasks.models import ClipPlan

PNG_NAME, HTML_NAME = "storyboard.png", "storyboard.html"


def cost_label(cost: SceneCost | None) -> str:
    if cost is None:
        return ""
    if cost.engine == "footage":
        return "footage"
    if cost.cached:
        return "stored · $0"
    dollars = "$0" if cost.dollars == 0 else f"${cost.dollars:.2f}" if cost.dollars >= 0.01 else "<$0.01"
    return f"~{cost.engine_seconds:.0f} engine-s · {dollars}"


def scene_picture(plan: ClipPlan, size: tuple[int, int]) -> tuple[Image.Image, str | None]:
    """The picture the engine starts from: the character's still or the footage's middle frame
    (found by seeking, not by decoding the whole file); a placeholder card if there is none."""
    try:
        if plan.kind == "footage":
            from media.frame_cache import cached_middle_frame

            return cached_middle_frame(plan.key, plan.footage, fit=(size[0] * 2, size[1] * 2)), None
        if plan.request and plan.request.image:
            with Image.open(plan.request.image) as img:
                img.draft("RGB", (size[0] * 2, size[1] * 2))   # JPEG: decode at a reduced scale
                img.thumbnail((size[0] * 2, size[1] * 2), Image.Resampling.BILINEAR)
                return rgb(img), None
    except Exception as exc:  # noqa: BLE001 - a bad picture is shown as a warning, not a crash
        return placeholder_image(plan.scene_id, *size), f"cannot read the scene's picture: {exc}"
    return placeholder_image(plan.scene_id, *size), None


def cache_dir() -> Path:
    from reelflow.settings import get_settings

    return Path(get_settings().work_dir) / "cache" / "storyboard"


PICTURE_VERSION = 2        # bump when scene_picture or board.compact makes another picture


def kept_picture(plan: ClipPlan, size: tuple[int, int]) -> tuple[bytes | Path, str | None]:
    """:func:`scene_picture` as the panel keeps it (``board.compact``'s JPEG), kept under the
    plan's content key: the key names the footage or the still it starts from, so its picture
    never changes. The panel then holds the file, not its bytes. Placeholders and pictures
    that could not be read are not kept (their bytes are)."""
    name = hashlib.sha256(f"{PICTURE_VERSION}|{plan.key}|{size}".encode()).hexdigest()[:40]
    path = cache_dir() / f"{name}.jpg"
    if path.is_file():
        return path, None
    picture, problem = scene_picture(plan, size)
    data = board.compact(picture)
    if problem is None and (plan.kind == "footage" or (plan.request and plan.request.image)) \
            and keep_file(path, data):
        return path, None
    return data, problem


def clip_seconds(plan: ClipPlan) -> float:
    if plan.duration is not None:
        return plan.duration
    from media.probe import probe

    info = probe(plan.footage)
    return info.video_end


def panels(project: Project, chains: list[list[ClipPlan]], costs: list[SceneCost], timeline=None) -> list[board.Panel]:
    """One panel per scene, timed as the final video will be: whole frames at the output rate, on
    the render's timeline (a title card before, transitions overlapping their joins; ``timeline``:
    :func:`storyboard_timeline` of these chains, when the caller has it)."""
    out = project.output
    size = (out.width * board.IMAGE_H // out.height, board.IMAGE_H) if out.height >= out.width \
        else (board.PANEL_W, out.height * board.PANEL_W // out.width)
    by_scene = {c.scene_id: c for c in costs}
    timeline = timeline or storyboard_timeline(project, chains)
    placed = {item.scene_id: item for item in timeline.items}
    result = []
    for chain in chains:
        plan = chain[0]
        item = placed[plan.scene_id]
        picture, problem = kept_picture(plan, size)
        scene = next(s for s in project.scenes if s.id == plan.scene_id)
        result.append(board.Panel(
            scene_id=plan.scene_id, image=picture,
            start=timeline.seconds(item.start), end=timeline.seconds(item.start + item.frames),
            engine=plan.engine or "footage", model=plan.model,
            action=scene.action, speech=plan.subtitle,
            cost=cost_label(by_scene.get(plan.scene_id)),
            warnings=[*plan.warnings, *([problem] if problem else [])],
        ))
    return result


def storyboard_timeline(project: Project, chains: list[list[ClipPlan]]):
    """The timeline the render will lay these scenes on (``media.timeline``), cards included."""
    from media.timeline import build_timeline

    out, edit = project.output, project.edit()
    rows = [dict(scene_id=chain[0].scene_id, key="", frames=out.frames_for(clip_seconds(chain[0])))
            for chain in chains]
    cards = [(name, card) for name, card in (("title card", edit.title_card), ("end card", edit.end_card)) if card]
    for name, card in cards:
        row = dict(scene_id=name, key="", frames=out.frames_for(card.duration), kind="card")
        rows = [row, *rows] if name == "title card" else [*rows, row]
    return build_timeline(rows, out.rate, out.audio_rate, edit.transition, edit.transitions)


def per_scene(costs: list[SceneCost]) -> list[SceneCost]:
    """Costs summed per scene (a scene with several takes has one row per take)."""
    out: dict[str, SceneCost] = {}
    for c in costs:
        if c.scene_id in out:
            prev = out[c.scene_id]
            out[c.scene_id] = prev.model_copy(update={
                "cached": prev.cached and c.cached, "engine_seconds": round(prev.engine_seconds + c.engine_seconds, 1),
                "dollars": round(prev.dollars + c.dollars, 4)})
        else:
            out[c.scene_id] = c
    return list(out.values())


def summary(items: list[board.Panel], costs: list[SceneCost], total: float) -> str:
    """The sheet's line: scenes, the video's length (``total`` s, cards included), what it costs."""
    to_make = [c for c in costs if not c.cached]
    dollars = sum(c.dollars for c in costs)
    return (f"{len(items)} scenes · {board.timecode(total)} · {len(to_make)} clip(s) to generate, "
            f"~{sum(c.engine_seconds for c in costs):.0f} engine-seconds, ${dollars:.2f} estimated")


def write_storyboard(project: Project, chains: list[list[ClipPlan]], costs: list[SceneCost],
                     out_dir: str | Path, picked: dict[str, int] | None = None) -> tuple[Path, Path]:
    """``storyboard.png`` and ``storyboard.html`` in ``out_dir``; returns their paths.

    ``chains`` may hold several takes of a scene: the panel shows the picked one, the cost
    counts every take to make."""
    png, page, _ = draw_storyboard(project, chains, costs, out_dir, picked)
    return png, page


def draw_storyboard(project: Project, chains: list[list[ClipPlan]], costs: list[SceneCost],
                    out_dir: str | Path, picked: dict[str, int] | None = None,
                    preview: int | None = None) -> tuple[Path, Path, str]:
    """:func:`write_storyboard`, and the summary line it drew (for a caller that shows it again);
    ``preview``: also keep a JPEG of the sheet that wide (``board.preview_path``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    costs = per_scene(costs)
    shown = picked_chains(chains, picked or {})
    timeline = storyboard_timeline(project, shown)
    items = panels(project, shown, costs, timeline)
    title = f"{project.title} — storyboard"
    line = summary(items, costs, timeline.duration)
    png = board.draw_png(items, title, line, out_dir / PNG_NAME, tiles=cache_dir() / "tiles", preview=preview)
    page = board.write_html(items, title, line, out_dir / HTML_NAME)
    return png, page, line


def picked_chains(chains: list[list[ClipPlan]], picked: dict[str, int]) -> list[list[ClipPlan]]:
    """One chain per scene, in scene order: the picked take's (take 1 if none is picked)."""
    best: dict[str, list[ClipPlan]] = {}
    for chain in chains:
        scene_id, take = chain[0].scene_id, chain[0].take
        if scene_id not in best or take == picked.get(scene_id, 1):
            best[scene_id] = chain
    return sorted(best.values(), key=lambda chain: chain[0].index)


def plan_for_storyboard(project: Project, store: ClipStore, settings: Settings,
                        engine: str | None = None) -> tuple[list[list[ClipPlan]], dict[str, int]]:
    """The chains a render would make (every take; speech as audio where needed; stored clips
    first) and the picked take of each scene."""
    from tasks.plan import plan_project, prefer_stored
    from tasks.spoken import speech_folder, with_speech

    chains = plan_project(project, engine, None, settings.max_words_per_second)
    folder = speech_folder()
    chains = [[with_speech(p, folder) for p in chain] for chain in chains]
    if any((s.takes or 1) > 1 for s in project.scenes) or project.picks:
        from tasks.takes import book_takes      # only when there are takes or picks

        book = book_takes(chains, project, store.exists)
        chains, picked = book.chains, book.picked
    else:
        picked = {}
    return prefer_stored(chains, store.exists), picked


def make_storyboard(project: Project, store: ClipStore, settings: Settings, out_dir: str | Path,
                    engine: str | None = None) -> tuple[Path, Path]:
    """Plan, estimate and draw a production's storyboard; no engine is called."""
    from storage.history import open_history

    chains, picked = plan_for_storyboard(project, store, settings, engine)
    costs = estimate_chains(chains, store, lambda: open_history(settings.database_url), settings)
    return write_storyboard(project, chains, costs, out_dir, picked)
