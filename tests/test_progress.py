"""Per-scene progress: the Prefect table artifact's versions and the CLI's per-scene lines."""

from __future__ import annotations

import json
import warnings

import pytest
import yaml
from typer.testing import CliRunner

import engines
from flows.render import render_project
from reelflow.cli import app
from tasks.board import Board
from tests.engines_fake import FaultyEngine, quota, transient

pytestmark = pytest.mark.usefixtures("prefect_harness")


def scene_engines(folder, **by_scene) -> None:
    spec = yaml.safe_load((folder / "project.yaml").read_text())
    for scene in spec["scenes"]:
        if scene["id"] in by_scene:
            scene["engine"] = by_scene[scene["id"]]
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def test_board_states_from_events():
    board = Board("r1")
    board.apply("plan", {"render_id": "r1", "scenes": [{"scene": "a", "take": 1, "engine": "x", "clip_seconds": 2}]})
    assert board.table()[0]["state"] == "planned"
    assert board.eta({"x": 3.0}, parallel=1) == pytest.approx(6.0)
    board.apply("clip_start", {"render_id": "r1", "scene": "a", "take": 1, "engine": "x", "attempt": 1})
    board.apply("clip_failed", {"render_id": "r1", "scene": "a", "take": 1})
    assert board.apply("clip_start", {"render_id": "r1", "scene": "a", "take": 1, "engine": "x", "attempt": 2})
    assert board.apply("fallback", {"render_id": "r1", "scene": "a", "take": 1, "to": "y"})
    board.apply("clip_start", {"render_id": "r1", "scene": "a", "take": 1, "engine": "y", "attempt": 1})
    board.apply("clip", {"render_id": "r1", "scene": "a", "take": 1, "engine": "y", "cached": False})
    board.apply("clip", {"render_id": "other", "scene": "a", "take": 1, "cached": True})   # another render's
    [row] = board.table()
    assert row["state"] == "done" and row["engine"] == "y" and row["attempts"] == 3
    assert row["history"] == "planned → generating → retrying (1) → falling back to y → generating → done"
    assert board.eta({"x": 3.0}) == 0


@pytest.mark.slow
def test_scene_table_artifact_shows_retries_and_fallbacks(small_project, counting):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    engines.register("flaky", lambda model=None, params=None: FaultyEngine("flaky", transient(), fail_times=1))
    engines.register("space", lambda model=None, params=None: FaultyEngine("space", quota()))
    try:
        scene_engines(small_project, s0={"name": "flaky"}, s1={"name": "space", "fallback": ["animatic"]})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            state = render_project(str(small_project), return_state=True)
        assert state.is_completed()
        # The render's own threads (clips normalised as they land) publish inside the run.
        assert not [w for w in caught if "outside of a flow or task run" in str(w.message)]
        with get_client(sync_client=True) as client:
            versions = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["render-small-scenes"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    finally:
        engines.unregister("flaky")
        engines.unregister("space")
    tables = [json.loads(v.data) if isinstance(v.data, str) else v.data for v in versions]
    seen = {(row["scene"], row["state"]) for table in tables for row in table}
    assert ("s0", "planned") in seen and ("s0", "retrying (1)") in seen
    assert ("s1", "falling back to animatic") in seen
    last = {row["scene"]: row for row in max(zip([v.created for v in versions], tables))[1]}
    assert {s: r["state"] for s, r in last.items()} == {"s0": "done", "s1": "done", "s2": "done"}
    assert "retrying (1)" in last["s0"]["history"] and last["s0"]["attempts"] == 2
    assert "falling back to animatic" in last["s1"]["history"] and last["s1"]["engine"] == "animatic"


@pytest.mark.slow
def test_cli_shows_each_scene_and_names_the_generated_ones(small_project, counting):
    runner = CliRunner()
    first = runner.invoke(app, ["render", str(small_project), "--scene", "s1"])
    assert first.exit_code == 0, first.output
    assert "generated: s1" in first.output
    again = runner.invoke(app, ["render", str(small_project), "-v"])   # -v: the per-scene view off a terminal too
    assert again.exit_code == 0, again.output
    lines = again.output.splitlines()
    assert any(line.split()[:3] == ["s1", "1", "reused"] for line in lines if line.strip())
    assert any(line.split()[:3] == ["s0", "1", "done"] for line in lines if line.strip())
    assert "generated: s0, s2" in again.output
    # Each clip normalised once is counted once (a clip normalised as it landed is found again at the cut).
    assert "normalised 3 ·" in again.output and "normalised 6" not in again.output


@pytest.mark.slow
def test_off_a_terminal_a_failed_render_prints_one_line(small_project):
    engines.register("always-fails", lambda model=None, params=None: FaultyEngine("always-fails", quota()))
    try:
        scene_engines(small_project, s1={"name": "always-fails"})
        result = CliRunner().invoke(app, ["render", str(small_project)])
    finally:
        engines.unregister("always-fails")
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("render failed:") and "s1" in result.stderr
