"""The part of the catalog a render touches, on the standard library's sqlite3 (no SQLAlchemy).

A render in this process writes a render row, one attempt per clip and the render's end. Through
the ORM (``storage.catalog``) that costs about 0.4 s of SQLAlchemy import and 0.15 s of ORM work,
a seventh of an edit's CPU on two cores. When the catalog is a SQLite file that already holds
the ORM's tables, with exactly the columns ``storage.catalog`` declares (a test holds
:data:`COLUMNS` and the models together), :func:`open_lite` gives a :class:`LiteCatalog` that
makes the same rows with plain SQL, and reads the one figure an estimate needs (engine speed).
It never changes the file's set-up: a file not yet in WAL mode is the catalog's to set up.
Otherwise (no file yet, a catalog from an older version, PostgreSQL, a URL with options) it
gives the catalog itself, which creates and migrates tables.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reelflow.secrets import redact
from reelflow.urls import mask_url
from storage import catalog_errors
from storage.catalog_errors import HINT, CatalogError
from storage.history import sqlite_file
from storage.lease import HOST, same_process_alive

# The ORM's tables, their columns in order (storage.catalog's models; tests compare the two).
COLUMNS: dict[str, tuple[str, ...]] = {
    "projects": ("slug", "title", "root", "updated"),
    "renders": ("id", "project", "status", "engine", "scenes", "host", "pid", "generated", "reused",
                "started", "finished", "video_key", "duration", "cost", "error"),
    "clips": ("key", "project", "scene", "engine", "model", "duration", "created"),
    "attempts": ("id", "render_id", "project", "scene", "engine", "model", "status", "started", "finished",
                 "seconds", "clip_seconds", "error_class", "error", "cost", "clip_key", "worker"),
}
ATTEMPT_DEFAULTS: dict[str, Any] = {"engine": None, "model": None, "finished": None, "seconds": 0.0,
                                    "clip_seconds": None, "error_class": None, "error": None, "cost": 0.0,
                                    "clip_key": None, "worker": None}
RENDER_END_FIELDS = ("generated", "reused", "video_key", "duration")
ERROR_CHARS = 4000


def stamp(when: datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite: the wall fields, without the zone (UTC here)."""
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def _now() -> str:
    return stamp(datetime.now(timezone.utc))


def _error_text(error: object) -> str | None:
    return redact(error)[:ERROR_CHARS] if error else None


def _tally(db: sqlite3.Connection, render_id: str) -> dict:
    """``storage.catalog._tally``: a render's cost and clip counts from its attempts."""
    cost, generated, reused = db.execute(
        "SELECT COALESCE(SUM(cost), 0.0), COALESCE(SUM(status IN ('generated', 'stored')), 0), "
        "COALESCE(SUM(status = 'reused'), 0) FROM attempts WHERE render_id = ?", (render_id,)).fetchone()
    return {"cost": round(cost, 6), "generated": generated, "reused": reused}


