"""Render in this process, without Prefect: the CLI's default when no Prefect API is configured.

Nothing here imports Prefect (a render starts in well under a second and uses a fraction of the
memory). Clips run in a thread pool sized from the engines' limits (``tasks.limits``), with the
same retry policy the Prefect task has (``REELFLOW_CLIP_RETRIES`` transient failures, backoff
``REELFLOW_RETRY_BACKOFF`` × 2^n with jitter); the catalog, the store, the render index and the
progress events are the same as under Prefect, so the two can be mixed on one store.
"""

from __future__ import annotations

import concurrent.futures
import logging
from concurrent.futures import Future, ThreadPoolExecutor

from flows.pipeline import render
from projects import Project
from reelflow.process import lower_thread_priority
from tasks.clip import generate_with_retries
from tasks.limits import pool_size
from tasks.models import ClipPlan, ClipRef, RenderResult


class LocalRunner:
    """Clips in a thread pool of this process; progress only as events (the CLI shows them)."""

    def __init__(self, workers: int | None = None):
        self.pool = ThreadPoolExecutor(workers or pool_size(), thread_name_prefix="reelflow-clip")
        self.side_pool = ThreadPoolExecutor(1, thread_name_prefix="reelflow-side", initializer=lower_thread_priority)
        self.logger = logging.getLogger("reelflow")
        self.side: list[Future] = []

    def submit_clips(self, plans: list[ClipPlan], render_id: str) -> list[Future]:
        return [self.pool.submit(generate_with_retries, plan, render_id) for plan in plans]

    def as_completed(self, futures: list[Future]):
        return concurrent.futures.as_completed(futures)

    def outcome(self, future: Future) -> ClipRef | BaseException:
        return future.exception() or future.result()

    def progress(self, slug: str, done: int, total: int) -> None:
        pass                      # the CLI's view follows the clip events

    def ensure_limits(self, engines: list[str]) -> None:
        pass                      # in-process semaphores and per-GPU lock files need no set-up

    def aside(self, fn, *args) -> None:
        """Side work (the storyboard) beside the clips, on a thread of its own at a lower priority
        (it takes no clip's place); the render waits for it before it returns."""
        self.side.append(self.side_pool.submit(fn, *args))

    def settle(self) -> None:
        """Stop: clips not begun are cancelled, the ones being made land (they are paid for)."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        for future in self.side:
            future.exception()    # side work reports its own failures; wait for it to land
        self.side_pool.shutdown(wait=True)
        self.pool.shutdown(wait=True, cancel_futures=True)


def render_local(project: str, engine: str | None = None, scenes: list[str] | None = None,
                 takes: int | None = None, redo: list[str] | None = None, force: bool = False,
                 review: bool = False, spec: Project | None = None) -> RenderResult:
    """``render_project``'s render, run in this process without Prefect (``spec``: already loaded)."""
    runner = LocalRunner()
    try:
        return render(runner, project, engine, scenes, takes, redo, force, review, spec)
    finally:
        runner.close()
