"""Real servers on 127.0.0.1 for tests: moto's S3, rclone's S3 (checks signatures), PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
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


class FaultProxy:
    """An HTTP proxy to ``upstream`` that answers the first ``fail`` requests with ``status``
    (or stalls them for ``stall`` seconds), then forwards everything."""

    def __init__(self, upstream: str, *, fail: int, status: int = 503, stall: float = 0.0):
        import http.server
        import threading

        self.upstream, self.fail, self.status, self.stall = upstream.rstrip("/"), fail, status, stall
        self.seen = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    proxy.seen += 1
                    failing = proxy.seen <= proxy.fail
                if failing and proxy.stall:
                    time.sleep(proxy.stall)
                if failing:
                    payload = b"<Error><Code>ServiceUnavailable</Code></Error>" if proxy.status >= 500 else b""
                    self.send_response(proxy.status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None,
                                                 method=self.command, headers=dict(self.headers))
                try:
                    with urllib.request.urlopen(request, timeout=60) as r:
                        status, headers, data = r.status, r.headers, r.read()
                except urllib.error.HTTPError as exc:
                    status, headers, data = exc.code, exc.headers, exc.read()
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
