"""Finished renders: look one up before any work, remember one after the stitch."""

from __future__ import annotations


from tasks.step import step

from projects import Project
from reelflow.settings import get_settings
from storage import open_store
from tasks import events, render_index
from tasks.models import ClipPlan, RenderResult
from tasks.takes import TakeBook


@step(task_run_name="find-finished-{spec.slug}")
def find_finished_render(spec: Project, chains: list[list[ClipPlan]], book: TakeBook) -> RenderResult | None:
    """The finished render of exactly this cut and finishing options, if nothing is left to make."""
    store = open_store(get_settings().storage)
    return render_index.find_in_index(store, spec, chains, book.picked, book.redone)


@step(task_run_name="remember-render-{result.render_id}")
def remember_render(spec: Project, result: RenderResult, files: dict[str, list]) -> str | None:
    """Index a finished render under the digest of the clips it used and its finishing options.
    ``files``: ``render_index.file_states(spec)`` taken when the render started. A file named by
    the finishing options (music, a card image) that changed since may not be what the stitch
    read: the render is then not indexed, and the next render cuts again."""
    store = open_store(get_settings().storage)
    digest = render_index.digest_of_result(spec, result.clips)      # first: the check below vouches for it
    if changed := render_index.changed_files(spec, files):
        said = (f"{', '.join(changed)} changed while render {result.render_id} ran: it is not "
                f"remembered as the finished render of this production (the next render cuts again)")
        events.warn(said)
        return None
    return render_index.record(store, digest, result)
