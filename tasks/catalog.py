"""Catalog bookkeeping for a render: open it, close it (completed or failed)."""

from __future__ import annotations

from tasks.step import step

from projects import Project
from reelflow.settings import get_settings
from storage.catalog import open_catalog
from tasks.models import RenderResult


@step(task_run_name="open-render-{render_id}")
def open_render(spec: Project, render_id: str, engine: str | None, scenes: int) -> None:
    """Record that a render of ``spec`` started."""
    open_catalog(get_settings().database_url).start_render(
        render_id, spec.slug, spec.title, spec.root, engine or spec.engine.name, scenes)


@step(task_run_name="close-render-{render_id}")
def close_render(render_id: str, result: RenderResult | None = None, error: str | None = None) -> None:
    """Record how a render ended, with its totals."""
    catalog = open_catalog(get_settings().database_url)
    if result is None:
        catalog.finish_render(render_id, status="failed", error=error)
        return
    catalog.finish_render(render_id, status="completed", generated=result.generated, reused=result.reused,
                          video_key=result.video_key, duration=result.duration)
