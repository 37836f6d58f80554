"""The local diffusers engine on CPU, with tiny random-weight Wan pipelines built offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines import EngineInputError, get_engine
from engines.diffusers_local import DiffusersEngine, frames_for
from media.probe import probe
from tests.engine_contract import EngineContract, request
from tests.media import audio_pcm
from tests.tiny_models import tiny_wan_i2v, tiny_wan_t2v

TINY = {"height": 32, "width": 32, "steps": 2, "max_sequence_length": 16, "negative_prompt": "", "fps": 16}


@pytest.fixture(scope="session")
def wan_t2v(tmp_path_factory) -> Path:
    return tiny_wan_t2v(tmp_path_factory.mktemp("models") / "wan-t2v")


@pytest.fixture(scope="session")
def wan_i2v(tmp_path_factory) -> Path:
    return tiny_wan_i2v(tmp_path_factory.mktemp("models") / "wan-i2v")


class TestLocalContract(EngineContract):
    @pytest.fixture
    def engine(self, wan_t2v):
        return get_engine("local", str(wan_t2v), TINY)

    @pytest.fixture
    def bad_call(self, tmp_path):
        return lambda out: DiffusersEngine(str(tmp_path / "no-such-model"), TINY).generate(request(), out)


@pytest.mark.parametrize("seconds,fps,rule,expected", [
    (5, 16, "4k+1", 81), (2, 16, "4k+1", 33), (2.1, 16, "4k+1", 37), (5, 24, "8k+1", 121), (1, 10, "any", 10),
])
def test_frame_count_follows_the_model_rule(seconds, fps, rule, expected):
    assert frames_for(seconds, fps, rule) == expected


def test_t2v_clip_has_the_native_size_exact_duration_and_speech(wan_t2v, tmp_path):
    result = get_engine("local", str(wan_t2v), TINY).generate(request(duration=3.0), tmp_path)
    info = probe(result.path, count_frames=True)
    assert (info.width, info.height, info.fps, info.video_frames) == (32, 32, 16.0, 48)
    assert result.meta["frames"] == 49                       # 4k+1 generated, trimmed to 3.0 s
    assert info.audio_duration == pytest.approx(3.0, abs=0.001)
    pcm, _ = audio_pcm(Path(result.path))
    assert np.sqrt((pcm ** 2).mean()) > 0.01                # the <S> line is spoken by TTS


def test_ovi_tokens_never_reach_the_video_model(wan_t2v):
    engine = get_engine("local", str(wan_t2v), TINY)
    kwargs = engine.call_kwargs(request(), engine.pipeline())
    assert kwargs["prompt"] == "Max waves. Max says"
    assert "<S>" not in kwargs["prompt"] and "AUDCAP" not in kwargs["prompt"]
    assert (kwargs["num_frames"], kwargs["height"], kwargs["width"]) == (33, 32, 32)


def test_i2v_uses_the_scene_image(wan_i2v, tmp_path):
    engine = get_engine("local", str(wan_i2v), TINY)
    assert "image" in engine.call_kwargs(request(), engine.pipeline())
    result = engine.generate(request(), tmp_path)
    assert probe(result.path, count_frames=True).video_frames == 32
    with pytest.raises(EngineInputError, match="image-to-video model; the scene needs a character image"):
        engine.generate(request(image=None), tmp_path / "x")


def test_i2v_variant_is_used_only_when_the_scene_has_an_image(wan_t2v, wan_i2v):
    engine = get_engine("local", str(wan_t2v), {**TINY, "i2v_model": str(wan_i2v)})
    assert type(engine.pipeline(i2v=True)).__name__ == "WanImageToVideoPipeline"
    assert type(engine.pipeline()).__name__ == "WanPipeline"


def test_the_pipeline_is_loaded_once_per_process(wan_t2v):
    a = get_engine("local", str(wan_t2v), TINY)
    b = DiffusersEngine(str(wan_t2v), TINY)
    assert a.pipeline() is b.pipeline()


def test_a_model_is_required(monkeypatch):
    monkeypatch.delenv("REELFLOW_LOCAL_MODEL", raising=False)
    with pytest.raises(EngineInputError, match="REELFLOW_LOCAL_MODEL"):
        DiffusersEngine()


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.slow
def test_demo_renders_with_engine_local(demo_copy, wan_t2v, monkeypatch, tmp_path):
    import json

    from typer.testing import CliRunner

    from reelflow.cli import app
    from reelflow.settings import reload_settings

    monkeypatch.setenv("REELFLOW_LOCAL_MODEL", str(wan_t2v))
    monkeypatch.setenv("REELFLOW_LOCAL_PARAMS", json.dumps(TINY))
    reload_settings()
    result = CliRunner().invoke(app, ["render", str(demo_copy), "--engine", "local", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    info = probe(result.output.strip().splitlines()[-1], count_frames=True)
    assert (info.width, info.height, info.fps, info.video_frames) == (576, 896, 24.0, 720)
    assert (info.audio_codec, info.audio_rate) == ("aac", 48000)


def test_the_worker_serves_the_local_engine(wan_t2v, monkeypatch):
    import json

    from engines.runpod_worker import handler
    from reelflow.settings import reload_settings

    monkeypatch.setenv("REELFLOW_WORKER_ENGINE", "local")
    monkeypatch.setenv("REELFLOW_WORKER_MODEL", str(wan_t2v))
    monkeypatch.setenv("REELFLOW_LOCAL_PARAMS", json.dumps(TINY))
    reload_settings()
    out = handler({"id": "job-local", "input": {"prompt": "A driver waves. <S>Hi<E> Audio: wind", "model": "720x720_5s"}})
    assert "error" not in out, out
    assert out["data"][0]["b64_json"] and out["usage"]["duration_seconds"] == 5.0


def test_a_failing_pipeline_is_a_typed_error_and_the_engine_recovers(wan_t2v, tmp_path, monkeypatch):
    engine = DiffusersEngine(str(wan_t2v), TINY)
    pipe = engine.pipeline()

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch in the transformer")

    with monkeypatch.context() as patch:
        patch.setattr(pipe.transformer, "forward", broken)
        with pytest.raises(Exception) as info:
            engine.generate(request(), tmp_path / "bad")
    assert type(info.value).__module__ == "engines.errors"
    assert "shape mismatch" in str(info.value)
    assert get_engine("local", str(wan_t2v), TINY).generate(request(), tmp_path / "ok").path


def test_the_clips_budget_stops_the_denoising_loop(wan_t2v, tmp_path, monkeypatch):
    import time

    from engines import TransientEngineError

    engine = DiffusersEngine(str(wan_t2v), {**TINY, "steps": 1000})
    pipe = engine.pipeline()
    steps = []
    forward = pipe.transformer.forward

    deadline = time.time() + 10             # room for the set-up before step 1 on a busy machine

    def counted(*args, **kwargs):
        steps.append(1)
        if len(steps) == 3:                 # the budget runs out during the second step (cfg: two passes a step)
            time.sleep(max(0.0, deadline - time.time()) + 0.1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", counted)
    started = time.monotonic()
    with pytest.raises(TransientEngineError, match=r"'win': the clip's time budget .* ran out after denoising step 2;"):
        engine.generate(request(duration=0.5, deadline=deadline), tmp_path)
    assert len(steps) == 4 and time.monotonic() - started < 30          # two steps of 1000


def test_a_spent_budget_never_starts_the_pipeline(wan_t2v, tmp_path):
    import time

    from engines import TransientEngineError

    with pytest.raises(TransientEngineError, match="time budget .* ran out before the pipeline started"):
        DiffusersEngine(str(wan_t2v), TINY).generate(request(deadline=time.time() - 1), tmp_path)


def test_a_size_off_the_models_multiple_is_a_clear_input_error(wan_t2v, tmp_path):
    engine = DiffusersEngine(str(wan_t2v), {**TINY, "height": 30})   # the VAE's 8x times the 2x2 patches: 16
    with pytest.raises(EngineInputError, match=r"engine.params.height: 30 is not a multiple of 16 .* try 32"):
        engine.generate(request(), tmp_path)
