"""The review gate: the terminal answers it, or the flow pauses for Prefect's form (answered
through the API as the UI does), and nobody answering follows REELFLOW_REVIEW_ON_TIMEOUT."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from typer.testing import CliRunner

from reelflow.cli import app
from reelflow.settings import reload_settings
from tasks.plan import default_seed

pytestmark = pytest.mark.usefixtures("prefect_harness")


def picks_of(folder) -> dict:
    path = folder / "picks.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


@pytest.mark.slow
def test_terminal_review_picks_and_redoes(small_project, counting):
    answers = "2\nr\n\n"                     # s0: take 2, s1: redo, s2: keep take 1
    result = CliRunner().invoke(app, ["render", str(small_project), "--takes", "2", "--review"], input=answers)
    assert result.exit_code == 0, result.output
    assert sorted(counting.calls) == ["s0", "s0", "s1", "s1", "s1", "s2", "s2"]   # 6 takes + 1 redo
    assert picks_of(small_project) == {"s0": 2, "s1": 3}
    assert "Take [1], or r to redo" in result.output


@pytest.mark.slow
def test_a_review_may_pick_a_stored_take_this_render_did_not_ask_for(small_project, counting):
    """A stored take the render did not ask for was offered, picked, and then missing from the
    cut: the scene was left out of the video, exit 0."""
    from media.probe import probe

    assert CliRunner().invoke(app, ["render", str(small_project), "--takes", "2"]).exit_code == 0
    counting.calls.clear()
    result = CliRunner().invoke(app, ["render", str(small_project), "--review"], input="2\n\n\n")
    assert result.exit_code == 0, result.output
    assert counting.calls == [] and picks_of(small_project) == {"s0": 2}
    assert probe(result.stdout.strip().splitlines()[-1]).duration == pytest.approx(4.5, abs=0.05)


@pytest.mark.slow
def test_stdin_closed_midway_keeps_the_answers_given(small_project, counting):
    assert CliRunner().invoke(app, ["render", str(small_project), "--takes", "2"]).exit_code == 0
    result = CliRunner().invoke(app, ["render", str(small_project), "--takes", "2", "--review"], input="2\n")
    assert result.exit_code == 0, result.output
    assert picks_of(small_project) == {"s0": 2}


@pytest.mark.slow
def test_terminal_review_with_stdin_closed_follows_the_setting(small_project, counting, monkeypatch):
    monkeypatch.setenv("REELFLOW_REVIEW_ON_TIMEOUT", "fail")
    reload_settings()
    failed = CliRunner().invoke(app, ["render", str(small_project), "--review"], input="")
    assert failed.exit_code == 1
    assert "nobody answered (REELFLOW_REVIEW_ON_TIMEOUT=fail)" in failed.output and "Traceback" not in failed.output
    monkeypatch.setenv("REELFLOW_REVIEW_ON_TIMEOUT", "proceed")
    reload_settings()
    counting.calls.clear()
    done = CliRunner().invoke(app, ["render", str(small_project), "--review"], input="")
    assert done.exit_code == 0, done.output
    assert counting.calls == [] and picks_of(small_project) == {}


@pytest.mark.slow
@pytest.mark.parametrize("policy, code", [("proceed", 0), ("fail", 1)])
def test_a_terminal_review_nobody_answers_ends_after_the_review_timeout(small_project, tmp_path, policy, code):
    """A terminal left open with nobody at it (a tmux session, a CI job with a tty) waited for an
    answer forever: it follows REELFLOW_REVIEW_TIMEOUT and REELFLOW_REVIEW_ON_TIMEOUT too."""
    import os
    import pty
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    leader, follower = pty.openpty()                   # a real terminal on stdin; nobody types
    env = {**os.environ, "PYTHONPATH": str(repo), "REELFLOW_REVIEW_TIMEOUT": "1", "REELFLOW_REVIEW_ON_TIMEOUT": policy,
           "REELFLOW_STORAGE": str(tmp_path / "store"), "REELFLOW_WORK_DIR": str(tmp_path / "work"),
           "REELFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}"}
    env.pop("PREFECT_API_URL", None)
    try:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "reelflow", "render", str(small_project), "--review", "--local"],
                              stdin=follower, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == code, proc.stderr
    assert "no answer in REELFLOW_REVIEW_TIMEOUT" in proc.stderr
    if policy == "fail":
        assert "nobody answered (REELFLOW_REVIEW_ON_TIMEOUT=fail)" in proc.stderr
    assert time.monotonic() - started < 60


def paused_run(name: str, timeout: float = 90):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:               # the newest: one left by a failed test is older
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[name]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))),
                sort=FlowRunSort.START_TIME_DESC)
            if runs:
                return runs[0]
            time.sleep(0.5)
    pytest.fail(f"no paused run named {name}")


@pytest.mark.slow
def test_flow_pauses_for_the_form_and_resumes_with_a_redo(small_project, counting, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run
    from prefect.input.run_input import keyset_from_paused_state

    from flows.render import render_project

    monkeypatch.setenv("REELFLOW_REVIEW_POLL", "1")
    monkeypatch.setenv("REELFLOW_REVIEW_TIMEOUT", "120")        # a failed check below ends the wait
    reload_settings()
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=render_project(str(small_project), review=True)),
                              daemon=True)
    runner.start()
    run = None
    try:
        run = paused_run("render-small")
        assert sorted(counting.calls) == ["s0", "s1", "s2"]
        with get_client(sync_client=True) as client:
            schema = client.read_flow_run_input(run.id, keyset_from_paused_state(run.state)["schema"])
        assert "s1" in str(schema) and "redo" in str(schema)
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

        with get_client(sync_client=True) as client:       # this run's table: other tests render "small" too
            [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["render-small-review"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
        assert f"| s1 | Line 1. | 1 | take 1 (seed {default_seed('s1')}, animatic) |" in artifact.data
        resume_flow_run(run.id, run_input={"scenes": {"s1": {"take": 1, "redo": True}}, "again": False})
        runner.join(timeout=120)
    finally:
        if runner.is_alive() and run is not None:       # a failed check: end the paused run, not the harness
            from prefect.states import Cancelled

            with get_client(sync_client=True) as client:
                client.set_flow_run_state(run.id, Cancelled(), force=True)
        runner.join(timeout=150)
    result = outcome["result"]
    assert sorted(counting.calls) == ["s0", "s1", "s1", "s2"]
    assert {c.scene_id: c.take for c in result.clips} == {"s0": 1, "s1": 2, "s2": 1}
    assert picks_of(small_project) == {"s1": 2}


@pytest.mark.slow
def test_a_review_cancelled_while_it_waits_stays_cancelled(small_project, counting, monkeypatch, isolated_storage):
    """Cancelling a paused run (the UI's Cancel) must not be undone when the pause runs out:
    the render ends with ReviewCancelled, the run stays Cancelled and nothing is published."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import CancelledRun
    from prefect.states import Cancelled, Cancelling

    from flows.render import render_project

    # A day-long pause: the render must notice the cancel at its next look, not when the pause
    # runs out (Prefect's own wait looked only for a resume: Cancelling for a day).
    for name, value in {"REELFLOW_REVIEW_TIMEOUT": "86400", "REELFLOW_REVIEW_POLL": "1",
                        "REELFLOW_REVIEW_ON_TIMEOUT": "proceed"}.items():
        monkeypatch.setenv(name, value)
    reload_settings()
    outcome = {}

    def render():
        try:
            outcome["result"] = render_project(str(small_project), review=True)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    runner = threading.Thread(target=render, daemon=True)
    runner.start()
    run = paused_run("render-small")
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Cancelling(message="cancelled in the UI"), force=True)
    runner.join(timeout=60)
    if runner.is_alive():                                 # don't leave a day-long pause in the harness
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Cancelled(), force=True)
        runner.join(timeout=30)
        pytest.fail("the render did not notice the cancel while its review waited")
    assert isinstance(outcome.get("error"), CancelledRun), outcome
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state.is_cancelled() and "render-small: the run was cancelled while it waited" in state.message
    assert sorted(counting.calls) == ["s0", "s1", "s2"]             # the takes were made before the review
    assert not list(isolated_storage.glob("renders/small/*/*.mp4"))   # no video published


