"""A render that is stopping (Ctrl-C, SIGTERM) asks for no clip it has not paid for: a clip
waiting for its engine's slot or a retry gives up, and a RunPod submission that cannot get
through stops retrying at once instead of at REELFLOW_RUNPOD_TIMEOUT."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest

import engines
from engines import TransientEngineError, stop
from engines.runpod_endpoint import RunPodEngine
from engines.stop import Stopped
from projects import load_project
from storage import LocalStore
from tasks.plan import plan_project
from tests.engine_contract import request
from tests.engines_fake import FaultyEngine, transient


@pytest.fixture(autouse=True)
def not_stopping():
    stop.resume()
    yield
    stop.resume()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]          # nothing listens there once it is closed


def test_a_runpod_submission_that_cannot_connect_gives_up_when_the_render_stops(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_test_key_0123456789")
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", f"http://127.0.0.1:{closed_port()}/v2")
    monkeypatch.setenv("REELFLOW_RUNPOD_TIMEOUT", "120")
    from reelflow.settings import reload_settings

    reload_settings()
    outcome: list[BaseException] = []

    def submit() -> None:
        try:
            RunPodEngine(model="720x720_5s", params={"endpoint": "ovi"}).generate(request(), tmp_path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=submit)
    thread.start()
    time.sleep(1.5)                               # a few refused connections, in backoff
    stopped = time.monotonic()
    stop.stop()
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - stopped < 10
    assert isinstance(outcome[0], Stopped) and "RunPod submit" in str(outcome[0])
    reload_settings()


def test_a_clip_that_waited_for_its_slot_is_not_asked_of_its_engine_once_stopping(small_project, isolated_storage,
                                                                                 tmp_path, counting):
    from tasks.clip import produce_clip

    plan = plan_project(load_project(small_project))[0][0]

    @contextmanager
    def slot_freed_as_the_render_stops(engine):
        stop.stop()                               # Ctrl-C while the clip waited for its engine
        yield

    with pytest.raises(Stopped):
        produce_clip(plan, LocalStore(isolated_storage), tmp_path / "clips", slot=slot_freed_as_the_render_stops)
    assert counting.calls == []


def test_retries_end_once_the_render_stops(small_project, isolated_storage, monkeypatch):
    from reelflow.settings import reload_settings
    from tasks.clip import generate_with_retries

    monkeypatch.setenv("REELFLOW_RETRY_BACKOFF", "2")         # retries after ~2, 4, 8 s
    reload_settings()
    class StoppedWhileItFailed(FaultyEngine):
        def generate(self, request, out_dir):
            stop.stop()                                           # Ctrl-C during the engine's call
            return super().generate(request, out_dir)

    faulty = StoppedWhileItFailed("flaky", transient())
    engines.register("flaky", lambda model=None, params=None: faulty)
    try:
        plan = plan_project(load_project(small_project), engine="flaky")[0][0]
        started = time.monotonic()
        with pytest.raises(TransientEngineError):
            generate_with_retries(plan, "r1")
        assert time.monotonic() - started < 1.5 and faulty.calls == ["s0"]
    finally:
        engines.unregister("flaky")
        monkeypatch.undo()
        reload_settings()


def test_an_interrupted_render_stops_its_clips_while_it_settles_and_then_the_process_goes_on(small_project,
                                                                                            isolated_storage,
                                                                                            monkeypatch):
    """The flag is the render's: set while its clips settle, clear once they have (a process that
    renders again, a test session, a worker, asks its next clips of their engines)."""
    from flows import local

    seen = []
    monkeypatch.setattr("flows.pipeline._render", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    real_settle = local.LocalRunner.settle
    monkeypatch.setattr(local.LocalRunner, "settle", lambda self: (seen.append(stop.stopping()), real_settle(self)))
    with pytest.raises(KeyboardInterrupt):
        local.render_local(str(small_project))
    assert seen == [True] and not stop.stopping()
