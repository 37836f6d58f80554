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

        with get_client(sync_client=True) as client:
            for engine, slots in wanted.items():
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
            from prefect.concurrency.sync import concurrency

            with concurrency(limit_name(engine), occupy=1, strict=False):
                yield
        else:
            with machine_slot(limit_name(engine), slots):
                yield
    else:
        with _semaphore(f"engine:{engine}", process_limit(engine)):
            yield


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
