"""In-process progress events (the CLI's progress bar listens; Prefect does not need them)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

Listener = Callable[[str, dict[str, Any]], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def emit(event: str, **data: Any) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event, data)
        except Exception:  # noqa: BLE001 - a broken listener must not break a render
            pass


def warn(text: str) -> None:
    """A warning for the user: in the ``reelflow`` log (Prefect's run log in a flow) and to the
    listeners (the CLI prints it under the render's lines)."""
    logging.getLogger("reelflow").warning("%s", text)
    emit("warning", text=text)