class LiteCatalog:
    """``start_render``, ``add_attempts``, ``finish_render`` and ``engine_speed`` of
    ``storage.catalog.Catalog``, with the same rows, on one connection (use it from one thread)."""

    def __init__(self, path: Path, url: str):
        self.url = url
        self._db = sqlite3.connect(str(path), timeout=catalog_errors.BUSY_TIMEOUT, isolation_level=None)
        self._db.execute("PRAGMA synchronous=NORMAL")      # per connection; the file is WAL already

    def matches_schema(self) -> bool:
        """The tables hold exactly today's columns (in any order: every statement names them)."""
        for table, columns in COLUMNS.items():
            found = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if found != set(columns):
                return False
        return True

    def close(self) -> None:
        self._db.close()

    def _transaction(self, work) -> Any:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = work(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog database {mask_url(self.url)}: {type(exc).__name__}: "
                               f"{redact(str(exc).splitlines()[0] if str(exc) else 'failed')}", hint=HINT) from exc

    # -- the writes a render makes ------------------------------------------------------------

    def start_render(self, render_id: str, slug: str, title: str, root: str, engine: str | None, scenes: int) -> None:
        def work(db: sqlite3.Connection) -> None:
            self._mark_crashed(db, slug)
            now = _now()
            db.execute("INSERT INTO projects (slug, title, root, updated) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (slug) DO UPDATE SET title = excluded.title, root = excluded.root, "
                       "updated = excluded.updated", (slug, title, root, now))
            db.execute("INSERT INTO renders (id, project, status, engine, scenes, host, pid, generated, reused, "
                       "started, finished, video_key, duration, cost, error) "
                       "VALUES (?, ?, 'running', ?, ?, ?, ?, 0, 0, ?, NULL, NULL, NULL, 0.0, NULL)",
                       (render_id, slug, engine, scenes, HOST, os.getpid(), now))

        self._transaction(work)

    def _mark_crashed(self, db: sqlite3.Connection, slug: str) -> None:
        """``Catalog.mark_crashed``: running renders of this host whose process is gone."""
        rows = db.execute("SELECT id, pid, started FROM renders WHERE status = 'running' AND host = ? "
                          "AND project = ?", (HOST, slug)).fetchall()
        for render_id, pid, started in rows:
            if pid is not None and not same_process_alive(pid, datetime.fromisoformat(started)):
                tally = _tally(db, render_id)
                db.execute(f"UPDATE renders SET status = 'crashed', finished = ?, error = ?, "
                           f"{', '.join(f'{n} = ?' for n in tally)} WHERE id = ?",
                           (_now(), f"the render's process ({HOST} pid {pid}) ended without finishing it",
                            *tally.values(), render_id))

    def add_attempts(self, rows: list[dict]) -> None:
        """The attempts, and a clip row for each clip they made (made again: its row is replaced)."""
        for fields in rows:
            unknown = set(fields) - set(COLUMNS["attempts"])
            if unknown:
                raise TypeError(f"unknown attempt fields: {sorted(unknown)}")

        def work(db: sqlite3.Connection) -> None:
            now = _now()
            for fields in rows:
                row = {**ATTEMPT_DEFAULTS, **fields}
                values = (row["render_id"], row["project"], row["scene"], row["engine"], row["model"],
                          row["status"], stamp(row["started"]) if row.get("started") else now,
                          stamp(row["finished"]) if row["finished"] else None, row["seconds"],
                          row["clip_seconds"], row["error_class"], _error_text(row["error"]), row["cost"],
                          row["clip_key"], row["worker"])
                db.execute("INSERT INTO attempts (render_id, project, scene, engine, model, status, started, "
                           "finished, seconds, clip_seconds, error_class, error, cost, clip_key, worker) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
            made = {f["clip_key"]: f for f in rows if f["status"] in ("generated", "stored") and f.get("clip_key")}
            for key, f in made.items():
                db.execute("INSERT INTO clips (key, project, scene, engine, model, duration, created) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET project = excluded.project, "
                           "scene = excluded.scene, engine = excluded.engine, model = excluded.model, "
                           "duration = excluded.duration, created = excluded.created",
                           (key, f["project"], f["scene"], f.get("engine"), f.get("model"), f.get("clip_seconds"), now))

        self._transaction(work)

    def add_attempt(self, **fields: Any) -> None:
        self.add_attempts([fields])

    def finish_render(self, render_id: str, *, status: str, error: str | None = None, **fields: Any) -> None:
        unknown = set(fields) - set(RENDER_END_FIELDS)
        if unknown:
            raise TypeError(f"unknown render fields: {sorted(unknown)}")

        def work(db: sqlite3.Connection) -> None:
            tally = {**_tally(db, render_id), **fields}     # a completed render's result gives its own counts
            names = ["status", "finished", "error", *tally]
            values = [status, _now(), _error_text(error), *tally.values()]
            db.execute(f"UPDATE renders SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?", (*values, render_id))

        self._transaction(work)

    # -- the read an estimate makes -----------------------------------------------------------

    def engine_speed(self, engine: str) -> float | None:
        """Mean engine-seconds per clip-second of this engine's successful generations."""
        try:
            rows = self._db.execute("SELECT seconds, clip_seconds FROM attempts WHERE engine = ? AND "
                                    "status = 'generated' AND clip_seconds > 0 ORDER BY id", (engine,)).fetchall()
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog database {mask_url(self.url)}: {type(exc).__name__}", hint=HINT) from exc
        ratios = [seconds / clip for seconds, clip in rows if clip]
        return sum(ratios) / len(ratios) if ratios else None


def _set_up(path: Path) -> bool:
    """Has the catalog set this file up: a SQLite database in WAL mode (its header says so)?
    A file it is still creating is left to it: switching a file's journal mode while another
    connection reads it fails with "database is locked"."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(100)
    except OSError:
        return False
    return len(head) == 100 and head.startswith(b"SQLite format 3\x00") and head[18] == head[19] == 2


def open_lite(url: str):
    """A :class:`LiteCatalog` on a SQLite catalog file whose tables are as ``storage.catalog``
    makes them, else the catalog itself (where an in-process render writes its rows)."""
    path = sqlite_file(url) if url.startswith("sqlite:///") and "?" not in url else None
    if path is not None and _set_up(path):
        writer = None
        try:
            writer = LiteCatalog(path, url)
            if writer.matches_schema():
                return writer
        except sqlite3.Error:
            pass                          # not a database we can write: the catalog says why
        if writer is not None:
            writer.close()
    from storage.catalog import open_catalog

    return open_catalog(url)
