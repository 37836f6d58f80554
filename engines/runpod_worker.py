"""A RunPod serverless worker that serves a reelflow engine with Ovi 1.1's API (reference 000).

    python -m engines.runpod_worker                     # on RunPod (runpod.serverless.start)
    python -m engines.runpod_worker --rp_serve_api      # locally, RunPod's test server

Request: ``{"input": {"prompt", "mode": t2v|i2v|t2i2v, "model": 720x720_5s|960x960_5s|
960x960_10s, "image" (base64), "seed", "sample_steps", "height", "width",
"video_guidance_scale", "audio_guidance_scale"}}``. Response: OpenAI-style
``{"id", "object": "video.generation", "created", "model", "data": [{"url"} | {"b64_json"}],
"usage"}``. The clip is uploaded to the store when ``REELFLOW_STORAGE`` is ``s3://...``
(S3, R2, MinIO) and its presigned link returned; otherwise it comes back as base64.
``REELFLOW_WORKER_ENGINE`` picks the engine (``animatic`` by default; ``local`` for the
diffusers engine). Errors come back as ``{"error": "..."}`` strings.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engines.adapters import OVI_MODELS
from engines.base import ClipRequest
from engines.errors import EngineError
from engines.registry import get_engine

FPS = 24


class OviInput(BaseModel):
    """Reference 000's request schema."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=4000)
    mode: Literal["t2v", "i2v", "t2i2v"] = "t2v"
    model: Literal["720x720_5s", "960x960_5s", "960x960_10s"] = "960x960_10s"
    image: str | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    sample_steps: int = Field(default=50, ge=10, le=100)
    height: int | None = Field(default=None, ge=64, le=2048)
    width: int | None = Field(default=None, ge=64, le=2048)
    video_guidance_scale: float = Field(default=4.0, ge=1, le=20)
    audio_guidance_scale: float = Field(default=3.0, ge=1, le=20)


PROGRESS_HOOKS: list = []   # local servers (tests, --rp_serve_api stand-ins) listen here


def _progress(job: dict, message: str) -> None:
    for hook in PROGRESS_HOOKS:
        hook(job, message)
    if not os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"):
        return  # not on RunPod: nowhere to send it
    try:
        import runpod

        runpod.serverless.progress_update(job, message)
    except Exception:  # noqa: BLE001 - progress is best effort
        pass


def _publish(path: Path, job_id: str) -> dict[str, str]:
    store_url = os.environ.get("REELFLOW_STORAGE", "")
    if store_url.startswith("s3://"):
        from storage import open_store

        store = open_store(store_url)
        key = f"videos/{time.strftime('%Y/%m/%d')}/{job_id}.mp4"
        store.put_file(key, path, {"job": job_id})
        return {"url": store.url(key)}
    return {"b64_json": base64.b64encode(path.read_bytes()).decode()}


# Ovi's request fields -> the served engine's param names (what the job set explicitly, no defaults:
# the worker's own REELFLOW_LOCAL_PARAMS hold the model's defaults)
_OVI_TO_ENGINE = {"sample_steps": "steps", "video_guidance_scale": "guidance_scale",
                  "audio_guidance_scale": "audio_guidance_scale"}


def _engine_params(spec) -> dict:
    return {_OVI_TO_ENGINE[k]: getattr(spec, k) for k in _OVI_TO_ENGINE if k in spec.model_fields_set}


def handler(job: dict[str, Any]) -> dict[str, Any]:
    """Serve one job; never raises (RunPod reports a returned ``error`` as FAILED)."""
    job_id = str(job.get("id") or uuid.uuid4().hex)
    try:
        spec = OviInput.model_validate(job.get("input") or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return {"error": f"invalid input: {problems}"}
    if spec.mode == "i2v" and not spec.image:
        return {"error": "invalid input: image is required for mode i2v"}
    width, height, duration = OVI_MODELS[spec.model]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reelflow-worker-") as tmp:
        work = Path(tmp)
        image = None
        if spec.image and spec.mode == "i2v":
            image = work / "image.png"
            try:
                image.write_bytes(base64.b64decode(spec.image, validate=True))
            except (binascii.Error, ValueError):
                return {"error": "invalid input: image is not valid base64"}
        request = ClipRequest(
            scene_id=job_id[:32], prompt=spec.prompt, image=str(image) if image else None,
            width=spec.width or width, height=spec.height or height, fps=FPS, duration=duration,
            seed=spec.seed if spec.seed is not None else 0,
            params=_engine_params(spec),
        )
        engine_name = os.environ.get("REELFLOW_WORKER_ENGINE", "animatic")
        _progress(job, f"generating with {engine_name}")
        try:
            engine = get_engine(engine_name, os.environ.get("REELFLOW_WORKER_MODEL") or None)
            result = engine.generate(request, work / "out")
            _progress(job, "uploading")
            data = _publish(Path(result.path), job_id)
        except (EngineError, OSError, RuntimeError) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "id": f"video-{job_id}",
        "object": "video.generation",
        "created": int(time.time()),
        "model": f"ovi-1.1-{spec.model}",
        "data": [{**data, "revised_prompt": spec.prompt[:80]}],
        "usage": {"prompt_tokens": len(spec.prompt.split()), "total_frames": round(duration * FPS) + 1,
                  "duration_seconds": duration, "generation_time_seconds": round(time.monotonic() - started, 2)},
    }


if __name__ == "__main__":  # pragma: no cover - the RunPod runtime
    import runpod

    runpod.serverless.start({"handler": handler})
