"""render_project on a real Prefect test harness: outputs, caching, retries, fallback."""

from __future__ import annotations

from pathlib import Path

import pysubs2
import pytest
import yaml

import engines
from engines import EngineInputError
from flows.render import RenderFailed, render_project
from media.probe import probe
from tests.engines_fake import FaultyEngine, bad_input, quota, transient
from tests.media import marked_clip

pytestmark = pytest.mark.usefixtures("prefect_harness")


def use_engine(name: str, engine) -> None:
    engines.register(name, lambda model=None, params=None: engine)


def set_engine(folder: Path, name: str, fallback: list[str] | None = None) -> None:
    spec = yaml.safe_load((folder / "project.yaml").read_text())
    spec["engine"] = {"name": name, "fallback": fallback or []}
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.mark.slow
def test_demo_renders_to_the_profile_with_cues_and_contact_sheet(demo_copy, counting, isolated_storage):
    result = render_project(str(demo_copy))
    assert sorted(counting.calls) == sorted(["intro", "win", "question", "answer", "podium", "outro"])
    assert (result.generated, result.reused) == (6, 0)
    video = Path(result.video)
    assert video.name == "final.mp4" and video.is_relative_to(isolated_storage.resolve())
    info = probe(video, count_frames=True)
    assert (info.video_codec, info.audio_codec, info.audio_rate, info.audio_channels) == ("h264", "aac", 48000, 2)
    assert (info.width, info.height, info.fps) == (576, 896, 24.0)
    assert abs(info.video_frames - 720) <= 1
    assert info.audio_duration == pytest.approx(30, abs=1 / 24)
    # Measured on the delivered AAC file (ebur128=peak=true): the encode must not overshoot the ceiling.
    from media.loudness import integrated_loudness, true_peak

    assert true_peak(video) <= -1.0
    assert integrated_loudness(video) == pytest.approx(-14, abs=1.0)
    cues = pysubs2.load(result.subtitles)
    assert len(cues) == 6
    assert [c.start / 1000 for c in cues] == pytest.approx([0, 5, 10, 15, 20, 25], abs=1 / 24)
    assert Path(result.contact_sheet).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Unchanged: no engine call at all, and the finished render is found, not made again.
    counting.calls.clear()
    again = render_project(str(demo_copy))
    assert counting.calls == [] and (again.generated, again.reused) == (0, 6)
    assert (again.render_id, again.video) == (result.render_id, result.video)

    # One scene's speech edited: exactly one call, for that scene.
    spec = (demo_copy / "project.yaml").read_text()
    (demo_copy / "project.yaml").write_text(spec.replace("Another win!", "Another win, at last!"))
    third = render_project(str(demo_copy))
    assert counting.calls == ["win"] and (third.generated, third.reused) == (1, 5)


