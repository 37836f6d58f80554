"""Finished renders: look one up before any work, remember one after the stitch."""

from __future__ import annotations

from tasks.step import step

from projects import Project
from reelflow.settings import get_settings
from storage import open_store
from tasks import render_index
from tasks.models import ClipPlan, RenderResult
from tasks.takes import TakeBook


@step(task_run_name="find-finished-{spec.slug}")
def find_finished_render(spec: Project, chains: list[list[ClipPlan]], book: TakeBook) -> RenderResult | None:
    """The finished render of exactly this cut and finishing options, if nothing is left to make."""
    store = open_store(get_settings().storage)
    return render_index.find_in_index(store, spec, chains, book.picked, book.redone)


@step(task_run_name="remember-render-{result.render_id}")
def remember_render(spec: Project, result: RenderResult) -> str:
    """Index a finished render under the digest of the clips it used and its finishing options."""
    store = open_store(get_settings().storage)
    return render_index.record(store, render_index.digest_of_result(spec, result.clips), result)
