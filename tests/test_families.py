"""Model families as data: detection, frame grids, params checked before anything loads."""

from __future__ import annotations

import json

import pytest

from engines import EngineInputError
from engines.families import FAMILIES, check_params, family_for, frames_for, pipeline_class, problems


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


@pytest.mark.parametrize("params,message", [
    ({"steps": 0}, r"engine.params.steps: must be from 1 to 1000, got 0"),
    ({"steps": -3}, r"engine.params.steps: must be from 1 to 1000"),
    ({"steps": 100000}, r"engine.params.steps: must be from 1 to 1000, got 100000"),
    ({"steps": 10**9}, r"engine.params.steps: must be from 1 to 1000"),
    ({"max_sequence_length": 100000000}, r"engine.params.max_sequence_length: must be from 1 to 4096"),
    ({"max_sequence_length": -1}, r"engine.params.max_sequence_length: must be from 1 to 4096"),
    ({"height": -16}, r"engine.params.height: must be from 1 to 4096"),
    ({"width": 10**6}, r"engine.params.width: must be from 1 to 4096"),
    ({"frame_rule": "99999999999k+1"}, r"engine.params.frame_rule: '99999999999k\+1' is not a frame rule"),
    ({"frame_rule": "65k+1"}, r"engine.params.frame_rule: .* a step from 1 to 64"),
    ({"frame_rule": "²k+1"}, r"engine.params.frame_rule: '²k\+1' is not a frame rule"),   # isdigit, not int()
    ({"fps": float("inf")}, r"engine.params.fps: must be a finite number, got inf"),
    ({"fps": float("nan")}, r"engine.params.fps: must be a finite number, got nan"),
    ({"fps": 1e9}, r"engine.params.fps: must be above 0 and at most 120"),
    ({"guidance_scale": float("-inf")}, r"engine.params.guidance_scale: must be a finite number"),
    ({"guidance_scale_2": float("nan")}, r"engine.params.guidance_scale_2: must be a finite number"),
])
def test_numbers_are_finite_and_in_range(params, message):
    with pytest.raises(EngineInputError, match=message):
        check_params(params, FAMILIES["wan"])


def test_the_limits_leave_every_familys_defaults_and_the_ends_of_the_ranges_valid():
    for family in FAMILIES.values():
        check_params({"steps": family.steps, "height": family.height, "width": family.width, "fps": family.fps,
                      "frame_rule": family.frame_rule}, family)
    check_params({"steps": 1, "max_sequence_length": 4096, "frame_rule": "64k+1", "fps": 120}, FAMILIES["wan"])
    check_params({"steps": 1000, "max_sequence_length": 1, "height": 4096, "width": 16}, FAMILIES["wan"])


def test_a_wrong_type_for_a_number_says_a_number():
    from engines.params import check_params as check_engine_params

    for name in ("fps", "guidance_scale", "guidance_scale_2"):
        assert check_engine_params("local", {name: "fast"}) == [(name, "must be a number, not str")]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge", "folder"])
def test_a_model_index_that_is_not_a_small_regular_file_is_one_line(tmp_path, kind):
    import os
    import time

    from engines.diffusers_local import DiffusersEngine

    index = tmp_path / "model_index.json"
    if kind == "fifo":
        os.mkfifo(index)                   # reading it would block validate forever
    elif kind == "dev-zero":
        index.symlink_to("/dev/zero")      # reading it would never end
    elif kind == "huge":
        index.write_text(json.dumps({"_class_name": "WanPipeline", "pad": "x" * (2 << 20)}))
    else:
        index.mkdir()
    started = time.monotonic()
    found = DiffusersEngine.param_problems(str(tmp_path), {"steps": 2})
    assert time.monotonic() - started < 5
    assert len(found) == 1 and found[0][0] == "model", found
    assert "model_index.json" in found[0][1]
    assert "regular file" in found[0][1] or "larger than" in found[0][1]
    with pytest.raises(EngineInputError, match=r"^engine.model: .*model_index.json"):
        pipeline_class(str(tmp_path))


def test_a_missing_or_unreadable_index_still_falls_back_to_the_params(tmp_path):
    assert pipeline_class(str(tmp_path)) is None                       # no model_index.json
    assert pipeline_class(str(tmp_path / "no-such-folder")) is None
    assert pipeline_class("org/hub-model") is None
    (tmp_path / "model_index.json").write_text("{not json")
    assert pipeline_class(str(tmp_path)) is None


@pytest.mark.parametrize("params,where,message", [
    ("{steps: 100000}", "engine.params.steps", "must be from 1 to 1000"),
    ("{max_sequence_length: 100000000}", "engine.params.max_sequence_length", "must be from 1 to 4096"),
    ("{frame_rule: 99999999999k+1}", "engine.params.frame_rule", "'99999999999k+1' is not a frame rule"),
    ("{fps: .inf}", "engine.params.fps", "must be a finite number"),
    ("{fps: .nan}", "engine.params.fps", "must be a finite number"),
    ("{fps: fast}", "engine.params.fps", "must be a number, not str"),
])
def test_reelflow_validate_refuses_out_of_range_local_params_with_one_line(tmp_path, params, where, message):
    from typer.testing import CliRunner

    from reelflow.cli import app

    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    (folder / "project.yaml").write_text(
        "title: T\n"
        f"engine: {{name: local, model: {tmp_path / 'no-model'}, params: {params}}}\n"
        "scenes:\n  - {id: a, action: a driver waves, duration: 1.0}\n")
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2, result.output
    # (not the file's path: in the whole suite a secret registered by another test can share
    # 8 characters with the temporary folder's name, and redaction then hides the path)
    assert f"{where}: {message}" in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "<class" not in result.output


