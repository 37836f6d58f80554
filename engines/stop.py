"""A render that is stopping (Ctrl-C, SIGTERM): what is not paid for yet is not started.

When a render is interrupted it lets the clips its engines are making land (they are paid
for) and asks for no other. The orchestrator calls :func:`stop`; then a clip that has not
reached its engine (waiting for the engine's slot, a retry's backoff, a quota's reset) gives
up with :class:`Stopped`, and an engine that has had no job accepted stops retrying its
submission. :func:`resume` at a render's start clears it.
"""

from __future__ import annotations

import threading

from engines.errors import EngineError

_STOPPING = threading.Event()


class Stopped(EngineError):
    """The render is stopping: this clip was not asked of its engine (nothing was paid for)."""


def stop() -> None:
    _STOPPING.set()


def resume() -> None:
    _STOPPING.clear()


def stopping() -> bool:
    return _STOPPING.is_set()


def pause(seconds: float) -> bool:
    """Sleep ``seconds``, or less if the render stops meanwhile: True when it is stopping."""
    return _STOPPING.wait(max(0.0, seconds))


def check(what: str) -> None:
    """Raise :class:`Stopped` (``what``: the work not started) if the render is stopping."""
    if _STOPPING.is_set():
        raise Stopped(f"the render is stopping: {what} not started")
