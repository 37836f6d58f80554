"""``render_project``: one production -> one stitched video, as a Prefect flow. ``render_batch``: all of them.

The render itself is ``flows.pipeline.render``; this module is its Prefect side: every clip a
task run (with Prefect's retries) in a thread pool sized from the engines' limits, progress and
per-scene tables as artifacts, the review as a paused run with a form.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import Field, WithJsonSchema

from engines.registry import names as engine_names
from flows.clip_queue import QueuedClip, as_landed
from flows.pipeline import RenderFailed, new_render_id, render  # noqa: F401  (RenderFailed, new_render_id: public here too)
from projects.schema import MAX_TAKES
from reelflow.errors import InputError
from reelflow.settings import get_settings
from tasks.clip import generate_clip
from tasks.limits import ensure_engine_limits, pool_size
from tasks.models import ClipPlan, RenderResult
from tasks.project import find_projects
from tasks.review import ReviewCancelled


# The deployment form offers the registered engines as a dropdown; the value stays a plain
# string so an engine registered at run time (a plugin) still works and an unknown name gets
# the registry's own message.
EngineChoice = Annotated[str | None, WithJsonSchema({"enum": [None, *engine_names()]})]

PROGRESS_EVERY = 1.0      # seconds between progress artifact updates (the last one always goes)


class EngineSizedTaskRunner(ThreadPoolTaskRunner):
    """A thread pool sized from the engines' limits when a flow run starts (not at import), so no
    engine waits on the pool rather than on its own limit."""

    def __init__(self, max_workers: int | None = None):
        super().__init__(max_workers=max_workers or pool_size())

    def duplicate(self) -> "EngineSizedTaskRunner":
        return type(self)()

    def __enter__(self):
        self._max_workers = pool_size()
        return super().__enter__()


class PrefectRunner:
    """Clips as task runs of this flow (or of ``reelflow worker`` task workers); progress as an artifact."""

    def __init__(self):
        self.logger = get_run_logger()
        self._progress_id = None
        self._shown = 0.0
        self._submitted: list = []

    def submit_clips(self, plans: list[ClipPlan], render_id: str) -> list:
        if get_settings().clip_workers == "task-workers":
            return [QueuedClip(plan, render_id) for plan in plans]      # a worker records and lands them
        # quote: a plan holds no futures, so Prefect need not walk each one looking for them
        # (walked several times per task run, on the flow thread).
        futures = generate_clip.map([quote(plan) for plan in plans], render_id=unmapped(render_id))
        self._submitted.extend(futures)
        return futures

    def settle(self) -> None:
        """Stop (Ctrl-C, SIGTERM): clip task runs not begun are cancelled, the ones being made
        land (they are paid for) and write their attempts before the render's log is closed."""
        import concurrent.futures

        begun = [f.wrapped_future for f in self._submitted if not f.wrapped_future.cancel()]
        concurrent.futures.wait(begun)

    def as_completed(self, futures: list):
        if futures and isinstance(futures[0], QueuedClip):       # clips queued for task workers
            return as_landed(futures, self.logger)
        return as_completed(futures)

    def outcome(self, future):
        if isinstance(future, QueuedClip):
            return future.outcome()
        return future.result(raise_on_failure=False)

    def progress(self, slug: str, done: int, total: int) -> None:
        if self._progress_id is None:
            self._progress_id = create_progress_artifact(100 * done / max(1, total),
                                                         description=f"Clips of {slug} landed")
            self._shown = time.monotonic()
        elif done == total or time.monotonic() - self._shown >= PROGRESS_EVERY:
            update_progress_artifact(self._progress_id, 100 * done / max(1, total))
            self._shown = time.monotonic()

    def ensure_limits(self, engines: list[str]) -> None:
        ensure_engine_limits(engines)

    def aside(self, fn, *args) -> None:
        fn(*args)                 # the UI shows the storyboard before the first clip


def _run_name() -> str:
    """render-<the production's folder name>: of the path as given, even where nothing is there."""
    path = Path(flow_run.parameters.get("project") or "project")
    folder = path.parent if path.name == "project.yaml" else path
    return f"render-{folder.resolve().name or 'project'}"


@flow(flow_run_name=_run_name, task_runner=EngineSizedTaskRunner(), log_prints=True)
def render_project(project: str, engine: EngineChoice = None, scenes: list[str] | None = None,
                   takes: Annotated[int | None, Field(ge=1, le=MAX_TAKES)] = None, redo: list[str] | None = None,
                   force: bool = False, review: bool = False) -> RenderResult:
    """Render a production folder (``projects/<slug>``) into one stitched video.

    Args:
        project: The production folder holding project.yaml (e.g. projects/demo), relative to
            the worker's working directory, or the path of its project.yaml.
        engine: Engine for every generated scene; empty: each scene's engine from project.yaml.
        scenes: Render only these scene ids (a quick preview); empty: every scene.
        takes: Clips per generated scene (overrides each scene's takes); empty: the scene's own.
        redo: Scenes that get one new take, which is picked (saved to picks.yaml).
        force: Render again even if this exact render is finished (same clips, cut, profile and
            finishing options); otherwise that render is returned at once.
        review: Once every take has landed, pause for a person to pick a take per scene or ask
            for a redo (a form on this run in the Prefect UI), then cut.
    """
    try:
        return render(PrefectRunner(), project, engine, scenes, takes, redo, force, review)
    except ReviewCancelled as exc:       # cancelled in the UI while the review waited: it stays so
        from prefect.states import Cancelled

        return Cancelled(message=str(exc))


@flow(name="render-batch", log_prints=True)
def render_batch(root: str = "projects", engine: EngineChoice = None) -> dict[str, str]:
    """Render every ``<root>/*/project.yaml``; one failing production does not stop the rest.

    The run fails (after rendering what it can) when any production failed, and at once when
    ``root`` holds no production: a scheduled batch that rendered nothing is not green."""
    from prefect.states import Failed

    logger = get_run_logger()
    folders = find_projects(root)
    if not folders:
        raise InputError(f"{root}: no production here (no */project.yaml under it)")
    outcomes: dict[str, str] = {}
    for folder in folders:
        name = Path(folder).name
        state = render_project(folder, engine=engine, return_state=True)
        if state.is_completed():
            outcomes[name] = state.result().video
        else:
            outcomes[name] = f"FAILED: {state.message}"
            logger.error("%s failed: %s", name, state.message)
    failed = [name for name, outcome in outcomes.items() if outcome.startswith("FAILED: ")]
    if failed:
        return Failed(message=f"{len(failed)} of {len(outcomes)} production(s) failed: {', '.join(failed)}",
                      data=outcomes)
    return outcomes
