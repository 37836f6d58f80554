"""The ``local`` engine: a diffusers pipeline on this machine (extra ``reelflow[local]``).

The model is a folder made by ``save_pretrained`` (or a hub id when the machine is
online), loaded once per process and kept. Text-to-video; image-to-video when the scene
has an image and ``params.i2v_model`` names an i2v pipeline (or the model itself is one).
What each pipeline needs (frame rule, size multiple, native size and fps, default steps
and guidance, audio, extra call params) is data in ``engines.families``, found from the
pipeline's class and overridable with ``params.family`` / ``params.frame_rule``.

Pipelines that return audio (LTX-2) give the clip their own soundtrack, sample for sample
where the model put it and at its rate (``engines.clip_audio``); for video-only pipelines
(Wan, LTX-Video, CogVideoX, HunyuanVideo) the speech comes from the offline TTS over an
ambience bed. Ovi's tokens never reach the video model: ``prompts.parse_prompt`` splits
them into picture, speech and ambience. Frames go straight from memory into the encoder
(``engines.frame_writer``); a model that returns fewer frames than the clip needs is an
``InvalidClip``, never a silently short clip.

Params: ``height``, ``width`` (the family's native size by default; a multiple of its
size multiple), ``fps`` (the family's), ``frame_rule`` (``4k+1``, ``8k+1``, ``any``),
``steps``, ``guidance_scale``, ``negative_prompt``, the family's extra call params,
``dtype`` (bfloat16 on GPU, float32 on CPU), ``device`` (cuda if present), ``cpu_offload``,
``vae_tiling``, ``vae_slicing``, ``compile``, ``family``, ``i2v_model``. Numbers are range-checked
at validate (``families.LIMITS``); the clip's budget (``request.deadline``) stops the denoising loop.
One clip at a time per process (and per GPU through the Prefect limit ``gpu:<index>``);
GPU memory is released after an error.
"""

from __future__ import annotations

import gc
import inspect
import threading
import time
from pathlib import Path
from typing import Any

from engines import families
from engines.base import ClipRequest, ClipResult
from engines.settings import engine_settings
from engines.clip_audio import model_soundtrack, speech_soundtrack
from engines.errors import EngineError, EngineInputError, InvalidClip, TransientEngineError
from engines.families import Family, frames_for
from engines.frame_writer import as_uint8_frames, write_clip
from media.profile import exact_rate
from prompts import parse_prompt

__all__ = ["DiffusersEngine", "adopt_pipeline", "frames_for", "load_pipeline"]

_PIPELINES: dict[tuple, Any] = {}
_LOAD_LOCK = threading.Lock()
_GPU_LOCK = threading.Lock()     # one clip at a time in this process


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise EngineInputError("the local engine needs torch and diffusers: pip install 'reelflow[local]'") from exc
    return torch


def _key(model: str, device: str, dtype_name: str, options: dict) -> tuple:
    return (model, device, dtype_name, tuple(sorted((k, str(v)) for k, v in options.items())))


def load_pipeline(model: str, device: str, dtype_name: str, options: dict) -> Any:
    """Load (once per process) the diffusers pipeline at ``model`` onto ``device``."""
    key = _key(model, device, dtype_name, options)
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
        _PIPELINES[key] = _prepare(pipe, device, options, torch)
        return pipe


def adopt_pipeline(engine: "DiffusersEngine", pipe: Any) -> Any:
    """Use ``pipe`` (built in memory, e.g. random weights at a real config) as ``engine``'s model."""
    with _LOAD_LOCK:
        _PIPELINES[_key(engine.model, engine.device, engine.dtype, engine.options)] = _prepare(
            pipe, engine.device, engine.options, _torch())
    return pipe


def _prepare(pipe: Any, device: str, options: dict, torch) -> Any:
    """Place the pipeline (or offload it) and apply the memory/speed options."""
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
    return pipe


