"""prefect.yaml for real: a local Prefect server, a process work pool, `prefect deploy --all`,
a worker, and `prefect deployment run` for the demo, which must leave a final video."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from media.probe import probe
from tests.conftest import REPO

PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def prefect_server(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "REELFLOW_STORAGE": str(tmp_path / "store"),
        "REELFLOW_WORK_DIR": str(tmp_path / "work"),
    }
    log = tmp_path / "server.log"
    server = start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        wait_healthy(api, server, log)
        yield env, tmp_path
    finally:
        stop(server)


def prefect(env: dict, *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([PREFECT, "--no-prompt", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_deploy_run_and_find_the_video(prefect_server):
    env, tmp = prefect_server
    prefect(env, "work-pool", "create", "reelflow", "--type", "process")
    deployed = prefect(env, "deploy", "--all")
    assert "render-project/render-project" in deployed and "render-batch/nightly-batch" in deployed

    worker_log = tmp / "worker.log"
    worker = start([PREFECT, "worker", "start", "--pool", "reelflow", "--limit", "1"], env, worker_log)
    try:
        out = prefect(env, "deployment", "run", "render-project/render-project",
                      "-p", "project=projects/demo", "--watch", "--watch-timeout", "500", timeout=560)
        assert "Completed" in out, out + worker_log.read_text()[-3000:]
    finally:
        stop(worker)

    [video] = list((tmp / "store" / "renders" / "demo").glob("*/final.mp4"))
    info = probe(video, count_frames=True)
    assert (info.width, info.height, info.video_frames) == (576, 896, 720)
    assert (video.parent / "final.srt").is_file() and (video.parent / "contact-sheet.png").is_file()

    nightly = json.loads(prefect(env, "deployment", "inspect", "render-batch/nightly-batch", "--output", "json"))
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 3 * * *"]
    assert nightly["parameters"] == {"root": "projects"}
