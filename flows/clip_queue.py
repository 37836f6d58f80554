"""A render's clips served by ``reelflow worker`` task workers (``REELFLOW_CLIP_WORKERS=task-workers``).

Each clip is a Prefect background task run (``generate_clip.delay``) that a worker picks up.
Waiting on them, this module adds what Prefect's futures do not:

- a clip whose task run *crashed* (its worker was stopped by SIGTERM or Ctrl-C mid-clip,
  ``reelflow.clip_worker``) is queued again for another worker, up to ``REELFLOW_CLIP_RETRIES``
  times, instead of ending the render;
- when no worker has picked up a queued clip for ``REELFLOW_WORKER_WAIT`` seconds, the render
  says once that it is waiting for a ``reelflow worker`` (a ``waiting_for_worker`` event the CLI
  prints on stderr, and a warning in the run's logs), and keeps waiting.

Completion comes from Prefect's task-run events; the states are also read from the API every
``POLL`` seconds, so a missed event cannot leave the render waiting.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

from reelflow.settings import get_settings
from tasks import events
from tasks.clip import generate_clip
from tasks.models import ClipPlan

POLL = 2.0          # seconds between reads of the queued clips' states


class QueuedClip:
    """One clip of a render on the task queue; ``future`` is its current task run."""

    def __init__(self, plan: ClipPlan, render_id: str):
        self.plan, self.render_id = plan, render_id
        self.requeued = 0
        self.submit()

    def submit(self) -> None:
        self.future = generate_clip.delay(self.plan, self.render_id)
        self.queued = time.monotonic()

    def outcome(self):
        return self.future.result(raise_on_failure=False)


def _states(ids: list) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=ids)), limit=len(ids))
    return {run.id: run.state for run in runs}


def as_landed(clips: list[QueuedClip], logger: Any) -> Iterator[QueuedClip]:
    """The clips as their task runs end; a crashed one is queued again first (see the module)."""
    settings = get_settings()
    wake = threading.Event()
    pending = list(clips)
    for clip in pending:
        clip.future.add_done_callback(lambda _: wake.set())
    said = False
    moved = time.monotonic()            # when a clip of ours was last picked up or landed
    while pending:
        wake.wait(POLL)
        wake.clear()
        states = _states([clip.future.task_run_id for clip in pending])
        for clip in list(pending):
            state = states.get(clip.future.task_run_id)
            if state is None or not state.is_final():
                continue
            moved = time.monotonic()
            if state.is_crashed() and clip.requeued < settings.clip_retries:
                clip.requeued += 1
                logger.warning("scene %s: its clip's task run crashed (%s); queued again (%d of %d)",
                               clip.plan.scene_id, state.message, clip.requeued, settings.clip_retries)
                clip.submit()
                clip.future.add_done_callback(lambda _: wake.set())
                continue
            pending.remove(clip)
            yield clip
        if any(state is not None and state.name != "Scheduled" for state in states.values()):  # picked up
            moved = time.monotonic()
        if not pending or time.monotonic() - moved < settings.worker_wait:
            said = False
        elif not said:
            said = True
            message = (f"waiting for a `reelflow worker` to serve generate_clip: none has picked up a clip of "
                       f"this render for {settings.worker_wait:g} s ({len(pending)} queued; REELFLOW_WORKER_WAIT)")
            logger.warning(message)
            events.emit("waiting_for_worker", message=message, clips=len(pending))
