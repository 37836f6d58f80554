"""Model families as data: detection, frame grids, params checked before anything loads."""

from __future__ import annotations

import json

import pytest

from engines import EngineInputError
from engines.families import FAMILIES, check_params, family_for, frames_for, pipeline_class


@pytest.mark.parametrize("cls,name,rule,multiple,fps,guidance,audio", [
    ("WanPipeline", "wan", "4k+1", 16, 16.0, 5.0, False),
    ("WanImageToVideoPipeline", "wan-i2v", "4k+1", 16, 16.0, 5.0, False),
    ("LTXPipeline", "ltx", "8k+1", 32, 25.0, 3.0, False),
    ("LTX2Pipeline", "ltx2", "8k+1", 32, 24.0, 3.0, True),
    ("LTX2ImageToVideoPipeline", "ltx2-i2v", "8k+1", 32, 24.0, 3.0, True),
    ("CogVideoXPipeline", "cogvideox", "4k+1", 16, 8.0, 6.0, False),
    ("HunyuanVideoPipeline", "hunyuan", "4k+1", 16, 24.0, 6.0, False),
])
def test_each_pipeline_class_has_its_rules(cls, name, rule, multiple, fps, guidance, audio):
    family = family_for(cls)
    assert (family.name, family.frame_rule, family.size_multiple, family.fps, family.guidance_scale, family.audio) == (
        name, rule, multiple, fps, guidance, audio)


def test_the_family_and_frame_rule_can_be_overridden():
    assert family_for("WanPipeline", {"family": "wan2.2-ti2v"}).size_multiple == 32
    assert family_for("LTX2Pipeline", {"frame_rule": "any"}).frame_step == 1
    with pytest.raises(EngineInputError, match="engine.params.family: unknown model family 'sora'"):
        family_for("WanPipeline", {"family": "sora"})
    with pytest.raises(EngineInputError, match="engine.params.frame_rule: '5k' is not a frame rule"):
        family_for("WanPipeline", {"frame_rule": "5k"})


@pytest.mark.parametrize("seconds,fps,rule,expected", [
    (2.25, 24, "8k+1", 57), (17 / 24, 24, "8k+1", 17), (1.0, 24, 8, 25), (5, 16, "4k+1", 81), (1, 10, "any", 10),
])
def test_frames_cover_the_clip_on_the_models_grid(seconds, fps, rule, expected):
    assert frames_for(seconds, fps, rule) == expected


@pytest.mark.parametrize("params,message", [
    ({"stg_scale": 1.0}, r"engine.params.stg_scale: not a parameter of the local engine for wan models"),
    ({"steps": "many"}, r"engine.params.steps: expected int, got 'many'"),
    ({"steps": True}, r"engine.params.steps: expected int, got True"),
    ({"guidance_scale": "high"}, r"engine.params.guidance_scale: expected number"),
    ({"width": 850}, r"engine.params.width: 850 is not a multiple of 16 .*try 848"),
    ({"fps": 0}, r"engine.params.fps: must be above 0"),
])
def test_bad_params_are_one_clear_line(params, message):
    with pytest.raises(EngineInputError, match=message):
        check_params(params, FAMILIES["wan"])


def test_family_extras_are_accepted_only_for_their_family():
    check_params({"stg_scale": 0.0, "audio_guidance_scale": 7, "height": 512, "width": 768}, FAMILIES["ltx2"])
    check_params({"guidance_scale_2": 3.0, "height": 480, "width": 832, "max_sequence_length": 16}, FAMILIES["wan"])
    with pytest.raises(EngineInputError, match="height: 500 is not a multiple of 32"):
        check_params({"height": 500}, FAMILIES["ltx2"])


def test_validate_reads_the_family_from_the_model_folder(tmp_path, monkeypatch):
    from engines.registry import check_params as check_engine_params

    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "LTX2Pipeline"}))
    assert pipeline_class(str(tmp_path)) == "LTX2Pipeline"
    check_engine_params("local", str(tmp_path), {"stg_scale": 0.5})
    with pytest.raises(EngineInputError, match="guidance_scale_2: not a parameter of the local engine for ltx2"):
        check_engine_params("local", str(tmp_path), {"guidance_scale_2": 1.0})


def test_reelflow_validate_checks_local_params_against_the_models_family(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from reelflow.cli import app

    model = tmp_path / "ltx2-model"
    model.mkdir()
    (model / "model_index.json").write_text(json.dumps({"_class_name": "LTX2Pipeline"}))
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    spec = {"title": "T", "engine": {"name": "local", "model": str(model),
                                     "params": {"height": 480, "width": 700, "stg_scale": 0.5}},
            "scenes": [{"id": "a", "action": "a driver waves", "duration": 1.0}]}
    (folder / "project.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2
    assert "engine.params.width" in result.output and "not a multiple of 32" in result.output
    assert "stg_scale" not in result.output                       # an LTX-2 param, accepted for LTX-2
    spec["engine"]["params"] = {"height": 512, "width": 768, "stg_scale": 0.5}
    (folder / "project.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
