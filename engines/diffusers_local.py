"""The ``local`` engine: a diffusers pipeline on this machine (extra ``reelflow[local]``).

The model is a folder made by ``save_pretrained`` (or a hub id when the machine is
online), loaded once per process and kept. Text-to-video; image-to-video when the scene
has an image and ``params.i2v_model`` names an i2v pipeline (or the model itself is one).
Pipelines that return audio (LTX-2's ``LTX2Pipeline``) give the clip its sound; for
video-only pipelines (Wan, LTX-Video, CogVideoX, HunyuanVideo) the speech comes from the
offline TTS and the ambience from an optional diffusers audio pipeline
(``params.audio_model``: AudioLDM2, Stable Audio) or a quiet bed. Ovi's tokens never reach
the video model: ``prompts.parse_prompt`` splits them into picture, speech and ambience.

Params: ``height``, ``width`` (the model's native size; default 480x832), ``fps`` (16),
``frame_rule`` (``4k+1`` for Wan and LTX, ``8k+1``, ``any``), ``steps`` (30),
``guidance_scale`` (5.0), ``negative_prompt``, ``dtype`` (bfloat16 on GPU, float32 on CPU),
``device`` (cuda if present), ``cpu_offload``, ``vae_tiling``, ``vae_slicing``, ``compile``.
One clip at a time per process (and per GPU through the Prefect limit ``gpu:<index>``);
GPU memory is released after an error.
"""

from __future__ import annotations

import gc
import inspect
import threading
import time
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

from engines.base import ClipRequest, ClipResult
from engines.errors import EngineError, EngineInputError, TransientEngineError
from media import ffmpeg, tts
from media.soundtrack import AUDIO_RATE, ENCODE_ARGS, soundtrack_args, speak_to_fit
from prompts import parse_prompt

_PIPELINES: dict[tuple, Any] = {}
_LOAD_LOCK = threading.Lock()
_GPU_LOCK = threading.Lock()     # one clip at a time in this process


