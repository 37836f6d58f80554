"""Payload builders and response parsers per model family, matching the reference services.

  ovi          (reference 000, Ovi 1.1 on RunPod)  prompt/mode/model/image/seed/... -> data[0].url
  multitalk    (reference 004)  reference_image/audio_1/audio_2/prompt/num_frames/...
                                -> video_url | video_base64
  infinitetalk (reference 002)  image + audio (+ prompt) -> video_url | video_base64
  omniavatar   (reference 001)  image + audio (+ prompt) -> video_base64 | video_url

Inputs are sent inline as base64, or as links when ``link`` is given (for payloads above
RunPod's 10 MB ``/run`` limit).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, Callable

from engines.base import ClipRequest
from engines.errors import EngineInputError, InvalidClip
from engines.params import OWNED
from reelflow.secrets import clip

FAMILIES = ("ovi", "multitalk", "infinitetalk", "omniavatar")
AUDIO_DRIVEN = ("multitalk", "infinitetalk", "omniavatar")
OVI_MODELS = {"720x720_5s": (720, 720, 5.0), "960x960_5s": (960, 960, 5.0), "960x960_10s": (960, 960, 10.0)}

Encoder = Callable[[str], str]   # local file -> base64 text or a URL


def family_of(model: str | None, params: dict[str, Any]) -> str:
    """The model family: ``params.family``, else guessed from the model name, else ovi."""
    family = params.get("family")
    if family is None:
        family = next((f for f in FAMILIES if model and f in model.lower()), "ovi")
    if family not in FAMILIES:
        raise EngineInputError(f"unknown model family {family!r}; one of {', '.join(FAMILIES)}")
    return family


def payload_problems(model: str | None, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(param, problem) a payload of this model and these params would have, found at validate:
    not after the render has started (``EngineInfo.params_check`` of the runpod engine)."""
    try:
        family = family_of(model, params)
    except EngineInputError as exc:
        return [("family", str(exc))]
    if family == "ovi" and model is not None and model not in OVI_MODELS:
        return [("model", f"Ovi model {model!r} is not one of {', '.join(OVI_MODELS)}")]
    return step_problems(model, params) + endpoint_problems(params) + timeout_problems(params)


ENDPOINT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def endpoint_problems(params: dict[str, Any]) -> list[tuple[str, str]]:
    """A RunPod endpoint id is one path segment of the authenticated URL: a production's
    ``a/purge-queue#`` or ``../x`` would send the user's API key to another route."""
    value = params.get("endpoint")
    if value is None or (isinstance(value, str) and ENDPOINT_ID.fullmatch(value)):
        return []
    return [("endpoint", f"not a RunPod endpoint id (letters, digits, '-' and '_'): {str(value)[:80]!r}")]


MAX_REMOTE_TIMEOUT = 24 * 3600


def timeout_problems(params: dict[str, Any]) -> list[tuple[str, str]]:
    """A remote job's ``timeout``: seconds, more than 0 (a job cancelled at once is still billed)."""
    value = params.get("timeout")
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                         and 0 < value <= MAX_REMOTE_TIMEOUT):
        return []
    return [("timeout", f"must be seconds, more than 0 and at most {MAX_REMOTE_TIMEOUT} (got {value!r})")]


SPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def space_problems(model: str | None, params: dict[str, Any]) -> list[tuple[str, str]]:
    """``EngineInfo.params_check`` of the hf-space engine: step counts, ``timeout``, and ``space``:
    a Space id (``owner/name``) or a link reelflow follows (https, or http to
    REELFLOW_ALLOW_HTTP_HOSTS)."""
    found = step_problems(model, params) + timeout_problems(params)
    space = params.get("space")
    if space is not None and (why := space_problem(space)):
        found.append(("space", why))
    return found


