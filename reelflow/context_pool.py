"""A thread pool whose jobs run in a copy of the submitting thread's context.

Prefect keeps the run a thread belongs to in context variables, which a plain
``ThreadPoolExecutor`` does not carry over: work a render hands to its own threads inside a
Prefect run (normalising clips as they land, the contact sheet) would log and publish as if
outside any run, and Prefect deprecates artifacts made there. Each job here runs in a copy of
the context it was submitted from (a copy each: one context cannot be entered by two threads).
"""

from __future__ import annotations

import contextvars
from concurrent.futures import Future, ThreadPoolExecutor


class ContextPool(ThreadPoolExecutor):
    def submit(self, fn, /, *args, **kwargs) -> Future:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