@pytest.mark.slow
def test_nobody_answers_the_form_and_the_render_proceeds(small_project, counting, monkeypatch):
    from flows.render import render_project

    monkeypatch.setenv("REELFLOW_REVIEW_TIMEOUT", "2")
    monkeypatch.setenv("REELFLOW_REVIEW_POLL", "1")
    reload_settings()
    result = render_project(str(small_project), review=True)
    assert [c.take for c in result.clips] == [1, 1, 1] and picks_of(small_project) == {}


@pytest.mark.slow
def test_a_pause_the_server_expires_follows_the_timeout_setting(small_project, counting, monkeypatch):
    """The server fails a paused run whose pause expired ('never resumed') before the render's
    next look; the render took that for a cancel and the run ended Cancelled."""
    from prefect.client.orchestration import get_client
    from prefect.states import Failed

    from flows.render import render_project

    for name, value in {"REELFLOW_REVIEW_TIMEOUT": "600", "REELFLOW_REVIEW_POLL": "1",
                        "REELFLOW_REVIEW_ON_TIMEOUT": "proceed"}.items():
        monkeypatch.setenv(name, value)
    reload_settings()
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=render_project(str(small_project), review=True)),
                              daemon=True)
    runner.start()
    run = paused_run("render-small")
    with get_client(sync_client=True) as client:          # what the server's pause_expirations service does
        client.set_flow_run_state(run.id, Failed(message="The flow was paused and never resumed."), force=True)
    runner.join(timeout=120)
    assert not runner.is_alive() and [c.take for c in outcome["result"].clips] == [1, 1, 1]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run.id).state.is_completed()


@pytest.mark.slow
def test_nobody_answers_the_form_and_the_setting_fails_the_render(small_project, counting, monkeypatch):
    from flows.render import render_project
    from tasks.review import ReviewTimeout

    for name, value in {"REELFLOW_REVIEW_TIMEOUT": "1", "REELFLOW_REVIEW_POLL": "1",
                        "REELFLOW_REVIEW_ON_TIMEOUT": "fail"}.items():
        monkeypatch.setenv(name, value)
    reload_settings()
    with pytest.raises(ReviewTimeout, match="nobody answered"):
        render_project(str(small_project), review=True)
