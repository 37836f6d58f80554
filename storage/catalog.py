"""The catalog: every project, render, clip and engine attempt (SQLModel).

SQLite file by default (``REELFLOW_DATABASE_URL=sqlite:///./.reelflow/catalog.db``), PostgreSQL
by URL (``postgresql+psycopg://user@host/db``). It answers "what did this render cost,
which scenes failed, which engine made clip 7". Error text is redacted before it is stored.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine as SQLEngine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from reelflow.errors import InputError
from reelflow.secrets import redact
from reelflow.urls import mask_url
from storage import catalog_errors
from storage.catalog_errors import HINT, CatalogError
from storage.lease import HOST, same_process_alive

@contextmanager
def database_boundary(url: str) -> Iterator[None]:
    """SQLAlchemy's and the driver's errors as one CatalogError naming the (masked) URL."""
    try:
        yield
    except (ArgumentError, NoSuchModuleError) as exc:
        raise InputError(f"REELFLOW_DATABASE_URL={mask_url(url)} is not a usable database URL "
                         f"({type(exc).__name__})", hint=HINT) from exc
    except ImportError as exc:            # a dialect whose driver is not installed (mysql://: MySQLdb)
        raise InputError(f"REELFLOW_DATABASE_URL={mask_url(url)} needs a database driver that is not installed "
                         f"({exc.name or exc})", hint=HINT) from exc
    except DBAPIError as exc:
        reason = redact(mask_url(one_reason(exc)))
        raise CatalogError(f"catalog database {mask_url(url)}: {reason}", hint=HINT) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise CatalogError(f"catalog database {mask_url(url)}: {type(exc).__name__}", hint=HINT) from exc


def one_reason(exc: DBAPIError) -> str:
    """The driver's first line (e.g. 'connection refused'), without SQL or parameters."""
    original = exc.orig if exc.orig is not None else exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return f"{type(original).__name__}: {lines[0] if lines else 'failed'}"


def _guarded(method):
    """Run a Catalog method inside ``database_boundary``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with database_boundary(self.url if hasattr(self, "url") else args[0]):
            return method(self, *args, **kwargs)

    return wrapper


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ProjectRow(SQLModel, table=True):
    __tablename__ = "projects"
    slug: str = Field(primary_key=True)
    title: str
    root: str
    updated: datetime = Field(default_factory=_now)


class RenderRow(SQLModel, table=True):
    __tablename__ = "renders"
    id: str = Field(primary_key=True)
    project: str = Field(index=True)
    status: str = "running"                 # running | completed | failed | crashed
    engine: str | None = None
    scenes: int = 0
    host: str | None = None                 # where the render's process runs, and its pid:
    pid: int | None = None                  # a running row whose process is gone is 'crashed'
    generated: int = 0
    reused: int = 0
    started: datetime = Field(default_factory=_now)
    finished: datetime | None = None
    video_key: str | None = None
    duration: float | None = None
    cost: float = 0.0
    error: str | None = None


class ClipRow(SQLModel, table=True):
    __tablename__ = "clips"
    key: str = Field(primary_key=True)
    project: str = Field(index=True)
    scene: str
    engine: str | None = None
    model: str | None = None
    duration: float | None = None
    created: datetime = Field(default_factory=_now)


class AttemptRow(SQLModel, table=True):
    __tablename__ = "attempts"
    id: int | None = Field(default=None, primary_key=True)
    render_id: str = Field(index=True)
    project: str = Field(index=True)
    scene: str
    engine: str | None = None
    model: str | None = None
    status: str                             # generated | reused | stored | failed
    started: datetime = Field(default_factory=_now)
    finished: datetime | None = None
    seconds: float = 0.0
    clip_seconds: float | None = None
    error_class: str | None = None
    error: str | None = None
    cost: float = 0.0
    clip_key: str | None = None
    worker: str | None = None               # host:pid (and gpu:<index>) of the process that made it


def _fast_sqlite(engine: SQLEngine) -> None:
    """Write-ahead log, synced at checkpoints: a render's row per attempt costs no fsync each,
    readers never block the writer, and several processes on one machine share the file. (A
    power cut may lose the last rows; a crash of the process loses nothing.)"""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def _made_meanwhile(exc: DBAPIError) -> bool:
    """Did a schema statement fail because another process made the same thing first?"""
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return "already exists" in text or "duplicate" in text


def _tally(session, row: "RenderRow") -> None:
    """A render's cost and clip counts from its attempts (a render that failed or crashed has no
    result to give them; one that completed overwrites the counts with its result's)."""
    attempts = list(session.exec(select(AttemptRow).where(AttemptRow.render_id == row.id)))
    row.cost = round(sum(a.cost for a in attempts), 6)
    row.generated = sum(a.status in ("generated", "stored") for a in attempts)
    row.reused = sum(a.status == "reused" for a in attempts)