def frames_for(seconds: float, fps: float, rule: str = "4k+1") -> int:
    """Frames to generate for ``seconds`` at ``fps`` under the model's rule (Wan: 4k+1)."""
    needed = max(1, round(seconds * fps))
    if rule == "any":
        return needed
    step = int(rule.split("k")[0])
    k = -(-(needed - 1) // step)          # ceil: generate at least what is needed, trim later
    return step * k + 1


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise EngineInputError("the local engine needs torch and diffusers: pip install 'reelflow[local]'") from exc
    return torch


def load_pipeline(model: str, device: str, dtype_name: str, options: dict) -> Any:
    """Load (once per process) the diffusers pipeline at ``model`` onto ``device``."""
    key = (model, device, dtype_name, tuple(sorted((k, str(v)) for k, v in options.items())))
    with _LOAD_LOCK:
        if key in _PIPELINES:
            return _PIPELINES[key]
        torch = _torch()
        from diffusers import DiffusionPipeline

        dtype = getattr(torch, dtype_name, None)
        if not isinstance(dtype, torch.dtype):
            raise EngineInputError(f"unknown dtype {dtype_name!r} (float32, float16, bfloat16)")
        local = Path(model).expanduser()
        if not local.exists() and "/" not in model:
            raise EngineInputError(f"model folder {model} not found (a save_pretrained folder or a hub id)")
        try:
            pipe = DiffusionPipeline.from_pretrained(str(local) if local.exists() else model, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise EngineInputError(f"cannot load a diffusers pipeline from {model}: {exc}") from exc
        if options.get("cpu_offload") and device.startswith("cuda"):
            pipe.enable_model_cpu_offload(gpu_id=int(device.partition(":")[2] or 0))
        else:
            pipe.to(device)
        vae = getattr(pipe, "vae", None)
        if options.get("vae_tiling") and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
        if options.get("vae_slicing") and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()
        if options.get("compile") and hasattr(pipe, "transformer"):
            pipe.transformer = torch.compile(pipe.transformer)
        pipe.set_progress_bar_config(disable=True)
        _PIPELINES[key] = pipe
        return pipe


def _release_memory(torch) -> None:
    """After a failure: drop what the failed call held, so the next clip starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _audio_rate(pipe) -> int:
    """Sample rate of a pipeline's audio output: LTX-2's vocoder says (24 kHz), else 24 kHz."""
    config = getattr(getattr(pipe, "vocoder", None), "config", None)
    return int(getattr(config, "output_sampling_rate", 24000))


def _is_i2v(pipe) -> bool:
    return "ImageToVideo" in type(pipe).__name__ or "I2V" in type(pipe).__name__


class DiffusersEngine:
    name = "local"

    def __init__(self, model: str | None = None, params: dict | None = None):
        from reelflow.settings import get_settings

        settings = get_settings()
        model = model or settings.local_model
        if not model:
            raise EngineInputError("the local engine needs a model folder: engine {name: local, model: /path/to/model} "
                                   "or REELFLOW_LOCAL_MODEL")
        self.model = model
        self.params = {**settings.local_params, **(params or {})}
        torch = _torch()
        self.device = self.params.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = self.params.get("dtype") or ("bfloat16" if self.device.startswith("cuda") else "float32")
        self.options = {k: self.params[k] for k in ("cpu_offload", "vae_tiling", "vae_slicing", "compile") if k in self.params}

    def pipeline(self, i2v: bool = False):
        model = self.params.get("i2v_model") if i2v and self.params.get("i2v_model") else self.model
        return load_pipeline(model, self.device, self.dtype, self.options)

    def call_kwargs(self, request: ClipRequest, pipe) -> dict[str, Any]:
        """The pipeline call for one clip: native size, frame count under the model's rule."""
        torch = _torch()
        p = {**self.params, **request.params}
        fps = float(p.get("fps", 16))
        kwargs: dict[str, Any] = dict(
            prompt=parse_prompt(request.prompt).visual,
            height=int(p.get("height", 480)), width=int(p.get("width", 832)),
            num_frames=frames_for(request.duration, fps, p.get("frame_rule", "4k+1")),
            num_inference_steps=int(p.get("steps", 30)), guidance_scale=float(p.get("guidance_scale", 5.0)),
            generator=torch.Generator(device="cpu").manual_seed(request.seed), output_type="np",
        )
        if p.get("negative_prompt") is not None:
            kwargs["negative_prompt"] = p["negative_prompt"]
        if "max_sequence_length" in p:
            kwargs["max_sequence_length"] = int(p["max_sequence_length"])
        if "frame_rate" in inspect.signature(pipe.__call__).parameters:   # LTX-2 and LTX-Video take it
            kwargs["frame_rate"] = fps
        if request.image and _is_i2v(pipe):
            from PIL import Image

            kwargs["image"] = Image.open(request.image).convert("RGB").resize((kwargs["width"], kwargs["height"]))
        return kwargs

    def run_pipeline(self, request: ClipRequest):
        """(frames, audio or None, audio rate) from the pipeline; GPU memory is released if it fails."""
        torch = _torch()
        with _GPU_LOCK:
            pipe = None
            try:
                pipe = self.pipeline(i2v=bool(request.image and self.params.get("i2v_model")))
                if _is_i2v(pipe) and not request.image:
                    raise EngineInputError(f"scene {request.scene_id!r}: {self.model} is an image-to-video model; "
                                           "the scene needs a character image")
                kwargs = self.call_kwargs(request, pipe)
                with torch.inference_mode():
                    output = pipe(**kwargs)
                return output.frames[0], getattr(output, "audio", None), _audio_rate(pipe)
            except BaseException as exc:
                _release_memory(torch)
                if isinstance(exc, torch.cuda.OutOfMemoryError):
                    raise TransientEngineError(f"scene {request.scene_id!r}: GPU out of memory: {exc}") from exc
                if isinstance(exc, (RuntimeError, ValueError, TypeError)) and not isinstance(exc, EngineError):
                    name = type(pipe).__name__ if pipe is not None else "the pipeline"
                    raise EngineError(f"scene {request.scene_id!r}: {name} failed: {exc}") from exc
                raise

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult:
        started = time.monotonic()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        frames, audio, audio_rate = self.run_pipeline(request)
        fps = float({**self.params, **request.params}.get("fps", 16))
        path = self._encode(request, frames, audio, audio_rate, fps, out_dir)
        return ClipResult(path=str(path), engine=self.name, model=self.model, seconds=time.monotonic() - started,
                          meta={"frames": int(len(frames)), "size": [int(frames.shape[2]), int(frames.shape[1])]})

    def _encode(self, request: ClipRequest, frames, audio, audio_rate: int, fps: float, work: Path) -> Path:
        """Frames (+ the pipeline's audio, or TTS speech over a bed) -> an MP4 of exactly ``duration``."""
        import numpy as np
        from PIL import Image

        rate = Fraction(fps).limit_denominator(1001)
        keep = min(len(frames), max(1, round(request.duration * rate)))
        frame_dir = work / "frames"
        frame_dir.mkdir(exist_ok=True)
        for i, frame in enumerate(frames[:keep]):
            Image.fromarray((np.clip(frame, 0, 1) * 255).round().astype("uint8")).save(frame_dir / f"{i:05d}.png")
        samples = round(keep * AUDIO_RATE / rate)
        parsed = parse_prompt(request.prompt)
        if audio is not None:
            speech, ambience = self._write_audio(audio, work / "pipeline.wav", audio_rate), False
        elif request.audio:
            speech, ambience = request.audio, bool(parsed.ambience)
        elif parsed.speech:
            try:
                speech = str(speak_to_fit(" ".join(parsed.speech), request.voice, keep / rate,
                                          work / "speech.wav", request.seed))
            except tts.TTSError as exc:
                raise EngineInputError(f"scene {request.scene_id!r}: {exc}") from exc
            ambience = bool(parsed.ambience)
        else:
            speech, ambience = None, bool(parsed.ambience)
        sound_args, sound_graph = soundtrack_args(1, speech, ambience, request.seed, samples)
        out = work / f"{request.scene_id}.mp4"
        r = f"{rate.numerator}/{rate.denominator}"
        ffmpeg.run(["-framerate", r, "-i", str(frame_dir / "%05d.png"), *sound_args,
                    "-filter_complex", ";".join(["[0:v]format=yuv420p,setsar=1[v]", *sound_graph]),
                    "-map", "[v]", "-map", "[a]", "-frames:v", str(keep), "-r", r, *ENCODE_ARGS, str(out)])
        return out

    @staticmethod
    def _write_audio(audio, path: Path, rate: int) -> str:
        """A pipeline's audio tensor/array (channels x samples, -1..1) as a 16-bit WAV."""
        import numpy as np

        data = audio[0] if getattr(audio, "ndim", 0) == 3 else audio
        data = np.asarray(data.float().cpu() if hasattr(data, "cpu") else data, dtype=np.float32)
        data = data if data.ndim == 2 else data[None, :]
        pcm = (np.clip(data.T, -1, 1) * 32767).astype("<i2")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(pcm.shape[1])
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
        return str(path)
