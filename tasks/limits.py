"""Per-engine concurrency: Prefect global concurrency limits named ``reelflow-engine-<name>``, or
``gpu:<index>`` for engines that declare a GPU slot; sizes from each engine's declaration
(``engines.registry``), overridden by ``REELFLOW_ENGINE_CONCURRENCY``."""

from __future__ import annotations

from contextlib import contextmanager

from prefect import task
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from engines import registry
from reelflow.settings import get_settings


def limit_name(engine: str) -> str:
    """``gpu:<index>`` for engines that declare a GPU slot (one clip per GPU), else ``reelflow-engine-<name>``."""
    if registry.info(engine).slot == "gpu":
        return f"gpu:{get_settings().gpu}"
    return f"reelflow-engine-{engine}"


@task(task_run_name="engine-limits")
def ensure_engine_limits(engines: list[str]) -> dict[str, int]:
    """Create (or update) the limits for the engines this render uses, from the settings."""
    wanted = {e: n for e in engines if (n := registry.concurrency(e))}
    with get_client(sync_client=True) as client:
        for engine, slots in wanted.items():
            client.upsert_global_concurrency_limit_by_name(limit_name(engine), slots)
    return wanted


@contextmanager
def engine_slot(engine: str | None):
    """Hold one slot of the engine's limit while it works (no limit configured: no wait)."""
    if engine and registry.concurrency(engine):
        with concurrency(limit_name(engine), occupy=1, strict=False):
            yield
    else:
        yield
