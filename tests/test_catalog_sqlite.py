"""An in-process render's rows through sqlite3 (storage.catalog_sqlite) are the rows the ORM
catalog makes, read back by the ORM; anything but a SQLite file with today's tables gets the ORM."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from storage.catalog import AttemptRow, Catalog, ClipRow, ProjectRow, RenderRow, open_catalog
from storage.catalog_errors import CatalogError
from storage.catalog_sqlite import COLUMNS, LiteCatalog, open_lite
from storage.lease import HOST

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-catalog-0123456789"
TIMES = {"updated", "started", "finished", "created"}


def test_the_writer_knows_the_models_columns():
    for model in (ProjectRow, RenderRow, ClipRow, AttemptRow):
        assert COLUMNS[model.__tablename__] == tuple(c.name for c in model.__table__.columns), model.__tablename__


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write(catalog, dead_pid: int) -> None:
    """One render's writes, as tasks.catalog makes them, after a crashed render of the project."""
    with Catalog(catalog.url).session() as s:           # the crashed render: the ORM writes it in both
        s.add(RenderRow(id="r0", project="p", host=HOST, pid=dead_pid,
                        started=datetime.now(timezone.utc) - timedelta(minutes=5)))
        for scene in ("s0", "s1"):                        # clips it made before it was killed: counted
            s.add(AttemptRow(render_id="r0", project="p", scene=scene, engine="animatic", status="generated", cost=0.5))
        s.commit()
    catalog.start_render("r1", "p", "Title", "/projects/p", "animatic", 3)
    finished = datetime.now(timezone.utc)
    base = dict(render_id="r1", project="p", clip_seconds=1.5, worker=f"{HOST}:1", started=finished - timedelta(seconds=2))
    catalog.add_attempts([
        dict(base, scene="s0", engine="animatic", status="failed", finished=finished, seconds=0.25,
             started=finished - timedelta(seconds=0.25), error_class="EngineError", error=f"bad token {SECRET}", cost=0.1),
        dict(base, scene="s0", engine="animatic", model="m1", status="generated", finished=finished, seconds=1.0,
             started=finished - timedelta(seconds=1), cost=0.5, clip_key="clips/a.mp4"),
        dict(base, scene="s1", status="stored", finished=finished, seconds=0.01, clip_key="footage/b.mp4"),
        dict(base, scene="s2", engine="animatic", status="reused", finished=finished, clip_key="clips/c.mp4"),
    ])
    catalog.add_attempt(**dict(base, scene="s0", engine="animatic", model="m2", status="generated",
                               finished=finished, seconds=2.0, cost=0.25, clip_key="clips/a.mp4"))
    catalog.finish_render("r1", status="completed", error=None, generated=2, reused=1,
                          video_key="renders/p/r1/final.mp4", duration=4.5)
    catalog.start_render("r2", "p", "Title", "/projects/p", "animatic", 3)     # a render that fails: no result
    catalog.add_attempts([dict(base, render_id="r2", scene=scene, engine="animatic", status=status, clip_key=key)
                          for scene, status, key in (("s0", "reused", "clips/a.mp4"), ("s1", "stored", "footage/b.mp4"),
                                                     ("s2", "failed", None))])
    catalog.finish_render("r2", status="failed", error="1 of 3 scene(s) got no clip")


def _rows(url: str) -> dict:
    """Every row of the four tables, read by the ORM, times apart (they are checked for type)."""
    catalog = open_catalog(url)
    out = {}
    with catalog.session() as s:
        from sqlmodel import select

        for model in (ProjectRow, RenderRow, ClipRow, AttemptRow):
            rows = []
            for row in s.exec(select(model)):
                fields = row.model_dump()
                for name in TIMES & set(fields):
                    assert fields[name] is None or isinstance(fields[name], datetime), (model, name)
                rows.append({k: v for k, v in fields.items() if k not in TIMES})
            out[model.__tablename__] = sorted(rows, key=repr)
    return out


def test_the_writer_makes_the_rows_the_catalog_makes(tmp_path, monkeypatch):
    monkeypatch.setenv("REELFLOW_S3_SECRET_KEY", SECRET)
    dead = _dead_pid()
    by_orm, by_sql = (f"sqlite:///{tmp_path / name}" for name in ("orm.db", "sql.db"))
    _write(Catalog(by_orm), dead)
    Catalog(by_sql)                                        # the tables, as a first render makes them
    writer = open_lite(by_sql)
    assert isinstance(writer, LiteCatalog)
    _write(writer, dead)
    writer.close()
    orm, sql = _rows(by_orm), _rows(by_sql)
    assert sql == orm
    renders = {r["id"]: r for r in sql["renders"]}
    assert renders["r0"]["status"] == "crashed" and "ended without finishing it" in renders["r0"]["error"]
    assert (renders["r0"]["generated"], renders["r0"]["cost"]) == (2, 1.0)        # counted from its attempts
    assert (renders["r2"]["generated"], renders["r2"]["reused"]) == (1, 1)
    assert renders["r1"]["status"] == "completed" and renders["r1"]["cost"] == 0.85
    assert all(SECRET not in str(r) for r in sql["attempts"]) and any("***" in str(r["error"]) for r in sql["attempts"])
    attempts = open_catalog(by_sql).attempts(render_id="r1")
    assert [a.status for a in attempts] == ["failed", "generated", "stored", "reused", "generated"]
    assert all(a.started <= a.finished for a in attempts)
    clips = {c["key"]: c for c in sql["clips"]}
    assert set(clips) == {"clips/a.mp4", "footage/b.mp4"} and clips["clips/a.mp4"]["model"] == "m2"
    lite = open_lite(by_sql)
    assert lite.engine_speed("animatic") == open_catalog(by_orm).engine_speed("animatic") == pytest.approx((1.0 + 2.0) / 2 / 1.5)
    assert lite.engine_speed("runpod") is None
    lite.close()