def space_problem(space: object) -> str | None:
    """Why ``space`` is not a Space reelflow talks to, or None."""
    if not isinstance(space, str):
        return f"must be a Space id (owner/name) or an https link, not {type(space).__name__}"
    if SPACE_ID.fullmatch(space):
        return None
    if space.startswith(("http://", "https://")):
        from engines.remote_files import RefusedAnswer, check_link

        try:
            check_link(space)
        except RefusedAnswer as exc:
            return str(exc).replace("the engine answered with", "it is")
        return None
    return f"not a Space id (owner/name) nor an https link: {space[:80]!r}"


MAX_STEPS = 1000     # a remote job's denoising steps: past this it is a typo that bills GPU time


def step_problems(model: str | None, params: dict[str, Any]) -> list[tuple[str, str]]:
    """Step counts a remote engine is sent (``sample_steps``, ``sampling_steps``, ...): whole
    numbers from 1 to ``MAX_STEPS`` (``EngineInfo.params_check`` of the hf-space engine)."""
    return [(name, f"must be a whole number from 1 to {MAX_STEPS} (got {value!r})")
            for name, value in params.items()
            if "steps" in name and not (isinstance(value, int) and not isinstance(value, bool)
                                        and 1 <= value <= MAX_STEPS)]


def b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def build_payload(family: str, request: ClipRequest, model: str | None, encode: Encoder = b64) -> dict[str, Any]:
    """The ``input`` object for one clip."""
    # Params never set what the adapter owns (the checked prompt, image, audio), and the
    # adapter's own fields are written last, so nothing in params can replace them.
    p = {k: v for k, v in request.params.items()
         if k not in OWNED and k not in ("family", "space", "endpoint", "api_name", "timeout")}
    if family == "ovi":
        payload = {
            "prompt": request.prompt,
            "mode": p.pop("mode", "i2v" if request.image else "t2v"),
            "model": model or "960x960_5s",
            "seed": request.seed,
            "sample_steps": p.pop("sample_steps", 50),
            "video_guidance_scale": p.pop("video_guidance_scale", 4.0),
            "audio_guidance_scale": p.pop("audio_guidance_scale", 3.0),
        }
        if payload["model"] not in OVI_MODELS:
            raise EngineInputError(f"Ovi model {payload['model']!r} is not one of {', '.join(OVI_MODELS)}")
        if request.image and payload["mode"] == "i2v":
            payload["image"] = encode(request.image)
        return {**p, **payload}
    if not request.image or not request.audio:
        raise EngineInputError(f"scene {request.scene_id!r}: the {family} family needs a character image and speech audio")
    if family == "multitalk":
        payload = {
            "reference_image": encode(request.image),
            "audio_1": encode(request.audio),
            "prompt": request.prompt,
            "num_frames": min(201, round(request.duration * request.fps)),
            "seed": request.seed,
            "sampling_steps": p.pop("sampling_steps", 20),
            "fps": request.fps,
        }
        if request.audio2:
            payload["audio_2"] = encode(request.audio2)
        return {**p, **payload}
    return {**p, "image": encode(request.image), "audio": encode(request.audio), "prompt": request.prompt,
            "seed": request.seed}


def parse_output(output: Any) -> tuple[str, str]:
    """("url" | "base64", value) from any reference service's output; InvalidClip if none."""
    if isinstance(output, dict):
        if output.get("error"):
            raise InvalidClip(f"the endpoint returned an error: {clip(output['error'], 500)}")
        data = output.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            # Only strings: an answer's 123 or ["a"] is no video (it was a raw AttributeError or
            # TypeError that skipped the fallback engines).
            if isinstance(data[0].get("url"), str) and data[0]["url"]:
                return "url", data[0]["url"]
            if isinstance(data[0].get("b64_json"), str) and data[0]["b64_json"]:
                return "base64", data[0]["b64_json"]
        for key, kind in (("video_url", "url"), ("url", "url"), ("video_base64", "base64"), ("video", "base64")):
            if isinstance(output.get(key), str) and output[key]:
                return kind, output[key]
    raise InvalidClip(f"no video in the endpoint's output ({clip(output, 200)!r})")
