"""The boundary to the Prefect API: an unreachable or refusing server is an InfrastructureError."""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from typing import Iterator

from reelflow.errors import InfrastructureError
from reelflow.urls import mask_url

HINT = "start the server (prefect server start), fix PREFECT_API_URL, or unset it to run with a temporary one"


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or ""


def _prefect_fault(exc: BaseException) -> BaseException | None:
    """The transport error (or Prefect's own 'Failed to reach API') behind ``exc``, if any."""
    import httpx

    api = _api_url()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, RuntimeError) and str(exc).startswith("Failed to reach API"):
            return exc
        if isinstance(exc, (httpx.TransportError, httpx.HTTPStatusError)):
            try:
                url = str(exc.request.url)
            except RuntimeError:            # no request attached
                url = ""
            if api and url.startswith(api.rstrip("/")):
                return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def prefect_boundary() -> Iterator[None]:
    """Turn 'the Prefect API cannot be reached' into one InfrastructureError (exit 3)."""
    try:
        yield
    except InfrastructureError:
        raise
    except Exception as exc:
        fault = _prefect_fault(exc)
        if fault is None:
            raise
        api = mask_url(_api_url()) or "the temporary Prefect server"
        detail = type(fault.__cause__ or fault).__name__
        raise InfrastructureError(f"the Prefect API at {api} cannot be reached ({detail})", hint=HINT) from exc


# The temporary server records task runs in batches (its own settings, unless set): by default
# Prefect's server writes each task run event in a transaction of its own, and on the render's
# two cores that bookkeeping took 38 ms of CPU per clip (100 clips: 3.8 s, 1.6 s batched) from
# the ffmpeg beside it. A recorded state is at most a second late; on exit the rest is written.
BATCHED = {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
           "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "200",
           "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1"}


@contextmanager
def temporary_server(timeout: float = 120) -> Iterator[None]:
    """Without PREFECT_API_URL: run Prefect's temporary API server as a child that dies with us.

    Prefect would start the same server itself (``SubprocessASGIServer``), but as a plain
    child: a SIGKILLed render left it running for ever. This one is started with
    PR_SET_PDEATHSIG, stopped on exit, and used through PREFECT_API_URL for this render.
    """
    import socket
    import subprocess
    import sys
    import time

    import httpx
    import prefect
    from prefect.settings import (PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings,
                                  temporary_settings)

    from reelflow.process import spawn

    if _api_url():
        yield
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**BATCHED, **os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
           "PREFECT__SERVER_FINAL": "1", **get_current_settings().to_environment_variables(exclude_unset=True)}
    # Its log goes to a file, not the render's terminal: a server stopped while it writes a batch
    # logs the cancelled write (the batch is written by its final flush) as a traceback. What it
    # said is shown when it fails to start.
    log = tempfile.TemporaryFile()
    proc = spawn(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
         "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "error", "--lifespan", "on"],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise InfrastructureError(f"the temporary Prefect server exited with code {proc.returncode}"
                                          f"{_last_words(log)}", hint=HINT)
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise InfrastructureError(f"the temporary Prefect server did not start in {timeout:.0f} s"
                                          f"{_last_words(log)}", hint=HINT)
            time.sleep(0.2)
        # No flow-run heartbeats: they tell a server that outlives the run that it is alive, and
        # this one stops with it. The flow run ends without joining the heartbeat thread, which
        # sleeps in whole seconds (0 to 1 s at the end of every run).
        with temporary_settings({PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            try:
                yield
            finally:
                _drain_to_api()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\w*\b")


def _last_words(log) -> str:
    """': <why the server stopped>': the last exception it printed, else its last line (secrets
    redacted); '' when it wrote nothing."""
    from reelflow.secrets import redact

    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - 16384))
    lines = [line.rstrip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    raised = [line for line in lines if _RAISED.match(line)]
    said = (raised or lines or [""])[-1].strip()
    return f": {redact(said)[:300]}" if said else ""


def _drain_to_api(timeout: float = 5) -> None:
    """Send the logs and events still queued for the temporary server before it stops (an
    interrupted flow run's crash report, say): else they fail after it, on stderr."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout)
        except Exception:  # noqa: BLE001 - best effort: the render's outcome is already decided
            pass