def test_reelflow_validate_does_not_hang_on_a_fifo_model_index(tmp_path):
    import os

    from typer.testing import CliRunner

    from reelflow.cli import app

    model = tmp_path / "model"
    model.mkdir()
    os.mkfifo(model / "model_index.json")
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    (folder / "project.yaml").write_text(
        f"title: T\nengine: {{name: local, model: {model}, params: {{steps: 2}}}}\n"
        "scenes:\n  - {id: a, action: a driver waves, duration: 1.0}\n")
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2, result.output
    assert "engine.model:" in result.output and "not a regular file" in result.output, result.output


@pytest.mark.parametrize("written", ["engine: {name: local, model: MODEL}",
                                     "engine: {name: animatic}\nscenes_engine: {name: local, model: MODEL}"])
def test_validate_checks_the_local_model_whether_or_not_params_are_written(tmp_path, written):
    """`params:` left out skipped every model and param check, so validate said OK and the
    render failed (exit 1); a scene's own engine is checked the same way."""
    import os

    from typer.testing import CliRunner

    from reelflow.cli import app

    model = tmp_path / "model"
    model.mkdir()
    os.mkfifo(model / "model_index.json")
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    top, _, scene_engine = written.replace("MODEL", str(model)).partition("\nscenes_engine: ")
    scene = "{id: a, action: a driver waves, duration: 1.0" + (f", engine: {scene_engine}" if scene_engine else "") + "}"
    (folder / "project.yaml").write_text(f"title: T\n{top}\nscenes:\n  - {scene}\n")
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2, result.output
    assert "engine.model:" in result.output and "not a regular file" in result.output, result.output


def test_validate_checks_reelflow_local_params_as_the_engine_merges_them(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from reelflow.cli import app
    from reelflow.settings import reload_settings

    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    (folder / "project.yaml").write_text(
        f"title: T\nengine: {{name: local, model: {model}}}\nscenes:\n  - {{id: a, action: waves, duration: 1.0}}\n")
    assert CliRunner().invoke(app, ["validate", str(folder)]).exit_code == 0
    monkeypatch.setenv("REELFLOW_LOCAL_PARAMS", json.dumps({"height": 100}))
    reload_settings()
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2, result.output
    assert "REELFLOW_LOCAL_PARAMS: height: 100 is not a multiple of 16" in result.output, result.output
    assert "engine.params.height" not in result.output        # the value is not the production's


def _local_production(tmp_path, params: str = "", scenes: int = 1):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    engine = f"{{name: local, model: {model}{', params: ' + params if params else ''}}}"
    lines = "".join(f"  - {{id: s{i}, action: waves, duration: 1.0, engine: {engine}}}\n" for i in range(scenes))
    (folder / "project.yaml").write_text(f"title: T\nengine: {engine}\nscenes:\n{lines}")
    return folder


def test_validate_names_reelflow_local_params_for_a_bad_value_from_it_and_says_every_problem(tmp_path, monkeypatch):
    """A bad REELFLOW_LOCAL_PARAMS value was blamed on project.yaml, and a second problem only
    showed after the first was fixed."""
    from typer.testing import CliRunner

    from reelflow.cli import app
    from reelflow.settings import reload_settings

    folder = _local_production(tmp_path, params="{guidance_scale: 5.0}", scenes=2)
    monkeypatch.setenv("REELFLOW_LOCAL_PARAMS", json.dumps({"steps": "x", "height": 481}))
    reload_settings()
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2, result.output           # once each, not once per engine that merges them
    assert lines[0].startswith("REELFLOW_LOCAL_PARAMS: steps: must be an integer, not str (checked for "), lines
    assert lines[1].startswith("REELFLOW_LOCAL_PARAMS: height: 481 is not a multiple of 16"), lines
    assert all(line.endswith("project.yaml:2: engine)") for line in lines), lines


def test_validate_says_every_param_problem_of_the_production_in_one_pass(tmp_path):
    from typer.testing import CliRunner

    from reelflow.cli import app

    folder = _local_production(tmp_path, params="{steps: x, height: 481, frame_rule: 99k+1, fps: 1000}")
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2, result.output
    for field, message in [("steps", "must be an integer, not str"), ("height", "481 is not a multiple of 16"),
                           ("frame_rule", "'99k+1' is not a frame rule"), ("fps", "must be above 0 and at most 120")]:
        assert f"project.yaml:2: engine.params.{field}: {message}" in result.output, result.output


def test_a_production_s_param_over_reelflow_local_params_is_the_production_s(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from reelflow.cli import app
    from reelflow.settings import reload_settings

    folder = _local_production(tmp_path, params="{height: 100}")
    monkeypatch.setenv("REELFLOW_LOCAL_PARAMS", json.dumps({"height": 480}))
    reload_settings()
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2 and "project.yaml:2: engine.params.height: 100 is not" in result.output, result.output
    assert "REELFLOW_LOCAL_PARAMS" not in result.output


def test_the_family_s_rules_say_every_problem():
    assert [name for name, _ in problems({"steps": "x", "height": 481, "fps": 1e9}, FAMILIES["wan"])] == \
        ["steps", "height", "fps"]
