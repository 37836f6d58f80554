"""Per-engine concurrency, and the flow's thread pool sized from it.

Inside one process an engine's limit is a semaphore (no database round trip per clip). Where
several processes share an engine (task workers, a GPU) the limit is a Prefect global
concurrency limit, ``reelflow-engine-<name>`` or ``gpu:<index>``, inside a Prefect run, and
lock files shared by the machine's processes outside one (``machine_slot``). Sizes come from each
engine's declaration (``engines.registry``), overridden by ``REELFLOW_ENGINE_CONCURRENCY``;
an engine that declares no limit runs as many clips at once as there are CPUs.
``REELFLOW_ENGINE_LIMITS`` (auto | process | global) chooses.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

from engines import registry
from reelflow.settings import get_settings
from tasks.step import in_prefect_run, step

MAX_POOL = 128
_SEMAPHORES: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_LOCK = threading.Lock()


def limit_name(engine: str) -> str:
    """``gpu:<index>`` for engines that declare a GPU slot (one clip per GPU), else ``reelflow-engine-<name>``."""
    if registry.info(engine).slot == "gpu":
        return f"gpu:{get_settings().gpu}"
    return f"reelflow-engine-{engine}"


def cpu_slots() -> int:
    return max(1, os.cpu_count() or 1)


def uses_global_limit(engine: str) -> bool:
    """Is ``engine``'s limit shared with other processes (a Prefect global limit)?"""
    settings = get_settings()
    if settings.engine_limits == "auto":
        return registry.info(engine).slot == "gpu" or settings.clip_workers == "task-workers"
    return settings.engine_limits == "global"


def process_limit(engine: str) -> int:
    """Clips of ``engine`` at once inside this process."""
    return registry.concurrency(engine) or cpu_slots()


def pool_size() -> int:
    """Threads for a render's task runner: every engine's limit at once, plus the CPU work."""
    limits = sum(registry.concurrency(name) or 0 for name in registry.names())
    return max(4, min(MAX_POOL, limits + cpu_slots()))


def _semaphore(name: str, size: int) -> threading.BoundedSemaphore:
    with _LOCK:
        return _SEMAPHORES.setdefault((name, size), threading.BoundedSemaphore(size))


@step(task_run_name="engine-limits")
def ensure_engine_limits(engines: list[str]) -> dict[str, int]:
    """Create (or update) the Prefect global limits of the engines this render shares with other processes."""
    wanted = {e: n for e in engines if uses_global_limit(e) and (n := registry.concurrency(e))}
    if wanted:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectAlreadyExists

        with get_client(sync_client=True) as client:
            for engine, slots in wanted.items():
                try:
                    client.upsert_global_concurrency_limit_by_name(limit_name(engine), slots)
                except ObjectAlreadyExists:     # another render created it between the read and the create
                    client.upsert_global_concurrency_limit_by_name(limit_name(engine), slots)
    return wanted


@contextmanager
def engine_slot(engine: str | None):
    """Hold one of the engine's slots while it works: in-process, or shared with other processes
    (the Prefect global limit inside a Prefect run, lock files on this machine outside one)."""
    if not engine:
        yield
    elif uses_global_limit(engine):
        if not (slots := registry.concurrency(engine)):
            yield
        elif in_prefect_run():
            with global_slot(limit_name(engine)):
                yield
        else:
            with machine_slot(limit_name(engine), slots):
                yield
    else:
        with _semaphore(f"engine:{engine}", process_limit(engine)):
            yield


GLOBAL_POLL = 0.25        # most seconds a clip refused a global slot waits before asking again
LEASE_SECONDS = 300.0     # a held slot's lease (server minimum 60 s), renewed while held; frees a dead process's slot
_WAKE: dict[str, threading.Condition] = {}


@contextmanager
def global_slot(name: str, poll: float = GLOBAL_POLL, lease: float = LEASE_SECONDS):
    """One slot of the Prefect global concurrency limit ``name``, held under a lease the server
    counts (so the limit stays exact across processes); no such limit: nothing to hold.

    Not ``prefect.concurrency.sync.concurrency``: that sleeps out the server's Retry-After
    (about the average occupancy × refusals / limit, up to 30 s) after each refusal, so slots
    another process frees stay idle for much of a clip's length: two renders sharing an engine
    got about 70% of its throughput (bench.global_limits). Here a refused request asks again
    after at most ``poll`` seconds, or at once when a clip of this process lets a slot go; one
    thread per process asks at a time (the others queue here), so the server sees at most
    1/poll requests a second per waiting process."""
    import httpx
    from prefect.client.orchestration import get_client

    with _LOCK:
        wake = _WAKE.setdefault(name, threading.Condition())
    with get_client(sync_client=True) as client:
        with _semaphore(f"asking:{name}", 1):
            while True:
                try:
                    granted = client.increment_concurrency_slots_with_lease(
                        names=[name], slots=1, mode="concurrency", lease_duration=lease).json()
                    break
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code != 423:           # 423 Locked: every slot is taken
                        raise
                    wait = min(poll, float(exc.response.headers.get("Retry-After") or poll))
                with wake:
                    wake.wait(wait)
        if not granted.get("limits"):
            yield
            return
        lease_id, done = granted["lease_id"], threading.Event()

        def renew():
            while not done.wait(lease * 0.75):
                try:
                    client.renew_concurrency_lease(lease_id, lease)
                except Exception as exc:                  # the clip goes on; the lease may lapse
                    from tasks.step import run_logger

                    run_logger().warning("could not renew the lease on %s: %s", name, exc)

        renewer = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()
            client.release_concurrency_slots_with_lease(lease_id)
            with wake:
                wake.notify()


@contextmanager
def machine_slot(name: str, slots: int, poll: float = 0.1):
    """One of ``slots`` slots named ``name`` shared by every process on this machine (a GPU between
    two renders without a Prefect server): an exclusive lock on one of ``slots`` files, held
    until the block ends or the process dies."""
    import fcntl
    import hashlib
    import tempfile
    import time
    from pathlib import Path

    folder = Path(tempfile.gettempdir()) / "reelflow-slots"
    folder.mkdir(exist_ok=True)
    stem = hashlib.sha256(name.encode()).hexdigest()[:16]
    with _semaphore(f"machine:{name}", slots):       # threads of this process queue here first
        while True:
            for i in range(slots):
                handle = open(folder / f"{stem}-{i}.lock", "a+")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    handle.close()
                return
            time.sleep(poll)


@contextmanager
def cpu_slot():
    """Hold one CPU slot around local media work (normalising), however large the pool is."""
    with _semaphore("cpu", cpu_slots()):
        yield
