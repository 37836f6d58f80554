"""Renders through the remote engines: injected faults, quota fallback, limits, history."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.render import render_project
from reelflow.cli import app
from reelflow.settings import reload_settings
from storage.catalog import open_catalog
from tests.conftest import DEMO
from tests.remote_servers import RunPodServer, SpaceServer

pytestmark = pytest.mark.usefixtures("prefect_harness")
API_KEY = "rpa_q7flow_key_987654321"


@pytest.fixture(scope="module")
def runpod_server():
    with RunPodServer(API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def space():
    with SpaceServer() as server:
        yield server


@pytest.fixture(autouse=True)
def remote_env(monkeypatch, runpod_server, space):
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", runpod_server.base_url)
    monkeypatch.setenv("REELFLOW_RUNPOD_ENDPOINT", "ovi")
    monkeypatch.setenv("REELFLOW_HF_SPACE", space.url)
    monkeypatch.setenv("REELFLOW_QUOTA_WAIT_MAX", "1")
    reload_settings()
    for server in (runpod_server, space):
        server.faults.http.clear(), server.faults.jobs.clear()
        server.faults.slow, server.faults.rate = 0.0, 0.0


def make_project(root: Path, scenes: int, engine: dict) -> Path:
    folder = root / "projects" / "remote"
    (folder / "characters").mkdir(parents=True)
    shutil.copy(DEMO / "characters" / "max.png", folder / "characters")
    spec = {
        "title": "Remote", "output": {"width": 160, "height": 160, "fps": 12},
        "engine": engine,
        "characters": {"max": {"name": "Max", "image": "characters/max.png"}},
        "scenes": [{"id": f"s{i:02d}", "character": "max", "action": "waving", "speech": f"Line {i}.",
                    "atmosphere": "wind", "duration": 1.0} for i in range(scenes)],
    }
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


@pytest.mark.slow
def test_twelve_scenes_with_30_percent_transient_faults_all_land_once(tmp_path, runpod_server):
    folder = make_project(tmp_path, 12, {"name": "runpod", "model": "720x720_5s",
                                         "params": {"width": 160, "height": 160, "sample_steps": 10}})
    runpod_server.faults.rate = 0.3                 # 30 % of HTTP requests answer 500
    runpod_server.faults.jobs = ["fail", "ok", "ok", "fail", "ok", "ok", "none"]   # and some jobs fail
    result = render_project(str(folder))
    assert result.generated == 12 and len(result.clips) == 12
    attempts = open_catalog().attempts(render_id=result.render_id)
    generated = Counter(a.scene for a in attempts if a.status == "generated")
    assert generated == Counter({f"s{i:02d}": 1 for i in range(12)})      # never generated twice
    failed = [a for a in attempts if a.status == "failed"]
    assert len(failed) >= 3 and {a.error_class for a in failed} <= {"TransientEngineError", "InvalidClip"}
    # Nothing is generated again on a re-render.
    runpod_server.faults.rate = 0.0
    again = render_project(str(folder))
    assert again.generated == 0 and again.reused == 12


def test_a_clip_without_sound_for_a_spoken_scene_is_invalid_and_the_fallback_speaks(tmp_path, runpod_server):
    """An Ovi clip with no audio stream lost the line silently, and was stored for later renders."""
    folder = make_project(tmp_path, 1, {"name": "runpod", "model": "720x720_5s", "fallback": ["animatic"],
                                        "params": {"width": 160, "height": 160, "sample_steps": 10}})
    runpod_server.faults.jobs = ["mute"] * 4
    result = render_project(str(folder))
    assert [c.engine for c in result.clips] == ["animatic"]
    assert result.clips[0].attempts[0] == "runpod: InvalidClip"
    rows = [a for a in open_catalog().attempts(render_id=result.render_id) if a.engine == "runpod"]
    assert rows and all(a.status == "failed" and "no audio stream" in a.error for a in rows)


@pytest.mark.slow
def test_quota_on_the_space_sends_the_scene_to_runpod(tmp_path, space):
    folder = make_project(tmp_path, 2, {"name": "hf-space", "fallback": ["runpod"]})
    space.faults.jobs = ["quota", "ok"]              # one scene hits the ZeroGPU quota (3 s > 1 s max)
    result = render_project(str(folder))
    engines_used = Counter(c.engine for c in result.clips)
    assert engines_used == Counter({"hf-space": 1, "runpod": 1})
    moved = next(c for c in result.clips if c.engine == "runpod")
    assert moved.attempts == ["hf-space: QuotaExceeded", "runpod: generated"]
    rows = [a for a in open_catalog().attempts(render_id=result.render_id) if a.scene == moved.scene_id]
    assert [(a.engine, a.status, a.error_class) for a in rows] == [
        ("hf-space", "failed", "QuotaExceeded"), ("runpod", "generated", None)]
    history = CliRunner().invoke(app, ["history", str(folder)])
    assert history.exit_code == 0 and "hf-space" in history.output and "runpod" in history.output
    assert "QuotaExceeded" in history.output


@pytest.mark.slow
def test_a_short_quota_wait_is_waited_out_on_the_same_engine(tmp_path, space, monkeypatch):
    monkeypatch.setenv("REELFLOW_QUOTA_WAIT_MAX", "10")
    reload_settings()
    folder = make_project(tmp_path, 1, {"name": "hf-space", "fallback": ["runpod"]})
    space.faults.jobs = ["quota"]
    result = render_project(str(folder))
    assert result.clips[0].engine == "hf-space"
    rows = open_catalog().attempts(render_id=result.render_id)
    assert [(a.engine, a.status) for a in rows] == [("hf-space", "failed"), ("hf-space", "generated")]


@pytest.mark.parametrize("limits", ["global", "process"])
@pytest.mark.slow
def test_engine_concurrency_limit_is_created_and_respected(tmp_path, runpod_server, monkeypatch, limits):
    """In one process the limit is a semaphore; shared with other processes, a Prefect global limit."""
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("REELFLOW_ENGINE_CONCURRENCY", '{"runpod": 1}')
    monkeypatch.setenv("REELFLOW_ENGINE_LIMITS", limits)
    reload_settings()
    with get_client(sync_client=True) as client:     # the session's server may hold one from another test
        for found in client.read_global_concurrency_limits():
            if found.name == "reelflow-engine-runpod":
                client.delete_global_concurrency_limit_by_name(found.name)
    folder = make_project(tmp_path, 3, {"name": "runpod", "model": "720x720_5s",
                                        "params": {"width": 160, "height": 160}})
    runpod_server.faults.slow = 0.5
    runpod_server.max_in_progress = 0
    seen_before = len(runpod_server.requests)
    render_project(str(folder))
    with get_client(sync_client=True) as client:
        made = {x.name: x.limit for x in client.read_global_concurrency_limits()}
    assert made.get("reelflow-engine-runpod") == (1 if limits == "global" else None)
    runs = [r for r in runpod_server.requests[seen_before:] if r.endswith("/run")]
    assert len(runs) == 3
    # With one slot the jobs ran one after another: never two IN_PROGRESS at once.
    assert runpod_server.max_in_progress == 1
