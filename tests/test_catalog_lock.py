"""A SQLite catalog that another connection holds locked partway through a render (a second
process's open write transaction): the render waits for it a bounded time, never publishes a
video whose clips' attempts the catalog did not take, and never drops a row it could still write."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import engines
import flows.pipeline
from flows.local import render_local
from storage import catalog_errors
from storage.catalog import Catalog, open_catalog
from storage.catalog_errors import CatalogError
from tasks import catalog as render_log
from tests.engines_fake import CountingEngine


class Locker:
    """Another connection to the catalog file, holding its write lock while ``held`` (taken
    once; ``release_after``: released that many seconds after it was taken)."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self.held = self.taken = False
        self.release_after: float | None = None

    def lock(self) -> None:
        with self._lock:
            if not self.taken:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("INSERT INTO projects (slug, title, root, updated) "
                                "VALUES ('zz', 'zz', 'zz', '2020-01-01 00:00:00.000000')")
                self.held = self.taken = True
                if self.release_after is not None:
                    threading.Timer(self.release_after, self.release).start()

    def release(self) -> None:
        with self._lock:
            if self.held:
                self.db.execute("ROLLBACK")
                self.held = False


class LockingEngine(CountingEngine):
    """The animatic; its first call locks the catalog (so every attempt row meets the lock)."""

    def __init__(self, locker: Locker):
        super().__init__()
        self.locker = locker

    def generate(self, request, out_dir):
        self.locker.lock()
        return super().generate(request, out_dir)


@pytest.fixture
def locker(isolated_storage, tmp_path):
    path = tmp_path / "catalog.db"
    Catalog(f"sqlite:///{path}").engine.dispose()       # the tables, as a first render on the machine makes them
    held = Locker(path)
    yield held
    held.release()
    held.db.close()
    engines.unregister("animatic")


def _published(store: Path) -> list[Path]:
    return sorted(store.glob("renders/small/*/final.mp4"))


def _wait(monkeypatch, busy: float, lock_wait: float) -> None:
    monkeypatch.setattr(catalog_errors, "BUSY_TIMEOUT", busy)
    monkeypatch.setattr(render_log, "LOCK_WAIT", lock_wait)


@pytest.mark.slow
def test_a_catalog_locked_for_a_while_mid_render_loses_no_row(small_project, locker, isolated_storage, monkeypatch):
    _wait(monkeypatch, busy=0.3, lock_wait=30)             # the lock outlasts a statement's busy timeout
    engines.register("animatic", lambda model=None, params=None: LockingEngine(locker))
    locker.release_after = 3.0
    result = render_local(str(small_project))
    assert result.generated == 3 and not any("catalog" in w for w in result.warnings)
    assert len(_published(isolated_storage)) == 1
    [row] = open_catalog().renders("small")
    assert (row.id, row.status, row.generated) == (result.render_id, "completed", 3)
    assert sorted(a.status for a in open_catalog().attempts(render_id=row.id)) == ["generated"] * 3


@pytest.mark.slow
def test_a_catalog_still_locked_at_the_stitch_stops_the_render_before_it_publishes(
        small_project, locker, isolated_storage, monkeypatch):
    """The attempts cannot be written in time: nothing is published (exit 3); the lock clears
    as the render ends, and its rows are written then: failed, with every clip's attempt."""
    _wait(monkeypatch, busy=6.0, lock_wait=0)             # one try: a stitch takes less than 6 s
    engines.register("animatic", lambda model=None, params=None: LockingEngine(locker))
    close = flows.pipeline.close_render

    def close_after_the_lock(*args, **kwargs):
        locker.release()
        return close(*args, **kwargs)

    monkeypatch.setattr(flows.pipeline, "close_render", close_after_the_lock)
    with pytest.raises(CatalogError, match="database is locked"):
        render_local(str(small_project))
    assert _published(isolated_storage) == []
    [row] = open_catalog().renders("small")
    assert row.status == "failed" and "database is locked" in row.error and row.generated == 3
    assert sorted(a.status for a in open_catalog().attempts(render_id=row.id)) == ["generated"] * 3


@pytest.mark.slow
def test_a_catalog_locked_after_the_video_is_published_is_a_warning_with_the_video(
        small_project, locker, isolated_storage, monkeypatch):
    _wait(monkeypatch, busy=0.3, lock_wait=0)
    publish = flows.pipeline.publish_manifest

    def publish_then_lock(result):
        published = publish(result)
        locker.lock()
        return published

    monkeypatch.setattr(flows.pipeline, "publish_manifest", publish_then_lock)
    result = render_local(str(small_project))
    assert [Path(result.video)] == _published(isolated_storage)
    assert any("could not record this render's end" in w and "database is locked" in w for w in result.warnings)
    locker.release()
    attempts = open_catalog().attempts(render_id=result.render_id)
    assert sorted(a.status for a in attempts) == ["generated"] * 3      # written before the video was published
    monkeypatch.setattr(flows.pipeline, "publish_manifest", publish)
    again = render_local(str(small_project))
    assert again.render_id == result.render_id                          # indexed: unchanged, not stitched again
