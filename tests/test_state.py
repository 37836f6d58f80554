"""Incremental re-render, crash resume, storage outages, the catalog and secrets, on real
servers: moto and rclone S3 over HTTP, SQLite and PostgreSQL, a SIGKILLed subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import yaml

import engines
from flows.render import render_project
from media.probe import probe
from storage import open_store
from storage.catalog import AttemptRow, ClipRow, ProjectRow, RenderRow, open_catalog
from tasks.clip import validate_clip
from tests.conftest import S3_SECRET, use_s3
from tests.engines_fake import CountingEngine, FaultyEngine, quota, transient

pytestmark = pytest.mark.usefixtures("prefect_harness")


class SlowEngine(CountingEngine):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def generate(self, request, out_dir):
        time.sleep(self.seconds)
        return super().generate(request, out_dir)


def stored_scenes(store) -> set[str]:
    return {store.metadata(k)["scene"] for k in store.list("clips") if k.endswith(".mp4")}


@pytest.mark.slow
def test_demo_on_s3_reuses_every_clip_and_regenerates_one_edit(demo_copy, counting, moto_s3, monkeypatch):
    use_s3(monkeypatch, moto_s3.endpoint, f"demo-{uuid.uuid4().hex[:8]}")
    first = render_project(str(demo_copy))
    assert len(counting.calls) == 6 and first.video.startswith(moto_s3.endpoint)
    assert "X-Amz-Signature=" in first.video
    store = open_store()
    assert stored_scenes(store) == {"intro", "win", "question", "answer", "podium", "outro"}
    assert {"renders/demo/%s/%s" % (first.render_id, n) for n in ("final.mp4", "final.srt", "contact-sheet.png")} \
        <= set(store.list("renders"))
    assert probe(store.fetch(first.video_key, demo_copy.parent / "dl"), count_frames=True).video_frames == 720

    counting.calls.clear()
    again = render_project(str(demo_copy))
    assert counting.calls == [] and again.reused == 6

    spec = (demo_copy / "project.yaml").read_text()
    (demo_copy / "project.yaml").write_text(spec.replace("See you next time.", "See you in Monaco."))
    third = render_project(str(demo_copy))
    assert counting.calls == ["outro"] and (third.generated, third.reused) == (1, 5)


@pytest.mark.slow
def test_sigkilled_render_resumes_without_regenerating_stored_clips(demo_copy, counting, moto_s3, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    use_s3(monkeypatch, moto_s3.endpoint, f"kill-{uuid.uuid4().hex[:8]}")
    store = open_store()
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    proc = subprocess.Popen([sys.executable, "-m", "reelflow", "render", str(demo_copy)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(stored_scenes(store)) < 2:
            assert proc.poll() is None, "the render ended before it could be killed"
            assert time.monotonic() < deadline, "no clip landed in time"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    landed = stored_scenes(store)
    assert 2 <= len(landed) < 6
    for key in [k for k in store.list("clips") if k.endswith(".mp4")]:   # whatever landed is whole
        validate_clip(store.fetch(key, demo_copy.parent / "check"), 5.0)

    result = render_project(str(demo_copy))
    assert set(counting.calls).isdisjoint(landed)
    assert len(counting.calls) == 6 - len(landed)
    assert result.generated + result.reused == 6


@pytest.mark.slow
def test_render_survives_the_s3_server_going_away_and_coming_back(small_project, rclone_s3, monkeypatch):
    slow = SlowEngine(1.0)
    engines.register("animatic", lambda model=None, params=None: slow)
    use_s3(monkeypatch, rclone_s3.endpoint, "outage")
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(result=render_project(str(small_project))))
    worker.start()
    try:
        clips = rclone_s3.root / "outage" / "reels" / "clips"
        deadline = time.monotonic() + 120
        while not (clips.exists() and any(clips.iterdir())):
            assert time.monotonic() < deadline and worker.is_alive()
            time.sleep(0.05)
        rclone_s3.stop()                       # the store goes away mid-render
        time.sleep(4)
        rclone_s3.start()                      # and comes back on the same address
        worker.join(timeout=240)
    finally:
        engines.unregister("animatic")
    assert "result" in outcome, "the render did not complete"
    assert outcome["result"].generated == 3
    for path in (rclone_s3.root / "outage" / "reels").rglob("*"):
        if path.is_file() and ".tmp" not in path.parts and path.suffix in (".mp4", ".mov"):
            validate_clip(path, None)         # no object under a final key is partial


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path, monkeypatch) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cat.db'}"
    else:  # a fresh database per test on the session's PostgreSQL server
        import sqlalchemy

        server = request.getfixturevalue("postgres_url")
        name = f"reelflow_{uuid.uuid4().hex[:12]}"
        admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        admin.dispose()
        url = str(sqlalchemy.engine.make_url(server).set(database=name).render_as_string(hide_password=False))
    monkeypatch.setenv("REELFLOW_DATABASE_URL", url)
    from reelflow.settings import reload_settings

    reload_settings()
    return url


@pytest.mark.slow
def test_catalog_records_every_attempt_failures_included(small_project, counting, catalog_url):
    flaky = FaultyEngine("flaky", transient(), fail_times=1)
    space = FaultyEngine("space", quota())
    engines.register("flaky", lambda model=None, params=None: flaky)
    engines.register("space", lambda model=None, params=None: space)
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["engine"] = {"name": "flaky"}
    spec["scenes"][2]["engine"] = {"name": "space", "fallback": ["animatic"]}
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        result = render_project(str(small_project))
        # Again with every clip stored: all reused, no cost (the engines must still be known
        # to validate the production).
        again = render_project(str(small_project), force=True)
    finally:
        engines.unregister("flaky")
        engines.unregister("space")
    catalog = open_catalog(catalog_url)
    render = next(r for r in catalog.renders("small") if r.id == result.render_id)
    assert (render.status, render.generated, render.reused, render.scenes) == ("completed", 3, 0, 3)
    assert render.video_key == result.video_key
    rows = catalog.attempts(render_id=result.render_id)
    story = sorted((a.scene, a.engine, a.status, a.error_class) for a in rows)
    assert story == sorted([
        ("s0", "flaky", "failed", "TransientEngineError"), ("s0", "flaky", "generated", None),
        ("s1", "flaky", "failed", "TransientEngineError"), ("s1", "flaky", "generated", None),
        ("s2", "space", "failed", "QuotaExceeded"), ("s2", "animatic", "generated", None),
    ])
    failed = [a for a in rows if a.status == "failed"]
    assert all(a.error and a.finished and a.seconds >= 0 for a in failed)
    assert {c.key for c in result.clips} <= {a.clip_key for a in rows}

    reused = catalog.attempts(render_id=again.render_id)
    assert [a.status for a in reused] == ["reused"] * 3 and sum(a.cost for a in reused) == 0


@pytest.mark.slow
def test_a_failed_render_is_recorded_as_failed(small_project, catalog_url):
    engines.register("down", lambda model=None, params=None: FaultyEngine("down", transient()))
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["engine"] = {"name": "down"}
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec))
    try:
        with pytest.raises(Exception, match="got no clip"):
            render_project(str(small_project))
    finally:
        engines.unregister("down")
    [render] = open_catalog(catalog_url).renders("small")
    assert render.status == "failed" and "3 of 3 scene(s) got no clip" in render.error
    assert len([a for a in open_catalog(catalog_url).attempts(render_id=render.id) if a.status == "failed"]) == 3 * 4


@pytest.mark.slow
def test_no_credential_appears_in_logs_artifacts_catalog_or_errors(small_project, rclone_s3, monkeypatch,
                                                                   capfd, caplog, catalog_url):
    """The S3 secret key and an HF token an engine echoes back never leave the process."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler
    from sqlmodel import select

    token = "hf_" + "Z" * 34
    monkeypatch.setenv("HF_TOKEN", token)
    use_s3(monkeypatch, rclone_s3.endpoint, "secrets")
    leaky = FaultyEngine("leaky", transient())
    leaky.error = transient().__class__(f"401 Unauthorized for token {token} and key {S3_SECRET}")
    engines.register("leaky", lambda model=None, params=None: leaky)
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["engine"] = {"name": "leaky", "fallback": ["animatic"]}
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec))
    texts: list[str] = []
    try:
        ok = render_project(str(small_project), return_state=True)
        use_s3(monkeypatch, rclone_s3.endpoint, "secrets", secret="wrong-" + S3_SECRET[::-1])
        bad = render_project(str(small_project), return_state=True)
    finally:
        engines.unregister("leaky")
    assert ok.is_completed() and bad.is_failed()
    try:
        bad.result()
    except Exception as exc:  # noqa: BLE001
        texts.append(f"{exc!r} {exc}")
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        for state in (ok, bad):
            run_id = state.state_details.flow_run_id
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            texts += [log.message for log in logs]
            texts += [f"{a.data} {a.description}" for a in client.read_artifacts()]
        texts += [str(s.message) for s in (ok, bad)]
    assert any("Unauthorized" in t for t in texts)              # the logs were really read
    catalog = open_catalog(catalog_url)
    with catalog.session() as s:
        for table in (ProjectRow, RenderRow, ClipRow, AttemptRow):
            texts += [row.model_dump_json() for row in s.exec(select(table))]
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    everything = "\n".join(texts)
    assert "401 Unauthorized for token *** and key ***" in everything
    assert token not in everything and S3_SECRET not in everything and S3_SECRET[::-1] not in everything
