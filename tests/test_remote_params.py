"""A production names its remote engine's endpoint and Space: untrusted input. An endpoint id is
one segment of the URL the user's RunPod key is sent to; a Space link must be one reelflow
follows; the user's Hugging Face token goes to Hugging Face only; a job's timeout is positive."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from engines import EngineInputError
from reelflow.cli import app


def set_engine(folder, engine: dict) -> None:
    spec = yaml.safe_load((folder / "project.yaml").read_text())
    spec["engine"] = engine
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.mark.parametrize("engine, field", [
    ({"name": "runpod", "model": "720x720_5s", "params": {"endpoint": "victim/purge-queue#"}}, "endpoint"),
    ({"name": "runpod", "model": "720x720_5s", "params": {"endpoint": "../../x"}}, "endpoint"),
    ({"name": "runpod", "model": "720x720_5s", "params": {"endpoint": "abc123", "timeout": -5}}, "timeout"),
    ({"name": "runpod", "model": "720x720_5s", "params": {"endpoint": "abc123", "timeout": 0}}, "timeout"),
    ({"name": "hf-space", "params": {"space": "http://203.0.113.9:8080/"}}, "space"),
    ({"name": "hf-space", "params": {"space": "file:///etc/passwd"}}, "space"),
    ({"name": "hf-space", "params": {"space": "not a space"}}, "space"),
    ({"name": "hf-space", "params": {"timeout": float("nan")}}, "timeout"),
], ids=["route", "dotdot", "negative-timeout", "zero-timeout", "plain-http", "file", "junk", "nan-timeout"])
def test_validate_refuses_an_endpoint_space_or_timeout_that_is_not_one(small_project, engine, field):
    set_engine(small_project, engine)
    result = CliRunner().invoke(app, ["validate", str(small_project)])
    assert result.exit_code == 2, result.output
    assert f"project.yaml:" in result.output and f"engine.params.{field}:" in result.output, result.output


def test_valid_endpoints_and_spaces_pass(small_project):
    set_engine(small_project, {"name": "runpod", "model": "720x720_5s", "params": {"endpoint": "ab12-cd_34"}})
    assert CliRunner().invoke(app, ["validate", str(small_project)]).exit_code == 0
    for space in ("alexnasa/Ovi-ZEROGPU", "https://someone-ovi.hf.space/", "http://127.0.0.1:7860/"):
        set_engine(small_project, {"name": "hf-space", "params": {"space": space}})
        result = CliRunner().invoke(app, ["validate", str(small_project)])
        assert result.exit_code == 0, (space, result.output)


def test_an_endpoint_from_the_environment_is_checked_too(monkeypatch):
    from engines.runpod_endpoint import RunPodEngine

    monkeypatch.setenv("REELFLOW_RUNPOD_ENDPOINT", "x/../../run")
    with pytest.raises(EngineInputError, match="engine.params.endpoint: not a RunPod endpoint id"):
        RunPodEngine()


@pytest.mark.parametrize("space, sent", [
    ("alexnasa/Ovi-ZEROGPU", True),
    ("https://alexnasa-ovi-zerogpu.hf.space/", True),
    ("https://huggingface.co/spaces/alexnasa/Ovi-ZEROGPU", True),
    ("http://127.0.0.1:7860/", False),                  # a production's own server
    ("https://evil.example/", False),
    ("https://hf.space.evil.example/", False),
])
def test_the_hugging_face_token_goes_to_hugging_face_only(monkeypatch, space, sent):
    import gradio_client

    from engines import hf_space

    seen = {}

    class Recorder:
        def __init__(self, src, token=None, **kwargs):
            seen["token"] = token

    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_0123456789abcdef")
    monkeypatch.setattr(gradio_client, "Client", Recorder)
    monkeypatch.setattr(hf_space, "_CLIENTS", {})
    hf_space.HFSpaceEngine(params={"space": space}).client()
    assert (seen["token"] == "hf_secret_token_0123456789abcdef") == sent
