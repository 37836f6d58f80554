"""Catalog bookkeeping for a render: open it, record its attempts, close it (completed or failed).

The process that runs a render (``flows.local`` or the Prefect flow ``render_project``) writes
its rows in order on a thread of its own (:class:`RenderLog`), through ``storage.catalog_sqlite``
where the catalog is a SQLite file that already has its tables (no SQLAlchemy: 0.4 s of import
and the ORM's work saved), else through the catalog itself; either overlaps the render's own
work. Before anything is paid for or
published the render waits for the catalog to be open and its row written
(:func:`catalog_ready`), so a database that is unreachable or refuses the row stops it before
an engine is called; closing waits for every row. A clip task that runs in another process
(a ``reelflow worker`` task worker) writes its attempts to the catalog itself, at once.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator, Protocol

from projects import Project
from reelflow.process import lower_thread_priority
from reelflow.settings import get_settings
from storage.catalog_errors import is_locked
from tasks.models import RenderResult
from tasks.step import step


class AttemptLog(Protocol):
    """Where a clip's attempts are recorded: the catalog, or a render's :class:`RenderLog`."""

    def add_attempt(self, **fields: Any) -> None: ...


# Seconds a render's writer keeps trying a SQLite catalog that another process holds locked
# (each try waits the driver's busy timeout, ``storage.catalog_errors.BUSY_TIMEOUT``).
LOCK_WAIT = 90.0


class RenderLog:
    """One in-process render's catalog writes, applied in order on a thread of their own.

    The methods mirror the catalog's writes and return at once; :meth:`ready` waits for the
    catalog to be open and the render's row written (and raises their error), or with
    ``flush=True`` for every row queued so far; :meth:`close` for every row (and raises the
    error of a row that could not be written). A catalog locked by another process is tried
    again for up to :data:`LOCK_WAIT` seconds; rows that could not be written are kept and
    tried again with the next ones, so none is dropped while a later write can still land."""

    def __init__(self, url: str):
        self.url = url
        self._rows: queue.SimpleQueue = queue.SimpleQueue()
        self._open = threading.Event()
        self._started = threading.Event()       # the render's own row is written (or failed)
        self._start_queued = False
        self._error: BaseException | None = None
        self._pending: list[tuple] = []          # rows queued and not yet written, in order
        self._locked_since: float | None = None
        self._thread = threading.Thread(target=self._write, name="reelflow-catalog", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        lower_thread_priority()      # bookkeeping: the render's clips and media come first
        catalog = None
        try:
            from storage.catalog_sqlite import open_lite

            catalog = open_lite(self.url)
        except BaseException as exc:  # noqa: BLE001 - handed to the render at ready()/close()
            self._error = exc
        self._open.set()
        try:
            self._apply(catalog)
        finally:
            self._started.set()
            if hasattr(catalog, "close"):
                catalog.close()

    def _apply(self, catalog) -> None:
        done = False
        while not done:
            batch = [self._rows.get()]
            while not self._rows.empty():           # what queued up meanwhile: one transaction for
                batch.append(self._rows.get())      # a run of attempts (a 200-clip render: a few)
            done = batch[-1] is None
            self._pending += [item for item in batch if isinstance(item, tuple)]
            if catalog is not None:                 # else the catalog could not be opened: _error says why
                self._flush(catalog)
            self._started.set()
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()                       # a ready(flush=True) waiting for these rows

    def _flush(self, catalog) -> None:
        """Write the pending rows in order; stop at the first that fails (it and the rows after
        it stay pending, in order: a render's end is never written before its attempts)."""
        written = 0
        for name, args, kwargs, count in _runs(self._pending):
            try:
                self._try(lambda: getattr(catalog, name)(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the render at ready()/close()
                self._error = exc
                break
            written += count
        del self._pending[:written]
        if not self._pending:
            self._error = None                       # every row is in: an earlier failure cost nothing

    def _try(self, write) -> None:
        """``write()``, again while another process holds the catalog locked, for up to
        :data:`LOCK_WAIT` seconds since it was first found locked (then once per batch)."""
        while True:
            try:
                write()
            except BaseException as exc:
                if not is_locked(exc):
                    raise
                now = time.monotonic()
                self._locked_since = self._locked_since or now
                if now - self._locked_since >= LOCK_WAIT:
                    raise
                time.sleep(0.1)
                continue
            self._locked_since = None
            return

    def start_render(self, *args: Any, **kwargs: Any) -> None:
        self._start_queued = True
        self._rows.put(("start_render", args, kwargs))

    def add_attempt(self, **fields: Any) -> None:
        self._rows.put(("add_attempt", (), fields))

    def finish_render(self, *args: Any, **kwargs: Any) -> None:
        self._rows.put(("finish_render", args, kwargs))

    def ready(self, flush: bool = False) -> None:
        """Wait until the catalog is open and the render's row is in: a catalog that cannot take
        it (locked, refusing, full) stops the render before an engine is paid. ``flush``: wait
        for every row queued so far (before anything is published: a video is never published
        whose clips' attempts the catalog did not take)."""
        self._open.wait()
        if self._start_queued:
            self._started.wait()
        if flush:
            written = threading.Event()
            self._rows.put(written)
            written.wait()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._rows.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _runs(items: list[tuple]) -> Iterator[tuple]:
    """``items`` in order, each run of ``add_attempt`` as one ``add_attempts``, with the number
    of items each stands for."""
    attempts: list[dict] = []
    for name, args, kwargs in items:
        if name == "add_attempt":
            attempts.append(kwargs)
            continue
        if attempts:
            yield "add_attempts", (attempts,), {}, len(attempts)
            attempts = []
        yield name, args, kwargs, 1
    if attempts:
        yield "add_attempts", (attempts,), {}, len(attempts)


_LOGS: dict[str, RenderLog] = {}
_LOCK = threading.Lock()


def render_catalog(render_id: str):
    """Where ``render_id``'s rows go: its :class:`RenderLog` when the render runs in this
    process, else (a task worker's clip) the catalog itself."""
    with _LOCK:
        log = _LOGS.get(render_id)
    if log is not None:
        return log
    from storage.catalog import open_catalog

    return open_catalog(get_settings().database_url)


def catalog_ready(render_id: str, flush: bool = False) -> None:
    """Wait until ``render_id``'s catalog is open (``flush``: and holds every row queued so
    far); raise its error (exit 3) if it cannot be."""
    with _LOCK:
        log = _LOGS.get(render_id)
    if log is not None:
        log.ready(flush)


@step(task_run_name="open-render-{render_id}")
def open_render(spec: Project, render_id: str, engine: str | None, scenes: int) -> None:
    """Record that a render of ``spec`` started."""
    args = (render_id, spec.slug, spec.title, spec.root, engine or spec.engine.name, scenes)
    log = RenderLog(get_settings().database_url)
    with _LOCK:
        _LOGS[render_id] = log
    log.start_render(*args)


@step(task_run_name="close-render-{render_id}")
def close_render(render_id: str, result: RenderResult | None = None, error: str | None = None) -> None:
    """Record how a render ended, with its totals (and, in this process, wait for every row)."""
    catalog = render_catalog(render_id)
    if result is None:
        catalog.finish_render(render_id, status="failed", error=error)
    else:
        catalog.finish_render(render_id, status="completed", generated=result.generated, reused=result.reused,
                              video_key=result.video_key, duration=result.duration)
    with _LOCK:
        log = _LOGS.pop(render_id, None)
    if log is not None:
        log.close()


def drain_render(render_id: str) -> None:
    """Write what ``render_id`` queued, leaving the render open: a render stopped by a signal or
    cancelled (the next render marks it crashed). Errors are not raised; the render's own is."""
    with _LOCK:
        log = _LOGS.pop(render_id, None)
    if log is not None:
        try:
            log.close()
        except BaseException:  # noqa: BLE001 - the render's own error is the one to report
            pass
