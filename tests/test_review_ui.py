"""The review gate answered as a person does: a real ``prefect server start`` with its UI, a
render paused for review, and headless Chromium opening the run's page, clicking **Resume**,
picking take 2 of one scene in the dropdown, ticking **redo** on another and submitting. The
run resumes, picks.yaml holds both choices and exactly one more engine call is made."""

from __future__ import annotations

import sys
import time

import pytest
import yaml

from storage.catalog import Catalog
from tests.test_browser import SHOTS, browser  # noqa: F401  (fixture)
from tests.test_deployment import prefect_server, start, stop  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def wait_for(client, states: set[str], proc, log, timeout: float = 150):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_flow_runs()
        if runs and runs[0].state and runs[0].state.type.value in states:
            return runs[0]
        if proc.poll() is not None and not (runs and runs[0].state.type.value in states):
            pytest.fail(f"render exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    pytest.fail(f"run never reached {states}:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_review_form_in_the_prefect_ui_picks_a_take_and_redoes_a_scene(prefect_server, small_project, browser):
    from prefect.client.orchestration import SyncPrefectClient

    env, tmp = prefect_server
    env = {**env, "REELFLOW_REVIEW_POLL": "1", "REELFLOW_DATABASE_URL": f"sqlite:///{tmp / 'catalog.db'}"}
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["scenes"][0]["takes"] = 2
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    catalog = Catalog(env["REELFLOW_DATABASE_URL"])

    def generated() -> list[str]:
        return sorted(a.scene for a in catalog.attempts(slug="small") if a.status == "generated")

    log = tmp / "render.log"
    code = ("from flows.render import render_project; "
            f"render_project({str(small_project)!r}, engine='animatic', review=True)")
    proc = start([sys.executable, "-c", code], env, log)
    try:
        with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
            run = wait_for(client, {"PAUSED"}, proc, log)
            assert generated() == ["s0", "s0", "s1", "s2"]

            page = browser
            page.goto(f"{env['PREFECT_API_URL'].removesuffix('/api')}/runs/flow-run/{run.id}",
                      wait_until="domcontentloaded")
            page.get_by_role("button", name="Resume").first.click(timeout=60_000)
            modal = page.locator(".p-modal")
            modal.get_by_text("s0 (Optional)").wait_for(timeout=30_000)
            text = modal.inner_text()
            assert all(f"s{i}" in text for i in range(3)) and "“Line 1.”" in text
            assert "Make a new take of this scene" in text and "The take the cut uses." in text

            # s0 has two takes: a dropdown; the others one: a fixed value.
            take = modal.locator(".p-select-button__control")
            assert take.count() == 1
            options = page.locator("[role=option], .p-select-option")
            take.focus()
            take.press("ArrowDown")
            page.wait_for_timeout(700)
            box = take.bounding_box()
            page.mouse.move(box["x"] + 20, box["y"] + 10)
            page.mouse.down()
            page.wait_for_timeout(300)
            page.mouse.up()
            options.first.wait_for(timeout=10_000)
            assert options.count() == 2
            options.filter(has_text="2").first.click(timeout=10_000)
            modal.locator("input[type=checkbox]").nth(1).locator("xpath=..").click()  # s1: redo
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "review-form.png"))
            modal.get_by_role("button", name="Submit").click()

            done = wait_for(client, {"COMPLETED"}, proc, log)
            assert done.state.is_completed()
        proc.wait(timeout=60)
        assert proc.returncode == 0, log.read_text()[-3000:]
    finally:
        stop(proc)
    assert generated() == ["s0", "s0", "s1", "s1", "s2"]
    assert {k: v for k, v in yaml.safe_load((small_project / "picks.yaml").read_text()).items()} == {"s0": 2, "s1": 2}
