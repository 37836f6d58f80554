"""The Prefect side of ``reelflow worker``: the API it needs, and what a stop signal does.

A worker serves ``generate_clip`` from the Prefect server renders send clips to, so it needs
``PREFECT_API_URL`` (a temporary server is private to the process that starts it) and the
server must answer; both are checked once, before serving.

SIGTERM (``docker stop``, Kubernetes) or SIGINT (Ctrl-C) stops the worker at once: each clip
it is making gets its task run set to Crashed, as Prefect's task engine does on a
``TerminationSignal``, and the state-change event is sent, so the render waiting on it sees
the clip end and queues it again for another worker. Without this the task run stayed
Running on the server for ever and the render waited for ever.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from reelflow.errors import InfrastructureError, InputError
from reelflow.urls import mask_url

API_HINT = ("start a server (prefect server start) and set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api) "
            "for the workers and the render alike")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class WorkerStopped(BaseException):
    """A stop signal reached the worker (raised in the main thread by our handler)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def require_api() -> str:
    """The configured Prefect API URL, once its health route answered; else one-line errors."""
    from reelflow.orchestrator import configured_api_url

    url = configured_api_url()
    if not url:
        raise InputError("reelflow worker needs PREFECT_API_URL: the Prefect server that renders with "
                         "REELFLOW_CLIP_WORKERS=task-workers send clips to (a temporary server is private "
                         "to the process that starts it)", hint=API_HINT)
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            fault = client.api_healthcheck()
    except Exception as exc:  # noqa: BLE001 - whatever it is, the API did not answer
        fault = exc
    if fault is not None:
        raise InfrastructureError(f"the Prefect API at {mask_url(url)} cannot be reached "
                                  f"({type(fault).__name__})", hint=API_HINT)
    return url


def serve_clips(limit: int, timeout: float | None) -> WorkerStopped | None:
    """Serve ``generate_clip`` until ``timeout`` (None: for ever) or a stop signal.

    Returns the stop (its in-flight clips already crashed on the server), or None at the timeout."""
    from prefect._internal.concurrency.api import create_call, from_sync

    workers: list = []                       # the TaskWorker, made in Prefect's loop thread (it must be)

    def stop(signum: int, frame: Any) -> None:
        raise WorkerStopped(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    try:
        call = from_sync.call_soon_in_loop_thread(create_call(_serve, workers, limit, timeout))
        while True:
            # Waited for in short steps: the kernel may hand a signal to another thread, and
            # Python runs its handler only when the main thread next runs; an endless wait
            # left a Ctrl-C unheard until the worker stopped on its own.
            try:
                call.result(timeout=0.2)
                break
            except TimeoutError:
                if call.future.done():
                    raise

    except WorkerStopped as stopped:
        for signum in STOP_SIGNALS:          # a second Ctrl-C must not cut the crash reports short
            signal.signal(signum, signal.SIG_IGN)
        stopped.crashed = crash_in_flight(workers[0], stopped.signum) if workers else 0
        return stopped
    return None


async def _serve(workers: list, limit: int, timeout: float | None) -> None:
    from prefect.task_worker import TaskWorker

    from tasks.clip import generate_clip

    worker = TaskWorker(generate_clip.task, limit=limit)
    workers.append(worker)
    try:
        await worker.astart(timeout=timeout)
    except* TimeoutError:                    # --timeout reached
        pass


def _in_flight(worker) -> set:
    while True:
        try:
            return {run_id for runs in list(worker.in_flight_task_runs.values()) for run_id in list(runs)}
        except RuntimeError:                 # changed while we looked (the loop thread): look again
            continue


def crash_in_flight(worker, signum: int) -> int:
    """Set every task run this worker is making to Crashed and send its event (as Prefect's task
    engine does for a TerminationSignal); the number crashed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.events.worker import EventsWorker
    from prefect.states import Crashed
    from prefect.utilities.engine import emit_task_run_state_change_event

    name = signal.Signals(signum).name
    message = (f"Execution was aborted by a termination signal: the clip worker {socket.gethostname()}:"
               f"{os.getpid()} was stopped ({name})")
    done: set = set()
    crashed = 0
    with get_client(sync_client=True) as client:
        while todo := _in_flight(worker) - done:
            for run_id in todo:
                done.add(run_id)
                try:
                    run = client.read_task_run(run_id)
                    if run.state is not None and run.state.is_final():
                        continue
                    result = client.set_task_run_state(run_id, Crashed(message=message), force=True)
                except Exception:  # noqa: BLE001 - the server is gone too: nothing more to tell it
                    continue
                if result.status == SetStateStatus.ACCEPT and result.state is not None:
                    crashed += result.state.type == StateType.CRASHED
                    emit_task_run_state_change_event(run, run.state, result.state)
    EventsWorker.drain_all(timeout=5)
    return crashed
