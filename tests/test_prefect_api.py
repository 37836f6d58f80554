"""The CLI's temporary Prefect server (no PREFECT_API_URL): its log stays off the render's
terminal, a failed start is one line saying why, the task runs it records in batches are all
written by the time the render has exited, and its flow runs send no heartbeats."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def without_api(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPATH=str(REPO),
               REELFLOW_STORAGE=str(tmp_path / "store"), REELFLOW_WORK_DIR=str(tmp_path / "work"),
               REELFLOW_DATABASE_URL=f"sqlite:///{tmp_path / 'catalog.db'}", **extra)
    return env


def test_a_server_that_cannot_start_is_one_line_saying_why_without_its_secrets(tmp_path):
    code = ("from reelflow.prefect_api import temporary_server\n"
            "from reelflow.errors import InfrastructureError\n"
            "try:\n"
            "    with temporary_server(timeout=90):\n"
            "        print('started')\n"
            "except InfrastructureError as exc:\n"
            "    print('ERROR', exc)\n")
    env = without_api(tmp_path, PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://u:sekrit-pw@127.0.0.1:1/db")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR the temporary Prefect server exited with code"), proc.stdout
    assert "Connection refused" in lines[0]
    assert "sekrit-pw" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr          # the server's log is not the render's


def test_a_prefect_render_prints_only_its_own_lines_and_every_task_run_is_recorded(small_project, tmp_path):
    env = without_api(tmp_path, PREFECT_SERVER_LOGGING_LEVEL="DEBUG")      # a chatty server
    proc = subprocess.run([sys.executable, "-m", "reelflow", "render", "--prefect", str(small_project)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DEBUG" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    with sqlite3.connect(tmp_path / "prefect-home" / "prefect.db") as db:
        states = db.execute("SELECT name, state_type FROM task_run").fetchall()
        events = {name for (name,) in db.execute("SELECT event FROM events")}
    # No heartbeats for a server that stops with the run (the run ended without waiting on them).
    assert "prefect.flow-run.Completed" in events and "prefect.flow-run.heartbeat" not in events
    clips = sorted(name for name, _ in states if name.startswith("clip-"))
    assert clips == ["clip-s0-animatic", "clip-s1-animatic", "clip-s2-animatic"]
    assert {state for _, state in states} == {"COMPLETED"}
