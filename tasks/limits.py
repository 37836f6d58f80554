"""Per-engine concurrency, and the flow's thread pool sized from it.

Inside one process an engine's limit is a semaphore (no database round trip per clip). Where
several processes share an engine (task workers, a GPU) the limit is a Prefect global
concurrency limit, ``reelflow-engine-<name>`` or ``gpu:<index>``. Sizes come from each
engine's declaration (``engines.registry``), overridden by ``REELFLOW_ENGINE_CONCURRENCY``;
an engine that declares no limit runs as many clips at once as there are CPUs.
``REELFLOW_ENGINE_LIMITS`` (auto | process | global) chooses.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

from prefect import task
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.task_runners import ThreadPoolTaskRunner

from engines import registry
from reelflow.settings import get_settings

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


def _semaphore(name: str, size: int) -> threading.BoundedSemaphore:
    with _LOCK:
        return _SEMAPHORES.setdefault((name, size), threading.BoundedSemaphore(size))


@task(task_run_name="engine-limits")
def ensure_engine_limits(engines: list[str]) -> dict[str, int]:
    """Create (or update) the Prefect global limits of the engines this render shares with other processes."""
    wanted = {e: n for e in engines if uses_global_limit(e) and (n := registry.concurrency(e))}
    if wanted:
        with get_client(sync_client=True) as client:
            for engine, slots in wanted.items():
                client.upsert_global_concurrency_limit_by_name(limit_name(engine), slots)
    return wanted


@contextmanager
def engine_slot(engine: str | None):
    """Hold one of the engine's slots while it works: in-process, or the shared Prefect limit."""
    if not engine:
        yield
    elif uses_global_limit(engine):
        if registry.concurrency(engine):
            with concurrency(limit_name(engine), occupy=1, strict=False):
                yield
        else:
            yield
    else:
        with _semaphore(f"engine:{engine}", process_limit(engine)):
            yield


@contextmanager
def cpu_slot():
    """Hold one CPU slot around local media work (normalising), however large the pool is."""
    with _semaphore("cpu", cpu_slots()):
        yield
