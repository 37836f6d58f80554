"""A render's artifacts on a real Prefect API: the storyboard before the first clip, and
links that open (REELFLOW_PUBLIC_URL + key) or, without it, an inline contact sheet."""

from __future__ import annotations

import pytest

from flows.render import render_project
from reelflow.settings import reload_settings

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def run_artifacts_and_clip_runs(state):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
                                                FlowRunFilterId)

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.key: a for a in artifacts if a.key}, [t for t in task_runs if t.name.startswith("clip-")]


@pytest.mark.slow
def test_storyboard_artifact_exists_before_the_first_clip_lands(small_project, counting, isolated_storage):
    from storage.catalog import open_catalog
    from reelflow.settings import get_settings

    state = render_project(str(small_project), return_state=True)
    result = state.result()
    artifacts, clip_runs = run_artifacts_and_clip_runs(state)
    board = artifacts["render-small-storyboard"]
    assert len(clip_runs) == 3 and len(counting.calls) == 3
    first_clip_run = min(t.start_time for t in clip_runs)
    first_clip_landed = min(a.started for a in open_catalog(get_settings().database_url).attempts(render_id=result.render_id))
    assert board.created < first_clip_run
    assert board.created.replace(tzinfo=None) < first_clip_landed.replace(tzinfo=None)
    prefix = isolated_storage / "renders" / "small" / result.render_id
    assert (prefix / "storyboard.png").is_file() and (prefix / "storyboard.html").is_file()
    # No public URL: the pictures are inline and the video's path comes with how to open it.
    assert "![storyboard](data:image/jpeg;base64," in board.data
    report = artifacts["render-small-report"].data
    assert "![contact sheet](data:image/jpeg;base64," in report and "reelflow serve" in report
    assert f"`{result.video}`" in report


@pytest.mark.slow
def test_with_a_public_url_every_artifact_link_is_public_url_plus_key(small_project, counting, monkeypatch):
    monkeypatch.setenv("REELFLOW_PUBLIC_URL", "http://review.example:8765/")
    reload_settings()
    state = render_project(str(small_project), return_state=True)
    result = state.result()
    artifacts, _ = run_artifacts_and_clip_runs(state)
    base = f"http://review.example:8765/renders/small/{result.render_id}"
    report = artifacts["render-small-report"].data
    assert f"[final.mp4]({base}/final.mp4)" in report
    assert f"![contact sheet]({base}/contact-sheet.png)" in report
    assert f"(http://review.example:8765/review/small/{result.render_id})" in report
    assert f"[final.srt]({base}/final.srt)" in report and f"[storyboard.html]({base}/storyboard.html)" in report
    assert f"![storyboard]({base}/storyboard.png)" in artifacts["render-small-storyboard"].data
    assert "/review/" not in artifacts["render-small-storyboard"].data    # a page that opens only when the render is done
    rows = artifacts["render-small-clips"].data
    assert "http://review.example:8765/clips/" in str(rows)


@pytest.mark.slow
def test_an_unchanged_render_found_at_once_still_shows_its_report(small_project, counting):
    first = render_project(str(small_project))
    state = render_project(str(small_project), return_state=True)
    assert state.result().render_id == first.render_id and len(counting.calls) == 3
    artifacts, clip_runs = run_artifacts_and_clip_runs(state)
    assert clip_runs == [] and first.render_id in artifacts["render-small-report"].data


@pytest.mark.slow
def test_review_page_of_a_real_render_with_takes(small_project, counting, isolated_storage):
    from reelflow.review_page import review_html
    from storage import open_store

    result = render_project(str(small_project), takes=2)
    assert len(counting.calls) == 6
    page = review_html(open_store(str(isolated_storage)), "small", result.render_id)
    assert page.count('<figure class="take') == 6 and page.count('<figure class="take picked"') == 3
    assert page.count('data-take="2"') == 3 and 'id="final"' in page and "storyboard.png" in page
    for scene in result.scenes:
        assert f'src="/{scene.takes[1].key}#t=0.1"' in page


def test_the_production_s_text_is_inert_in_the_review_and_its_form():
    """Speech with a markdown link and image put a live link, and an image the Prefect UI fetched
    from anywhere, into the review artifact and the pause form."""
    from tasks.models import TakeRef
    from tasks.review import SceneReview, review_form, review_markdown

    evil = "Welcome [click](http://evil.example/steal) ![pix](http://evil.example/t.png) <img src=x>"
    scene = SceneReview(scene_id="s0", speech=evil, action="[x](javascript:alert(1))", picked=1,
                        takes=[TakeRef(take=1, seed=1, key="clips/a.mp4", engine="animatic", model=None, cached=True)])
    table = review_markdown([scene])
    form = review_form([scene])
    described = str(form.model_json_schema())
    import re

    for text in (table, described):
        assert not re.search(r"(?<!\\)(\]\(|<img)", text), text      # no link or tag left unescaped
        assert "evil.example" in text                                # the text itself is still there