def test_only_a_sqlite_file_with_todays_tables_gets_the_writer(tmp_path):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert isinstance(open_lite(fresh), Catalog)         # no file yet: the catalog creates it
    assert isinstance(open_lite(f"{fresh}?timeout=5"), Catalog)
    older = tmp_path / "older.db"                          # a catalog from before renders had host/pid
    Catalog(f"sqlite:///{older}")
    with sqlite3.connect(older) as db:
        db.execute("ALTER TABLE renders DROP COLUMN host")
        db.execute("ALTER TABLE renders DROP COLUMN pid")
    catalog = open_lite(f"sqlite:///{older}")
    assert isinstance(catalog, Catalog)                    # which adds them again, at the end
    writer = open_lite(f"sqlite:///{older}")
    assert isinstance(writer, LiteCatalog)                 # columns are named, so their order is free
    writer.start_render("r1", "p", "P", "/p", None, 1)
    writer.close()
    assert Catalog(f"sqlite:///{older}").renders("p")[0].host == HOST
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database, " * 64)
    with pytest.raises(CatalogError, match="catalog database"):
        open_lite(f"sqlite:///{junk}")


def test_a_locked_catalog_is_one_catalog_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    Catalog(url)
    writer = open_lite(url)
    writer._db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(CatalogError, match=r"OperationalError: database is locked"):
            writer.start_render("r1", "p", "P", "/p", None, 1)
    finally:
        other.execute("ROLLBACK")
        other.close()
        writer.close()


@pytest.mark.slow
def test_a_render_on_an_existing_catalog_never_imports_sqlalchemy(small_project, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(REPO), PREFECT_HOME=str(tmp_path / "prefect-home"))
    script = ("import sys\nfrom reelflow.cli import app\n"
              "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
              "print('sqlalchemy' in sys.modules)")
    spec = small_project / "project.yaml"

    def render(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", script, "render", str(small_project), *extra], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)

    runs = [render()]                                     # the first render creates the catalog's tables
    spec.write_text(spec.read_text().replace("Line 1.", "Line one, edited."))
    runs.append(render())                                 # an edit: one clip made, its cost estimated
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr[-2000:]
    assert [r.stdout.split()[-1] for r in runs] == ["True", "False"]
    renders = open_catalog().renders("small")
    assert [r.status for r in renders] == ["completed", "completed"] and renders[0].generated == 1
    assert sorted(a.status for a in open_catalog().attempts(render_id=renders[0].id)) == ["generated", "reused", "reused"]


def _open_at_once(url: str, barrier, errors) -> None:
    try:
        barrier.wait(timeout=60)
        Catalog(url)
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        errors.put(f"{type(exc).__name__}: {exc}")


def _fresh_sqlite(tmp_path, request):
    return lambda n: f"sqlite:///{tmp_path / f'fresh{n}.db'}"


def _fresh_postgresql(tmp_path, request):
    import uuid

    import sqlalchemy

    server = request.getfixturevalue("postgres_url")

    def fresh(_n: int) -> str:
        name = f"reelflow_{uuid.uuid4().hex[:12]}"
        admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        admin.dispose()
        return sqlalchemy.engine.make_url(server).set(database=name).render_as_string(hide_password=False)

    return fresh


@pytest.mark.parametrize("fresh", [_fresh_sqlite, _fresh_postgresql], ids=["sqlite", "postgresql"])
def test_renders_starting_at_once_on_a_fresh_catalog_all_get_its_tables(tmp_path, request, fresh):
    """Several processes creating a new catalog at the same instant (two renders started
    together): none fails on a table or index another one created first."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    new_url = fresh(tmp_path, request)
    for round_ in range(6):
        url = new_url(round_)
        _open_in_six_processes_at_once(context, url)
        assert {"projects", "renders", "clips", "attempts"} <= set(_tables(url))


def _open_in_six_processes_at_once(context, url: str) -> None:
    """Six processes, held at a barrier, open the catalog at ``url`` together; none may fail."""
    barrier, errors = context.Barrier(6), context.Queue()
    procs = [context.Process(target=_open_at_once, args=(url, barrier, errors)) for _ in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert not failures, failures
    assert [p.exitcode for p in procs] == [0] * 6


def _tables(url: str) -> list[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_renders_starting_at_once_on_an_older_catalog_all_add_its_new_columns(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for round_ in range(4):
        older = tmp_path / f"older{round_}.db"
        Catalog(f"sqlite:///{older}").engine.dispose()
        with sqlite3.connect(older) as db:                 # a catalog from before attempts had a worker
            db.execute("ALTER TABLE attempts DROP COLUMN worker")
        _open_in_six_processes_at_once(context, f"sqlite:///{older}")
        assert isinstance(open_lite(f"sqlite:///{older}"), LiteCatalog)
