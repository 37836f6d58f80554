"""``reelflow history`` and ``reelflow cost``: what renders cost and did, read from the catalog.

Registered on :data:`reelflow.cli.app`. Neither command imports Prefect.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from reelflow.cli import ProjectArg, _check_engine, _load_or_exit, app, err, out
from reelflow.errors import InputError


@app.command()
def history(
    project: ProjectArg,
    render_id: Annotated[Optional[str], typer.Option("--render", help="Show this render's attempts.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many renders to list.")] = 10,
) -> None:
    """List a production's renders and the per-scene attempts of the latest (or --render)."""
    from rich.table import Table

    from projects import project_dir_of
    from projects.loader import safe_slug
    from reelflow.secrets import clip
    from reelflow.settings import get_settings
    from reelflow.urls import mask_url
    from storage.catalog import open_catalog

    folder, spec_file = project_dir_of(project)
    if not spec_file.is_file():             # else a typo showed the renders of the folder it sits in
        raise InputError(f"{project}: not a production (no project.yaml there)")
    slug = safe_slug(folder.resolve().name)
    catalog = open_catalog(get_settings().database_url)
    renders = catalog.renders(slug, limit)
    if not renders:
        err.print(f"no renders of {slug!r} in {mask_url(get_settings().database_url)}", markup=False, highlight=False)
        raise typer.Exit(1)
    table = Table(title=f"renders of {slug}")
    for column in ("render", "started (UTC)", "status", "made", "reused", "cost $"):
        table.add_column(column, no_wrap=True, min_width=9 if column == "status" else None)
    for r in renders:
        table.add_row(r.id, f"{r.started:%m-%d %H:%M}", r.status, str(r.generated), str(r.reused), f"{r.cost:.4f}")
    out.print(table)
    chosen = next((r for r in renders if r.id == render_id), None) if render_id else renders[0]
    if chosen is None:
        raise InputError(f"no render {render_id!r} among the last {limit} of {slug!r} (--limit shows more)")
    out.print(f"render {chosen.id}: {chosen.video_key or clip(chosen.error or chosen.status, 2000)}", highlight=False)
    detail = Table(title=f"attempts of render {chosen.id}")
    # The clip tells the takes of a scene apart (its key, as `reelflow takes` lists it).
    for column in ("scene", "clip", "engine", "status", "s", "cost $", "error"):
        detail.add_column(column, overflow="fold")
    for a in catalog.attempts(render_id=chosen.id):
        detail.add_row(a.scene, _short_key(a.clip_key), a.engine or "footage", a.status, f"{a.seconds:.1f}",
                       f"{a.cost:.4f}", clip(f"{a.error_class}: {a.error}", 160) if a.error_class else "")
    out.print(detail)


def _short_key(key: str | None) -> str:
    """``clips/0313542d…``: a clip's key, short (the digest's first 8 characters)."""
    if not key:
        return "-"
    folder, _, name = key.rpartition("/")
    return f"{folder}/{name[:8]}…" if len(name) > 12 else key


@app.command()
def cost(
    project: ProjectArg,
    engine: Annotated[Optional[str], typer.Option(help="Estimate for this engine.")] = None,
    scene: Annotated[Optional[list[str]], typer.Option("--scene", help="Only this scene id (repeatable).")] = None,
) -> None:
    """Estimate engine-seconds and money before a render (a clip already stored costs 0)."""
    from rich.table import Table

    from reelflow.settings import get_settings
    from storage import open_store
    from storage.history import open_history
    from tasks.cost import estimate

    _check_engine(engine)
    spec = _load_or_exit(project)
    settings = get_settings()
    rows = estimate(spec, open_store(settings.storage), lambda: open_history(settings.database_url), settings,
                    engine, scene or None)
    table = Table(title=f"estimated cost of {spec.slug}")
    for column in ("scene", "engine", "clip s", "status", "engine s", "$"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.scene_id if r.take == 1 else f"{r.scene_id} (take {r.take})", r.engine, f"{r.clip_seconds:g}", "stored" if r.cached else "to generate",
                      f"{r.engine_seconds:.1f}", f"{r.dollars:.4f}")
    out.print(table)
    to_make = [r for r in rows if not r.cached]
    print(f"total: {len(to_make)} clip(s) to generate, {sum(r.engine_seconds for r in rows):.1f} engine-seconds, "
          f"${sum(r.dollars for r in rows):.4f}")
