"""Every engine setting that makes a clip is in the clip's key; unset settings leave keys as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from projects import load_project
from tasks.plan import plan_project

DEMO = Path(__file__).resolve().parents[1] / "projects" / "demo"

SETTINGS = ("REELFLOW_LOCAL_PARAMS", "REELFLOW_HF_SPACE", "REELFLOW_RUNPOD_ENDPOINT")


@pytest.fixture
def no_engine_settings(monkeypatch, tmp_path):
    for variable in SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    monkeypatch.setenv("REELFLOW_LOCAL_MODEL", str(model))
    return monkeypatch


def first_plan(engine: str):
    return plan_project(load_project(DEMO), engine=engine)[0][0]


@pytest.mark.parametrize("engine,variable,one,other,param", [
    ("local", "REELFLOW_LOCAL_PARAMS", '{"steps": 10}', '{"steps": 50}', ("steps", 50)),
    ("hf-space", "REELFLOW_HF_SPACE", "a/B", "c/D", ("space", "c/D")),
    ("runpod", "REELFLOW_RUNPOD_ENDPOINT", "abc", "xyz", ("endpoint", "xyz")),
])
def test_a_changed_engine_setting_is_a_new_clip(no_engine_settings, engine, variable, one, other, param):
    """A setting the engine merges into its params made the same key: the old clip was reused
    and an unchanged render served the video made with the old setting."""
    no_engine_settings.setenv(variable, one)
    before = first_plan(engine)
    no_engine_settings.setenv(variable, other)
    after = first_plan(engine)
    assert before.key != after.key
    name, value = param            # the engine is handed exactly the params its key names
    assert after.engine_params == after.request.params and after.engine_params[name] == value


def test_a_production_s_own_param_wins_over_the_setting(no_engine_settings):
    from engines import registry

    no_engine_settings.setenv("REELFLOW_LOCAL_PARAMS", '{"steps": 10, "height": 480}')
    assert registry.effective_params("local", {"steps": 20}) == {"steps": 20, "height": 480}
    no_engine_settings.setenv("REELFLOW_HF_SPACE", "a/B")
    assert registry.effective_params("hf-space", {"space": "c/D"}) == {"space": "c/D"}
    assert registry.effective_params("animatic", {}) == {}            # declares no settings
    plan = plan_project(load_project(DEMO))[0][0]
    assert plan.engine == "animatic" and plan.engine_params == {}


# Keys of projects/demo's first scene with none of SETTINGS set: stores made before these
# settings joined the key must stay valid. (Pinned after default seeds came from scene ids.)
PINNED = {
    "animatic": "clips/061cd42c430542f3777b9762ca2724f5bbfeb924875296fdb19b342d05e7393e.mp4",
    "hf-space": "clips/7e3801d7a9a146f83801d8ed9ffbd8d7c5099b9468add56c5c3e53c257bef7b4.mp4",
    "runpod": "clips/b3a2c52eb652f073c04cbd1f4bd7dd3945274cf2eabec9d1ab43b219315d1927.mp4",
}


@pytest.mark.parametrize("engine", sorted(PINNED))
def test_unset_settings_keep_the_keys(no_engine_settings, engine):
    assert first_plan(engine).key == PINNED[engine]
    no_engine_settings.setenv("REELFLOW_HF_SPACE", "alexnasa/Ovi-ZEROGPU")    # the default, said out loud
    no_engine_settings.setenv("REELFLOW_LOCAL_PARAMS", "{}")
    assert first_plan(engine).key == PINNED[engine]


def test_unset_local_params_keep_the_key(no_engine_settings):
    from tasks.plan import clip_key

    plan = first_plan("local")
    assert plan.engine_params == {} and plan.key == clip_key(plan.request, "local", plan.model)


def test_no_secret_goes_into_a_plan(no_engine_settings):
    no_engine_settings.setenv("HF_TOKEN", "hf_Zq81tokenValue")
    no_engine_settings.setenv("RUNPOD_API_KEY", "rp_Zq82keyValue")
    no_engine_settings.setenv("REELFLOW_HF_SPACE", "a/B")
    no_engine_settings.setenv("REELFLOW_RUNPOD_ENDPOINT", "abc")
    for engine in ("hf-space", "runpod", "local"):
        text = first_plan(engine).model_dump_json()
        assert "Zq8" not in text, text
