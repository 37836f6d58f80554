"""LTX-2 through the local engine: a tiny random LTX2Pipeline built offline, its own audio kept
where the model put it (a click made by the vocoder is found in the clip and the final video),
exact durations on and off its 8k+1 grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from engines import InvalidClip, get_engine
from media.probe import probe
from tests.engine_contract import request
from tests.media import audio_pcm, onsets
from tests.tiny_models import tiny_ltx2

# guidance off and no STG passes: the same pipeline code, a third of the CPU time
FAST = {"height": 32, "width": 32, "steps": 2, "max_sequence_length": 16, "negative_prompt": "",
        "guidance_scale": 1.0, "stg_scale": 0.0, "modality_scale": 1.0, "audio_guidance_scale": 1.0,
        "audio_stg_scale": 0.0, "audio_modality_scale": 1.0}
CLICK_AT = 0.5      # seconds into the model's audio
RATE = 24000        # the tiny vocoder's rate (LTX-2's)


@pytest.fixture(scope="session")
def ltx2(tmp_path_factory) -> Path:
    return tiny_ltx2(tmp_path_factory.mktemp("models") / "ltx2")


@pytest.fixture
def clicking_vocoder(monkeypatch):
    """The vocoder's output replaced by silence with a 2 ms click at CLICK_AT: deterministic audio
    whose position we know, made inside the pipeline where LTX-2's audio is made."""
    import torch
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    original = LTX2Vocoder.forward

    def forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        click = torch.zeros_like(out)
        start = round(CLICK_AT * self.config.output_sampling_rate)
        click[..., start:start + 48] = 0.9
        return click

    monkeypatch.setattr(LTX2Vocoder, "forward", forward)


def click_time(path: str) -> tuple[float, int]:
    pcm, rate = audio_pcm(Path(path))
    found = onsets(np.abs(pcm), 0.3)
    assert found, "no click in the audio"
    return min(found) / rate, rate


@pytest.mark.parametrize("seconds", [17 / 24, 1.0])          # 17 frames is on the 8k+1 grid, 24 is not
def test_model_audio_stays_where_the_model_put_it(ltx2, clicking_vocoder, tmp_path, seconds):
    result = get_engine("local", str(ltx2), FAST).generate(request(duration=seconds, image=None), tmp_path)
    info = probe(result.path, count_frames=True)
    assert result.meta["family"] == "ltx2" and result.meta["audio"] == "model"
    assert info.video_frames == round(seconds * 24) and info.fps == 24.0
    assert info.video_duration == pytest.approx(seconds, abs=1e-3)
    assert info.audio_rate == RATE and info.audio_channels == 2                     # its rate kept
    assert info.audio_duration == pytest.approx(seconds, abs=1 / RATE * 1024)
    at, _ = click_time(result.path)
    assert at == pytest.approx(CLICK_AT, abs=1024 / RATE)                        # within one AAC frame


def test_frames_on_the_models_grid_and_its_defaults(ltx2):
    engine = get_engine("local", str(ltx2), FAST)
    pipe = engine.pipeline()
    kwargs = engine.call_kwargs(request(duration=2.25, image=None), pipe)
    assert kwargs["num_frames"] == 57 and kwargs["frame_rate"] == 24.0           # 54 needed -> 8*7+1
    assert kwargs["stg_scale"] == 0.0 and "image" not in kwargs
    defaults = get_engine("local", str(ltx2), {"max_sequence_length": 16}).call_kwargs(request(image=None), pipe)
    assert (defaults["guidance_scale"], defaults["num_inference_steps"]) == (3.0, 30)      # LTX-2's own
    assert (defaults["height"], defaults["width"]) == (512, 768)


def test_a_clip_shorter_than_asked_is_invalid(ltx2, tmp_path):
    # frame_rule "any" asks LTX-2 for 24 frames; it makes 17 (its 8k+1 grid): not a silent short clip
    engine = get_engine("local", str(ltx2), {**FAST, "frame_rule": "any"})
    with pytest.raises(InvalidClip, match="returned 17 frames, the clip needs 24"):
        engine.generate(request(duration=1.0, image=None), tmp_path)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_ltx2_renders_through_the_cli_in_sync(ltx2, clicking_vocoder, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from reelflow.cli import app
    from reelflow.settings import reload_settings

    folder = tmp_path / "projects" / "ltx"
    folder.mkdir(parents=True)
    durations = [17 / 24, 1.0]                   # on and off the 8k+1 grid
    (folder / "project.yaml").write_text(yaml.safe_dump({
        "title": "LTX-2 sync", "output": {"width": 64, "height": 64, "fps": 24},
        "scenes": [{"id": f"s{i}", "action": "a driver waves", "atmosphere": "crowd cheering", "duration": d}
                   for i, d in enumerate(durations)]}))
    monkeypatch.setenv("REELFLOW_LOCAL_MODEL", str(ltx2))
    monkeypatch.setenv("REELFLOW_LOCAL_PARAMS", json.dumps(FAST))
    reload_settings()
    result = CliRunner().invoke(app, ["render", str(folder), "--engine", "local", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    final = result.output.strip().splitlines()[-1]
    info = probe(final, count_frames=True)
    assert info.video_frames == 17 + 24
    pcm, rate = audio_pcm(Path(final))
    crossings = [i / rate for i in sorted(onsets(np.abs(pcm) / np.abs(pcm).max(), 0.3))]
    clicks = [t for n, t in enumerate(crossings) if n == 0 or t - crossings[n - 1] > 0.1]   # first of each click
    starts = [0.0, durations[0]]
    assert len(clicks) == 2, clicks
    for start, at in zip(starts, sorted(clicks)):
        assert at == pytest.approx(start + CLICK_AT, abs=1024 / rate)


@pytest.mark.slow
def test_ltx2_image_to_video_uses_the_scene_image_and_keeps_its_audio(tmp_path_factory, tmp_path):
    from engines import EngineInputError

    model = tiny_ltx2(tmp_path_factory.mktemp("models") / "ltx2-i2v", image_to_video=True)
    engine = get_engine("local", str(model), FAST)
    assert "image" in engine.call_kwargs(request(duration=1.0), engine.pipeline())
    result = engine.generate(request(duration=1.0), tmp_path)
    info = probe(result.path, count_frames=True)
    assert result.meta["family"] == "ltx2-i2v" and result.meta["audio"] == "model"
    assert (info.video_frames, info.audio_rate) == (24, RATE)
    with pytest.raises(EngineInputError, match="image-to-video model; the scene needs a character image"):
        engine.generate(request(duration=1.0, image=None), tmp_path / "x")
