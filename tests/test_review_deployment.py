"""The review gate end to end: a real Prefect server, `prefect deploy`, a process worker, a
deployment run with review=true that pauses; the test answers through the API as the UI form
does (one scene marked redo), exactly one more engine call follows, and the run completes."""

from __future__ import annotations

import time

import pytest
import yaml

from storage.catalog import Catalog
from tests.test_deployment import PREFECT, prefect, prefect_server, start, stop  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def wait_for(client, run_id, states: set[str], timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.state and run.state.type.value in states:
            return run
        if run.state and run.state.is_final():
            pytest.fail(f"run ended {run.state.type.value}: {run.state.message}")
        time.sleep(1)
    pytest.fail(f"run never reached {states}; it is {run.state.type.value if run.state else None}")


@pytest.mark.slow
def test_deployment_review_pauses_and_resumes_with_a_redo(prefect_server, small_project):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.input.run_input import keyset_from_paused_state

    env, tmp = prefect_server
    env["REELFLOW_REVIEW_POLL"] = "1"
    prefect(env, "work-pool", "create", "reelflow", "--type", "process")
    prefect(env, "deploy", "--all")
    worker = start([PREFECT, "worker", "start", "--pool", "reelflow", "--limit", "1"], env, tmp / "worker.log")
    catalog = Catalog(env["REELFLOW_DATABASE_URL"])

    def generated() -> list[str]:
        return sorted(a.scene for a in catalog.attempts(slug="small") if a.status == "generated")

    try:
        with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
            deployment = client.read_deployment_by_name("render-project/render-project")
            run = client.create_flow_run_from_deployment(
                deployment.id, parameters={"project": str(small_project), "review": True})
            paused = wait_for(client, run.id, {"PAUSED"})
            assert generated() == ["s0", "s1", "s2"]
            schema = client.read_flow_run_input(run.id, keyset_from_paused_state(paused.state)["schema"])
            assert all(f'"{scene}"' in schema for scene in ("s0", "s1", "s2")) and '"redo"' in schema
            client.resume_flow_run(run.id, run_input={"scenes": {"s1": {"take": 1, "redo": True}}, "again": False})
            done = wait_for(client, run.id, {"COMPLETED"})
            assert done.state.is_completed()
    finally:
        stop(worker)
    assert generated() == ["s0", "s1", "s1", "s2"]
    assert yaml.safe_load((small_project / "picks.yaml").read_text()) == {"s1": 2}
    [manifest] = list((tmp / "store" / "renders" / "small").glob("*/render.json"))
    scenes = {s["scene_id"]: s for s in yaml.safe_load(manifest.read_text())["scenes"]}
    assert scenes["s1"]["picked"] == 2 and [t["take"] for t in scenes["s1"]["takes"]] == [1, 2]
