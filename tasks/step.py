"""Pipeline steps: plain functions that become Prefect task runs only inside a Prefect flow run.

A render runs one of two ways (``flows.pipeline``): as the Prefect flow ``render_project`` (the
UI, deployments, schedules, and the CLI when a Prefect API is configured), where each step is a
task run the UI shows; or in this process without Prefect (the CLI's default), where a step is a
plain call and Prefect is never imported. ``@step(...)`` keeps one definition for both: the
Prefect task is built from the function (with ``options``) on first use inside a flow run.

``run_logger()`` is Prefect's run logger inside a run and the ``reelflow`` logger outside one.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Callable

Options = dict[str, Any] | Callable[[], dict[str, Any]]


def in_prefect_run() -> bool:
    """Is this code running inside a Prefect flow or task run? (Never imports Prefect.)"""
    if "prefect.context" not in sys.modules:
        return False
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    if in_prefect_run():
        from prefect import get_run_logger

        return get_run_logger()
    return logging.getLogger("reelflow")


def uncached() -> dict[str, Any]:
    """Steps are neither cached nor their results persisted by Prefect: what a render makes is
    kept content-addressed in the store (a clip is found by its key before an engine is called),
    and Prefect's default (hash the inputs and the task's source, open a transaction, write a
    result file) costs every task run milliseconds for nothing. A ``reelflow worker`` task
    worker persists the results of the clips it serves (Prefect does so for served tasks)."""
    from prefect.cache_policies import NO_CACHE

    return dict(cache_policy=NO_CACHE, persist_result=False)


class Step:
    """A function that is a Prefect task inside a flow run and a plain call everywhere else.

    ``.fn`` is the function; ``.task`` the Prefect task (built on first use); ``.map`` and
    ``.delay`` are the task's.
    """

    def __init__(self, fn: Callable, options: Options):
        self.fn = fn
        self._options = options
        self._task = None
        functools.update_wrapper(self, fn)

    @property
    def task(self):
        if self._task is None:
            from prefect import task

            options = self._options() if callable(self._options) else self._options
            self._task = task(self.fn, **{**uncached(), **options})
        return self._task

    def __call__(self, *args, **kwargs):
        if in_prefect_run():
            return self.task(*map(_quoted, args), **{name: _quoted(value) for name, value in kwargs.items()})
        return self.fn(*args, **kwargs)

    def map(self, *args, **kwargs):
        return self.task.map(*args, **kwargs)

    def delay(self, *args, **kwargs):
        return self.task.delay(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<step {self.fn.__module__}.{self.fn.__qualname__}>"


def _quoted(value: Any) -> Any:
    """A step's argument as Prefect's ``quote``: steps are called with values, never futures,
    and Prefect would otherwise walk every argument twice per task run looking for some (the
    production, every plan and clip of the render: 0.3 s of a 100-scene flow's CPU time)."""
    from prefect.utilities.annotations import quote

    return value if isinstance(value, (str, int, float, bool, type(None))) else quote(value)


def step(options: Options | None = None, **kwargs: Any) -> Callable[[Callable], Step]:
    """Declare a pipeline step; ``options`` (or keyword arguments) are the Prefect task's
    options, or a function returning them (evaluated when the task is first built)."""
    chosen = options if options is not None else kwargs
    return lambda fn: Step(fn, chosen)