@pytest.mark.slow
def test_flow_run_is_named_after_the_project(small_project, counting):
    from prefect.client.orchestration import get_client

    state = render_project(str(small_project), return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "render-small"


@pytest.mark.slow
def test_selected_scenes_only(small_project, counting):
    result = render_project(str(small_project), scenes=["s2"])
    assert counting.calls == ["s2"] and [c.scene_id for c in result.clips] == ["s2"]
    assert result.duration == pytest.approx(1.5)


def test_unknown_scene_is_a_clear_error(small_project, counting):
    from tasks.plan import PlanError

    with pytest.raises(PlanError, match="unknown scene id.*'nope'"):
        render_project(str(small_project), scenes=["nope"])


@pytest.mark.slow
def test_transient_errors_are_retried_until_they_pass(small_project):
    flaky = FaultyEngine("flaky", transient(), fail_times=2)
    use_engine("flaky", flaky)
    set_engine(small_project, "flaky")
    result = render_project(str(small_project))
    assert result.generated == 3
    assert sorted(flaky.calls) == sorted(["s0", "s1", "s2"] * 3)  # 2 failures + 1 success each


def test_input_errors_fail_fast_without_retry(small_project):
    broken = FaultyEngine("broken", bad_input())
    use_engine("broken", broken)
    set_engine(small_project, "broken", fallback=["animatic"])
    with pytest.raises(EngineInputError, match="image must be a PNG"):
        render_project(str(small_project))
    assert sorted(broken.calls) == ["s0", "s1", "s2"]


@pytest.mark.slow
def test_quota_falls_back_to_the_next_engine_and_history_shows_both(small_project, counting):
    space = FaultyEngine("space", quota())
    use_engine("space", space)
    set_engine(small_project, "space", fallback=["animatic"])
    result = render_project(str(small_project))
    assert sorted(space.calls) == ["s0", "s1", "s2"]       # quota is not retried on the same engine
    assert sorted(counting.calls) == ["s0", "s1", "s2"]
    for clip in result.clips:
        assert clip.engine == "animatic"
        assert clip.attempts == ["space: QuotaExceeded", "animatic: generated"]


@pytest.mark.slow
def test_truncated_clips_are_invalid_retried_then_fall_back(small_project, counting):
    truncating = FaultyEngine("trunc", None, fail_times=-1, truncate=True)
    use_engine("trunc", truncating)
    set_engine(small_project, "trunc", fallback=["animatic"])
    result = render_project(str(small_project))
    assert len(truncating.calls) == 3 * 4                   # 1 try + 3 retries per scene
    assert all(c.attempts[0] == "trunc: InvalidClip" for c in result.clips)
    assert not any(k.startswith("clips/") and "trunc" in k for k in [c.key for c in result.clips])


@pytest.mark.slow
def test_exhausted_chain_fails_with_every_scene_named(small_project):
    use_engine("down", FaultyEngine("down", transient()))
    set_engine(small_project, "down")
    with pytest.raises(RenderFailed, match=r"3 of 3 scene\(s\) got no clip") as info:
        render_project(str(small_project))
    assert "scene 's1': HTTP 503" in str(info.value)
    with pytest.raises(RenderFailed, match=r"^6 of 6 take\(s\) of 3 scene\(s\) got no clip"):   # not '6 of 6 scene(s)'
        render_project(str(small_project), takes=2)


def test_engine_override_and_unknown_engine(small_project, counting):
    with pytest.raises(EngineInputError, match="unknown engine 'nope'; known engines: .*animatic"):
        render_project(str(small_project), engine="nope")
    assert counting.calls == []


@pytest.mark.slow
def test_mixed_footage_and_generated_scenes_stitch_to_the_profile(small_project, counting):
    clips = small_project / "clips"
    clips.mkdir()
    marked_clip(clips / "ovi.mp4", width=576, height=896, fps=24, seconds=2, audio_rate=16000, channels=1)
    marked_clip(clips / "square.mp4", width=960, height=960, fps=25, seconds=2)
    marked_clip(clips / "broll.mp4", width=720, height=720, fps=24, seconds=1, audio_rate=None)
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["scenes"] += [{"id": "ovi", "footage": "clips/ovi.mp4", "speech": "From Ovi."},
                       {"id": "square", "footage": "clips/square.mp4", "duration": 1.5},
                       {"id": "broll", "footage": "clips/broll.mp4"}]
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = render_project(str(small_project))
    info = probe(result.video, count_frames=True)
    frames = 3 * 18 + 24 + 18 + 12
    assert (info.width, info.height, info.fps, info.video_frames) == (160, 240, 12.0, frames)
    assert info.audio_duration == pytest.approx(frames / 12, abs=1 / 12)
    assert len(counting.calls) == 3
    assert [c.attempts for c in result.clips[3:]] == [["footage: stored"]] * 3
    assert (result.generated, result.reused) == (3, 0)         # footage is stored, not generated by an engine
    seeds = {cut.scene_id: [t.seed for t in cut.takes] for cut in result.scenes}
    from tasks.plan import default_seed

    assert seeds == {**{s: [default_seed(s)] for s in ("s0", "s1", "s2")}, "ovi": [None], "square": [None],
                     "broll": [None]}                               # footage has none


@pytest.mark.slow
def test_artifacts_storyboard_clips_progress_and_report(small_project, counting):
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    state = render_project(str(small_project), return_state=True)
    result = state.result()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    by_key = {a.key: a for a in found if a.key}
    table = by_key["render-small-clips"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert [r["scene"] for r in rows] == ["s0", "s1", "s2"]
    assert all(r["status"] == "generated" and r["engine"] == "animatic" for r in rows)
    assert [float(a.data) for a in found if a.type == "progress"] == [100.0]
    report = by_key["render-small-report"].data
    assert result.video in report and "![contact sheet](data:image/jpeg;base64," in report
    assert "Small — storyboard" in by_key["render-small-storyboard"].data


@pytest.mark.slow
def test_batch_renders_every_project_and_reports_failures(tmp_path, small_project, counting):
    from flows.render import render_batch

    broken = small_project.parent / "broken"
    broken.mkdir()
    (broken / "project.yaml").write_text("title: broken\nscenes: []\n")
    state = render_batch(str(small_project.parent), return_state=True)
    assert state.is_failed() and state.message == "1 of 2 production(s) failed: broken"   # not green: one failed
    outcomes = state.result(raise_on_failure=False)
    assert set(outcomes) == {"small", "broken"}
    assert outcomes["small"].endswith("final.mp4") and outcomes["broken"].startswith("FAILED")
    nothing = render_batch(str(tmp_path / "nope"), return_state=True)     # a typo in a scheduled batch's root
    assert nothing.is_failed() and nothing.message.endswith("nope: no production here (no */project.yaml under it)")


def test_a_steps_arguments_are_handed_over_not_walked_by_prefect():
    """Steps get values, never futures: Prefect is not let walk a step's arguments (the whole
    production and every plan, twice per step), and the task run is named from them."""
    from dataclasses import dataclass

    from prefect import flow

    from tasks.step import step

    @dataclass
    class Trap:
        slug: str

        def __getattribute__(self, name):
            if name == "__dataclass_fields__" and object.__getattribute__(self, "slug") == "armed":
                raise RuntimeError("walked")          # what Prefect's visit_collection reads first
            return object.__getattribute__(self, name)

    @step(task_run_name="trap-{spec.slug}")
    def take(spec: Trap, items: list) -> str:
        from prefect.runtime import task_run

        return f"{task_run.name} {len(items)}"

    @flow
    def run() -> str:
        return take(Trap("armed"), [Trap("armed")] * 3)

    assert run() == "trap-armed 3"
