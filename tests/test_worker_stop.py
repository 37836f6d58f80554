"""``reelflow worker`` and task-workers renders when things are missing or stop: no Prefect API,
an unreachable one, no worker serving, a worker stopped (SIGTERM / Ctrl-C) in the middle of a
clip. Real processes throughout: a ``prefect server``, ``reelflow worker`` and ``reelflow render``
subprocesses, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from storage.catalog import AttemptRow, open_catalog
from tests.conftest import DEMO, REPO
from tests.test_clip_workers import PREFECT, project
from tests.test_deployment import free_port, start, stop, wait_healthy

REELFLOW = [sys.executable, "-m", "reelflow"]


def base_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REELFLOW_"))}
    return {**env, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "REELFLOW_STORAGE": str(tmp_path / "store"), "REELFLOW_WORK_DIR": str(tmp_path / "work"),
            "REELFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}", "PYTHONPATH": str(REPO), **extra}


def run(args: list[str], env: dict, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(REELFLOW + args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("hint: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("value", ["nan", "-5", "0", "inf"])
def test_a_worker_timeout_must_be_seconds_above_zero(tmp_path, value):
    proc = run(["worker", "--timeout", value], base_env(tmp_path, PREFECT_API_URL="http://127.0.0.1:1/api"))
    assert proc.returncode == 2 and "--timeout" in one_line(proc)


def test_a_worker_without_a_prefect_api_is_refused_before_any_server(tmp_path):
    began = time.monotonic()
    proc = run(["worker", "--timeout", "5"], base_env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "PREFECT_API_URL" in one_line(proc) and "serving" not in proc.stderr
    assert time.monotonic() - began < 5              # no temporary server was started


def test_a_worker_with_an_unreachable_api_names_it_and_exits_3(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/api"
    proc = run(["worker", "--timeout", "30"], base_env(tmp_path, PREFECT_API_URL=url))
    assert proc.returncode == 3, proc.stderr
    assert url in one_line(proc) and "serving" not in proc.stderr


def test_a_task_workers_render_without_a_prefect_api_is_refused_before_any_work(tmp_path):
    proc = run(["render", str(DEMO)], base_env(tmp_path, REELFLOW_CLIP_WORKERS="task-workers"))
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc)
    assert "REELFLOW_CLIP_WORKERS=task-workers" in line and "PREFECT_API_URL" in line
    assert not (tmp_path / "store").exists() and not (tmp_path / "catalog.db").exists()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real Prefect server for the tests below."""
    folder = tmp_path_factory.mktemp("prefect")
    port = free_port()
    env = base_env(folder)
    env["PREFECT_API_URL"] = api = f"http://127.0.0.1:{port}/api"
    proc = start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, folder / "server.log")
    try:
        wait_healthy(api, proc, folder / "server.log")
        yield api, folder / "prefect-home"
    finally:
        stop(proc)


def served_env(tmp_path: Path, server, **extra: str) -> dict:
    api, home = server
    return base_env(tmp_path, PREFECT_API_URL=api, PREFECT_HOME=str(home), PREFECT_LOGGING_LEVEL="INFO",
                    REELFLOW_CLIP_WORKERS="task-workers", **extra)


def wait_for(what, timeout: float, why) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            pytest.fail(why())
        time.sleep(0.2)


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.slow
def test_a_render_with_no_worker_says_it_waits_for_one_and_finishes_once_one_serves(tmp_path, server):
    env = served_env(tmp_path, server, REELFLOW_WORKER_WAIT="2")
    procs: list[subprocess.Popen] = []
    try:
        quiet = {k: v for k, v in env.items() if k != "PREFECT_LOGGING_LEVEL"}     # as a user runs it: no -v
        render = start(REELFLOW + ["render", str(project(tmp_path / "p" / "wait", scenes=1))], quiet,
                       tmp_path / "render.log")
        procs.append(render)
        wait_for(lambda: "waiting for a `reelflow worker`" in read(tmp_path / "render.log"), 60,
                 lambda: read(tmp_path / "render.log")[-3000:])
        assert render.poll() is None                      # it keeps waiting
        procs.append(start(REELFLOW + ["worker", "--timeout", "120"], env, tmp_path / "worker.log"))
        assert render.wait(timeout=120) == 0, read(tmp_path / "render.log")[-3000:]
        said = [line for line in read(tmp_path / "render.log").splitlines() if "reelflow worker" in line]
        assert len(said) == 1 and "generate_clip" in said[0], said
    finally:
        for proc in reversed(procs):
            stop(proc)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_stopped_mid_clip_crashes_it_and_another_worker_makes_it(tmp_path, server, signum):
    env = served_env(tmp_path, server)
    procs: list[subprocess.Popen] = []
    folder = project(tmp_path / "p" / "stop", scenes=1)
    spec = folder / "project.yaml"
    data = yaml.safe_load(spec.read_text())
    data["output"].update(width=576, height=896)            # a clip long enough to stop it in the middle
    data["scenes"][0]["duration"] = 20.0
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        first = start(REELFLOW + ["worker"], env, tmp_path / "w1.log")
        procs.append(first)
        wait_for(lambda: "Subscribing to runs" in read(tmp_path / "w1.log"), 60, lambda: read(tmp_path / "w1.log"))
        render = start(REELFLOW + ["-v", "render", str(folder)], env, tmp_path / "render.log")
        procs.append(render)
        wait_for(lambda: "Submitting task run" in read(tmp_path / "w1.log"), 90, lambda: read(tmp_path / "w1.log"))
        time.sleep(1.0)
        assert "Finished in state" not in read(tmp_path / "w1.log")      # still making it
        first.send_signal(signum)
        assert first.wait(timeout=20) == 128 + signum, read(tmp_path / "w1.log")[-3000:]
        log = read(tmp_path / "w1.log")
        assert f"clip worker stopped ({signal.Signals(signum).name}): 1 clip(s) in progress marked crashed" in log, log
        assert "Traceback" not in log and "interrupted: clips that landed" not in log
        second = start(REELFLOW + ["worker", "--timeout", "300"], env, tmp_path / "w2.log")
        procs.append(second)
        assert render.wait(timeout=240) == 0, read(tmp_path / "render.log")[-3000:] + read(tmp_path / "w2.log")[-2000:]
        assert "queued again (1 of" in read(tmp_path / "render.log")
        with open_catalog(env["REELFLOW_DATABASE_URL"]).session() as s:
            rows = list(s.exec(AttemptRow.__table__.select().where(AttemptRow.status == "generated")))
        assert [int(row.worker.split(":")[1].split()[0]) for row in rows] == [second.pid]
    finally:
        for proc in reversed(procs):
            stop(proc)