def _release_memory(torch) -> None:
    """After a failure: drop what the failed call held, so the next clip starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _audio_rate(pipe) -> int:
    """Sample rate of a pipeline's audio output: its vocoder's (LTX-2: 24 kHz), else 24 kHz."""
    config = getattr(getattr(pipe, "vocoder", None), "config", None)
    return int(getattr(config, "output_sampling_rate", 24000))


def _lock_wait(request: ClipRequest) -> float:
    """Seconds to wait for the GPU: what is left of the clip's budget (-1: no budget, wait)."""
    return -1 if request.deadline is None else min(request.seconds_left(float("inf")), threading.TIMEOUT_MAX)


def _check_budget(request: ClipRequest, when: str, step: int | None = None) -> None:
    if request.deadline is not None and time.time() >= request.deadline:
        at = f"after denoising step {step + 1}" if step is not None else when
        raise TransientEngineError(f"scene {request.scene_id!r}: the clip's time budget "
                                   f"(REELFLOW_CLIP_BUDGET) ran out {at}; the pipeline was stopped")


def _budget_callback(request: ClipRequest):
    """A diffusers ``callback_on_step_end`` that stops the denoising loop once the budget is spent
    (raising is the one way out of the loop: the pipelines' interrupt flag skips steps but still decodes)."""
    def check(pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        _check_budget(request, "", step)
        return callback_kwargs
    return check


class DiffusersEngine:
    name = "local"

    def __init__(self, model: str | None = None, params: dict | None = None):
        settings = engine_settings()
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

    @staticmethod
    def accepted_params(model: str | None = None, params: dict | None = None) -> dict[str, Any]:
        """The params this engine takes for ``model`` (name -> type), built from its family's data."""
        return families.accepted_params(families.family_for(families.pipeline_class(model), params))

    @staticmethod
    def param_problems(model: str | None = None, params: dict | None = None) -> list[tuple[str, str]]:
        """(param, problem) for ``params`` of ``model`` (``REELFLOW_LOCAL_MODEL`` if None), before anything loads.

        The family comes from the model folder's ``model_index.json`` (or ``params.family``)."""
        params = params or {}
        try:
            family = families.family_for(families.pipeline_class(model or engine_settings().local_model), params)
        except EngineInputError as exc:      # "engine.params.family: ...", "engine.params.frame_rule: ...", "engine.model: ..."
            where, _, message = str(exc).partition(": ")
            name = where.rpartition(".")[2]
            if name != "frame_rule":         # the family or the model: the other params' rules are unknown
                return [(name, message)]
            rest = {k: v for k, v in params.items() if k != "frame_rule"}   # the rest is checked all the same
            return [(name, message), *DiffusersEngine.param_problems(model, rest)]
        return families.problems(params, family)

    def pipeline(self, i2v: bool = False):
        model = self.params.get("i2v_model") if i2v and self.params.get("i2v_model") else self.model
        return load_pipeline(model, self.device, self.dtype, self.options)

    def family(self, pipe=None) -> Family:
        """The model's family: from the loaded pipeline if given, else from its folder's model_index.json."""
        if pipe is not None:
            return families.from_pipeline(pipe, self.params)
        return families.family_for(families.pipeline_class(self.model), self.params)

    def call_kwargs(self, request: ClipRequest, pipe) -> dict[str, Any]:
        """The pipeline call for one clip: the family's size, steps and guidance, frames on its grid."""
        torch = _torch()
        p = {**self.params, **request.params}
        family = families.from_pipeline(pipe, p)
        families.check_params(p, family)
        fps = float(p.get("fps", family.fps))
        kwargs: dict[str, Any] = dict(
            prompt=parse_prompt(request.prompt).visual,
            height=int(p.get("height", family.height)), width=int(p.get("width", family.width)),
            num_frames=frames_for(request.duration, fps, family.frame_step),
            num_inference_steps=int(p.get("steps", family.steps)),
            guidance_scale=float(p.get("guidance_scale", family.guidance_scale)),
            generator=torch.Generator(device="cpu").manual_seed(request.seed), output_type="pt",
        )
        if p.get("negative_prompt") is not None:
            kwargs["negative_prompt"] = p["negative_prompt"]
        accepts = inspect.signature(pipe.__call__).parameters
        kwargs.update({k: p[k] for k in family.extra if k in p and k in accepts})
        if family.takes_frame_rate or "frame_rate" in accepts:     # LTX-2 and LTX-Video take it
            kwargs["frame_rate"] = fps
        if request.image and family.image_to_video:
            from PIL import Image

            kwargs["image"] = Image.open(request.image).convert("RGB").resize((kwargs["width"], kwargs["height"]))
        return kwargs

    def run_pipeline(self, request: ClipRequest):
        """(frames as uint8, audio or None, audio rate, family); GPU memory is released if it fails.

        The clip's budget (``request.deadline``) bounds the wait for the GPU and the denoising loop:
        each step ends with a check, and a spent budget stops the pipeline with a TransientEngineError."""
        torch = _torch()
        if not _GPU_LOCK.acquire(timeout=_lock_wait(request)):
            raise TransientEngineError(f"scene {request.scene_id!r}: the clip's time budget ran out waiting "
                                       "for the GPU (another clip holds it)")
        try:
            pipe = None
            try:
                _check_budget(request, "before the pipeline started")
                pipe = self.pipeline(i2v=bool(request.image and self.params.get("i2v_model")))
                family = families.from_pipeline(pipe, {**self.params, **request.params})
                if family.image_to_video and not request.image:
                    raise EngineInputError(f"scene {request.scene_id!r}: {self.model} is an image-to-video model; "
                                           "the scene needs a character image")
                kwargs = self.call_kwargs(request, pipe)
                if request.deadline is not None:
                    if "callback_on_step_end" not in inspect.signature(pipe.__call__).parameters:
                        _check_budget(request, "before denoising")
                    else:
                        kwargs["callback_on_step_end"] = _budget_callback(request)
                with torch.inference_mode():
                    output = pipe(**kwargs)
                    frames = as_uint8_frames(output.frames[0])
                return frames, getattr(output, "audio", None), _audio_rate(pipe), family
            except BaseException as exc:
                _release_memory(torch)
                if isinstance(exc, torch.cuda.OutOfMemoryError):
                    raise TransientEngineError(f"scene {request.scene_id!r}: GPU out of memory: {exc}") from exc
                if isinstance(exc, (RuntimeError, ValueError, TypeError)) and not isinstance(exc, EngineError):
                    name = type(pipe).__name__ if pipe is not None else "the pipeline"
                    raise EngineError(f"scene {request.scene_id!r}: {name} failed: {exc}") from exc
                raise
        finally:
            _GPU_LOCK.release()

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult:
        started = time.monotonic()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        frames, audio, audio_rate, family = self.run_pipeline(request)
        fps = float({**self.params, **request.params}.get("fps", family.fps))
        rate = exact_rate(fps)
        keep = max(1, round(request.duration * rate))
        if len(frames) < keep:
            raise InvalidClip(f"scene {request.scene_id!r}: the model returned {len(frames)} frames, the clip needs "
                              f"{keep} ({request.duration:g} s at {fps:g} fps; frame rule {family.frame_rule})")
        seconds = float(keep / rate)
        if family.audio and audio is not None:
            sound = model_soundtrack(1, audio, audio_rate, seconds, out_dir, request.scene_id)
        else:
            sound = speech_soundtrack(1, request, seconds, out_dir)
        path = write_clip(frames, keep, rate, sound, out_dir / f"{request.scene_id}.mp4")
        return ClipResult(path=str(path), engine=self.name, model=self.model, seconds=time.monotonic() - started,
                          meta={"frames": int(len(frames)), "size": [int(frames.shape[2]), int(frames.shape[1])],
                                "family": family.name, "audio": sound.source, "audio_rate": sound.rate,
                                **({"words": sound.words} if sound.words else {})})
