"""Real servers on 127.0.0.1 for tests: moto's S3, rclone's S3 (checks signatures), PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

RCLONE = str(Path(sys.executable).with_name("rclone"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class RcloneS3:
    """``rclone serve s3`` over a folder, with real SigV4 checks; stoppable and restartable."""

    def __init__(self, root: Path, access_key: str, secret_key: str):
        self.root, self.access_key, self.secret_key = root, access_key, secret_key
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "RcloneS3":
        log = (self.root.parent / "rclone.log").open("a")
        self.proc = subprocess.Popen(
            [RCLONE, "serve", "s3", "--auth-key", f"{self.access_key},{self.secret_key}",
             "--addr", f"127.0.0.1:{self.port}", "--config", "/dev/null", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


class MotoS3:
    """moto's S3 over HTTP (ThreadedMotoServer) for behaviour and lifecycle."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MotoS3":
        self.server.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        self.server.stop()


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
