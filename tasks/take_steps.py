"""The takes steps of a render (Prefect tasks over the pure logic in ``tasks.takes``)."""

from __future__ import annotations

from tasks.step import step

from projects import Project
from reelflow.settings import get_settings
from storage import open_store
from tasks.models import ClipPlan
from tasks.takes import TakeBook, book_takes


@step(task_run_name="book-takes")
def plan_takes(chains: list[list[ClipPlan]], project: Project, takes: int | None,
               redo: list[str] | None) -> TakeBook:
    """Which takes of each scene to make (1..N, the picked one, redo's new one) and which exist."""
    return book_takes(chains, project, open_store(get_settings().storage).exists, takes, redo)


@step(task_run_name="save-picks")
def record_picks(project: Project, picks: dict[str, int]) -> None:
    """Save ``scene: take`` choices to the production's picks.yaml."""
    from projects.picks import save_picks

    save_picks(project.root, picks)