class Catalog:
    @_guarded
    def __init__(self, url: str):
        self.url = url
        try:
            parsed = make_url(url)
        except ValueError as exc:           # 'host:notaport' was a bare ValueError, "a reelflow bug"
            raise InputError(f"REELFLOW_DATABASE_URL={mask_url(url)} is not a usable database URL "
                             f"({'its port is not a number' if 'int()' in str(exc) else 'ValueError'})",
                             hint=HINT) from exc
        if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername.startswith("sqlite"):
            args = {"check_same_thread": False, "timeout": catalog_errors.BUSY_TIMEOUT}
        elif parsed.drivername.startswith("postgresql"):
            args = {"connect_timeout": 10}
        else:
            args = {}
        # A file needs no liveness ping before each use; a database server does.
        self.engine: SQLEngine = create_engine(parsed, connect_args=args,
                                               pool_pre_ping=not parsed.drivername.startswith("sqlite"))
        # SQLite takes one writer at a time and makes the others sleep and retry: this process's
        # threads take turns here instead (the busy sleeps cost ~15 ms a row with 8 clip threads).
        self._writes = threading.Lock() if parsed.drivername.startswith("sqlite") else nullcontext()
        if parsed.drivername.startswith("sqlite"):
            _fast_sqlite(self.engine)
        self._create_schema()

    def _create_schema(self, tries: int = 20) -> None:
        """The tables, indexes and new columns, made by whichever process gets there first.

        ``create_all`` and the column check look before they create: another process creating
        the same catalog at the same instant (two renders started together on a new machine)
        may create a table between the look and ours, and ours fails with "already exists" (or
        PostgreSQL's duplicate key on its type catalogue). Looking again then finds it made.
        SQLite also answers "database is locked" at once, without waiting, to a look that turns
        into a write while another process writes: that is tried again too, within one busy
        timeout (a catalog locked for longer is the error)."""
        deadline = time.monotonic() + catalog_errors.BUSY_TIMEOUT
        for attempt in range(tries):
            try:
                SQLModel.metadata.create_all(self.engine)
                self._add_new_columns()
                return
            except DBAPIError as exc:
                again = _made_meanwhile(exc) or ("database is locked" in str(exc) and time.monotonic() < deadline)
                if attempt == tries - 1 or not again:
                    raise
                time.sleep(0.02 * (attempt + 1))

    def _add_new_columns(self) -> None:
        """Catalogs made before a column existed get it (additive only: nullable columns)."""
        from sqlalchemy import inspect, text

        wanted = {"attempts": {"worker": "VARCHAR"}, "renders": {"host": "VARCHAR", "pid": "INTEGER"}}
        for table, columns in wanted.items():
            present = {c["name"] for c in inspect(self.engine).get_columns(table)}
            for name, kind in columns.items():
                if name not in present:
                    with self.engine.begin() as conn:
                        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))

    def __repr__(self) -> str:
        return f"Catalog({mask_url(self.url)!r})"

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- writes ---------------------------------------------------------------------------

    @_guarded
    def start_render(self, render_id: str, slug: str, title: str, root: str, engine: str | None, scenes: int) -> None:
        """Record a running render with this process's host and pid (see ``mark_crashed``)."""
        from sqlalchemy.exc import IntegrityError

        self.mark_crashed(slug)
        for attempt in range(3):
            try:
                with self.session() as s:
                    s.merge(ProjectRow(slug=slug, title=title, root=root, updated=_now()))
                    s.add(RenderRow(id=render_id, project=slug, engine=engine, scenes=scenes,
                                    host=HOST, pid=os.getpid()))
                    s.commit()
                return
            except IntegrityError:       # another render inserted the project row first: merge again
                if attempt == 2:
                    raise

    @_guarded
    def mark_crashed(self, slug: str | None = None) -> int:
        """Running renders of this host whose process is gone become 'crashed'; how many."""
        with self.session() as s:
            stmt = select(RenderRow).where(RenderRow.status == "running", RenderRow.host == HOST)
            if slug:
                stmt = stmt.where(RenderRow.project == slug)
            dead = [r for r in s.exec(stmt) if r.pid is not None and not same_process_alive(r.pid, r.started)]
            for row in dead:
                row.status, row.finished = "crashed", _now()
                row.error = f"the render's process ({HOST} pid {row.pid}) ended without finishing it"
                _tally(s, row)
                s.add(row)
            s.commit()
        return len(dead)

    @_guarded
    def finish_render(self, render_id: str, *, status: str, error: str | None = None, **fields) -> None:
        with self.session() as s:
            row = s.get(RenderRow, render_id)
            if row is None:
                return
            row.status, row.finished = status, _now()
            _tally(s, row)
            row.error = redact(error)[:4000] if error else None
            for name, value in fields.items():
                setattr(row, name, value)
            s.add(row)
            s.commit()

    def add_attempt(self, **fields) -> None:
        """``record_attempt`` from the row's fields (what ``tasks.catalog.RenderLog`` also takes)."""
        self.record_attempt(AttemptRow(**fields))

    def add_attempts(self, rows: list[dict]) -> None:
        """Several attempts from their fields, in one transaction."""
        self.record_attempts([AttemptRow(**fields) for fields in rows])

    def record_attempt(self, attempt: AttemptRow) -> None:
        self.record_attempts([attempt])

    @_guarded
    def record_attempts(self, attempts: list[AttemptRow]) -> None:
        """The attempts, and a clip row for each clip they made, in one transaction (the clip rows
        known already are looked up in one query, not one each)."""
        made = {a.clip_key: a for a in attempts if a.status in ("generated", "stored") and a.clip_key}
        with self._writes, self.session() as s:
            known = set(s.exec(select(ClipRow.key).where(col(ClipRow.key).in_(list(made))))) if made else set()
            for attempt in attempts:
                attempt.error = redact(attempt.error)[:4000] if attempt.error else None
                s.add(attempt)
            for key, a in made.items():
                row = ClipRow(key=key, project=a.project, scene=a.scene, engine=a.engine, model=a.model,
                              duration=a.clip_seconds)
                s.merge(row) if key in known else s.add(row)
            s.commit()

    # -- reads ----------------------------------------------------------------------------

    @_guarded
    def renders(self, slug: str, limit: int = 20) -> list[RenderRow]:
        self.mark_crashed(slug)
        with self.session() as s:
            stmt = select(RenderRow).where(RenderRow.project == slug).order_by(col(RenderRow.started).desc()).limit(limit)
            return list(s.exec(stmt))

    @_guarded
    def attempts(self, render_id: str | None = None, slug: str | None = None) -> list[AttemptRow]:
        with self.session() as s:
            stmt = select(AttemptRow)
            if render_id:
                stmt = stmt.where(AttemptRow.render_id == render_id)
            if slug:
                stmt = stmt.where(AttemptRow.project == slug)
            return list(s.exec(stmt.order_by(col(AttemptRow.id))))

    @_guarded
    def engine_speed(self, engine: str) -> float | None:
        """Mean engine-seconds per clip-second of this engine's successful generations."""
        with self.session() as s:
            rows = s.exec(select(AttemptRow).where(AttemptRow.engine == engine, AttemptRow.status == "generated",
                                                   col(AttemptRow.clip_seconds) > 0))
            ratios = [r.seconds / r.clip_seconds for r in rows if r.clip_seconds]
        return sum(ratios) / len(ratios) if ratios else None


_CATALOGS: dict[str, Catalog] = {}
_LOCK = threading.Lock()


def open_catalog(url: str | None = None) -> Catalog:
    """One catalog (and connection pool) per URL per process."""
    if url is None:
        from reelflow.settings import get_settings

        url = get_settings().database_url
    with _LOCK:
        if url not in _CATALOGS:
            _CATALOGS[url] = Catalog(url)
        return _CATALOGS[url]
