"""Clips of one render spread over several task workers through Prefect itself: a real Prefect
server, two ``reelflow worker`` processes (pretending to be GPU 0 and GPU 1), one render with
REELFLOW_CLIP_WORKERS=task-workers. Each clip is made once, by one of them, and both work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from media.probe import probe
from storage.catalog import AttemptRow, open_catalog
from tests.conftest import DEMO, REPO
from tests.test_deployment import free_port, start, stop, wait_healthy

PREFECT = str(Path(sys.executable).with_name("prefect"))


def project(folder: Path, scenes: int) -> Path:
    (folder / "characters").mkdir(parents=True)
    shutil.copy(DEMO / "characters" / "max.png", folder / "characters")
    (folder / "project.yaml").write_text(yaml.safe_dump({
        "title": "Workers", "output": {"width": 160, "height": 240, "fps": 12},
        "characters": {"max": {"name": "Max", "image": "characters/max.png"}},
        "scenes": [{"id": f"s{i}", "character": "max", "action": "waving", "speech": f"Line {i}.",
                    "duration": 1.5} for i in range(scenes)]}, sort_keys=False))
    return folder


@pytest.mark.slow
def test_two_task_workers_share_one_renders_clips(tmp_path):
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "INFO",
           "REELFLOW_STORAGE": str(tmp_path / "store"), "REELFLOW_WORK_DIR": str(tmp_path / "work"),
           "REELFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}", "PYTHONPATH": str(REPO),
           "REELFLOW_CLIP_WORKERS": "task-workers"}
    procs: list[subprocess.Popen] = []
    try:
        server = start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env,
                       tmp_path / "server.log")
        procs.append(server)
        wait_healthy(env["PREFECT_API_URL"], server, tmp_path / "server.log")
        workers = [start([sys.executable, "-m", "reelflow", "worker", "--gpu", str(gpu), "--timeout", "600"],
                         env, tmp_path / f"worker{gpu}.log") for gpu in (0, 1)]
        procs += workers
        folder = project(tmp_path / "projects" / "workers", scenes=6)
        render = subprocess.run([sys.executable, "-m", "reelflow", "render", str(folder)], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=600)
        logs = "\n".join((tmp_path / f"worker{g}.log").read_text()[-1500:] for g in (0, 1))
        assert render.returncode == 0, render.stdout[-2000:] + render.stderr[-3000:] + logs
        final = render.stdout.strip().splitlines()[-1]
        assert probe(final).duration == pytest.approx(9.0, abs=0.1)

        with open_catalog(env["REELFLOW_DATABASE_URL"]).session() as s:
            rows = list(s.exec(AttemptRow.__table__.select().where(AttemptRow.status == "generated")))
        scenes = sorted(row.scene for row in rows)
        assert scenes == [f"s{i}" for i in range(6)]                      # each clip made once
        pids = {int(row.worker.split(":")[1].split()[0]) for row in rows}
        assert pids == {w.pid for w in workers}, (pids, logs)              # by the workers, both of them
        assert os.getpid() not in pids and all(w.poll() is None for w in workers)
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_a_catalog_from_before_workers_gets_the_column(tmp_path):
    import sqlite3

    from sqlalchemy import inspect

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE attempts (id INTEGER PRIMARY KEY, render_id VARCHAR NOT NULL, project VARCHAR "
                     "NOT NULL, scene VARCHAR NOT NULL, engine VARCHAR, model VARCHAR, status VARCHAR NOT NULL, "
                     "started DATETIME NOT NULL, finished DATETIME, seconds FLOAT NOT NULL, clip_seconds FLOAT, "
                     "error_class VARCHAR, error VARCHAR, cost FLOAT NOT NULL, clip_key VARCHAR)")
    catalog = open_catalog(f"sqlite:///{db}")
    assert "worker" in {c["name"] for c in inspect(catalog.engine).get_columns("attempts")}
    catalog.record_attempt(AttemptRow(render_id="r", project="p", scene="s", status="generated", worker="h:1"))
