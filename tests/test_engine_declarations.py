"""Engines declare what they need; the tasks read the declarations, never an engine's name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import engines
from engines import ClipRequest, registry
from engines.registry import EngineInfo
from reelflow.settings import reload_settings
from tasks.clip import price_of
from tasks.limits import limit_name
from tasks.models import ClipPlan
from tasks.speech import needs_audio

REPO = Path(__file__).resolve().parents[1]


def test_no_engine_name_outside_engines():
    pattern = re.compile(r"""'local'|"local"|hf-space|runpod|animatic""")
    hits = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
            for folder in ("tasks", "flows", "reelflow") for path in sorted((REPO / folder).rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def plan(engine: str, model: str | None = None, params: dict | None = None) -> ClipPlan:
    request = ClipRequest(scene_id="s", prompt="p", width=64, height=64, fps=12, duration=1.0)
    return ClipPlan(scene_id="s", index=0, project="p", kind="generate", key="clips/x.mp4", engine=engine,
                    model=model, engine_params=params or {}, request=request, duration=1.0)


@pytest.fixture
def gpu_engine():
    """A new engine added by registering it with its declaration: no task changes."""
    engines.register("my-gpu", lambda model=None, params=None: None,
                     EngineInfo(speech_audio="audio-driven", slot="gpu", concurrency=2, price=0.001, speed=7.0))
    yield "my-gpu"
    engines.unregister("my-gpu")


def test_a_new_engine_is_read_from_its_declaration(gpu_engine, monkeypatch):
    monkeypatch.setenv("REELFLOW_GPU", "1")
    reload_settings()
    assert limit_name(gpu_engine) == "gpu:1"
    assert registry.concurrency(gpu_engine) == 2
    assert price_of(gpu_engine) == 0.001 and registry.speed(gpu_engine) == 7.0
    assert needs_audio(plan(gpu_engine, "multitalk-14b"))
    assert not needs_audio(plan(gpu_engine, "ovi-1.1"))


def test_builtin_declarations_and_settings_overrides(monkeypatch):
    assert limit_name("local").startswith("gpu:") and limit_name("runpod") == "reelflow-engine-runpod"
    assert registry.concurrency("animatic") is None and registry.concurrency("hf-space") == 1
    assert price_of("runpod") == 0.00076 and price_of(None) == 0.0
    assert not needs_audio(plan("animatic", "multitalk"))
    assert needs_audio(plan("runpod", "multitalk"))
    monkeypatch.setenv("REELFLOW_PRICES", '{"runpod": 0.002}')
    monkeypatch.setenv("REELFLOW_ENGINE_CONCURRENCY", '{"runpod": 9, "animatic": 2}')
    reload_settings()
    assert price_of("runpod") == 0.002
    assert registry.concurrency("runpod") == 9 and registry.concurrency("animatic") == 2


def test_a_stand_in_keeps_the_builtin_declaration():
    engines.register("local", lambda model=None, params=None: None)
    try:
        assert registry.info("local").slot == "gpu"
    finally:
        engines.unregister("local")
    assert registry.info("local").params_check


@pytest.mark.slow
def test_the_default_model_is_part_of_the_clip_key_and_the_engine_instance(small_project, monkeypatch, tmp_path):
    """REELFLOW_LOCAL_MODEL names the model when a production names none: another folder is
    another model, so neither its clips nor its engine instance may be reused."""
    from projects import load_project
    from tasks.plan import plan_project

    keys = {}
    for name in ("model-a", "model-b"):
        monkeypatch.setenv("REELFLOW_LOCAL_MODEL", str(tmp_path / name))
        reload_settings()
        [plan, *_] = plan_project(load_project(small_project), engine="local")[0]
        assert plan.model == str(tmp_path / name) == registry.default_model("local")
        keys[name] = plan.key
        assert registry.get_engine("local").model == str(tmp_path / name)
    assert keys["model-a"] != keys["model-b"]
    assert registry.default_model("animatic") is None and registry.default_model("nope") is None


def test_a_second_voice_is_in_the_key_of_an_engine_that_speaks_only():
    """voice2 (the animatic speaks the second line in it) must not change the key of a clip an
    engine made from audio2 or from the prompt alone: a paid clip would be made again."""
    from engines.base import ClipRequest
    from tasks.plan import clip_key

    one = ClipRequest(scene_id="s", prompt="<S>Hi<E> <S>Ho<E>", width=64, height=64, fps=12, duration=1)
    two = one.model_copy(update={"voice2": "de"})
    assert clip_key(one, "runpod", "960x960_5s") == clip_key(two, "runpod", "960x960_5s")
    assert clip_key(one, "animatic", None) != clip_key(two, "animatic", None)


@pytest.mark.parametrize("engine", ["runpod", "hf-space"])
@pytest.mark.parametrize("steps", [0, -3, 1001, 10**9])
def test_a_remote_engine_s_step_count_is_checked_at_validate(engine, steps):
    """A remote job runs as many steps as it is sent, billing GPU time until its timeout."""
    from projects.checks import semantic_problems

    found = semantic_problems({"engine": {"name": engine, "params": {"sample_steps": steps}}, "scenes": []}, REPO)
    assert ((("engine", "params", "sample_steps"), f"must be a whole number from 1 to 1000 (got {steps!r})")
            in found), found


def test_a_remote_engine_s_usual_step_counts_pass():
    from engines.adapters import step_problems

    assert step_problems(None, {"sample_steps": 50, "sampling_steps": 1000, "seed": 10**9}) == []
