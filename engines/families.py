"""What each diffusers video pipeline needs, as data: the local engine's model families.

A family says how many frames the model makes (``frame_step``: frames = step*k + 1), the
multiple its height and width must be, its native size and fps, its default steps and
guidance, whether the pipeline returns audio, and the extra call parameters a user may
pass (name -> type). Values follow diffusers 0.42's pipelines (``__call__`` defaults,
``vae_scale_factor_*`` / ``vae_*_compression_ratio`` times the transformer's patch size).

The family is found from the pipeline's class name (``model_index.json``'s ``_class_name``
before loading; the loaded pipeline after), or named in params (``family: ltx2``). Once a
pipeline is loaded its own compression ratios win over the table (a Wan 2.2 TI2V VAE
compresses 16x, a tiny test VAE less). The engine's accepted params are built from this
table: ``accepted_params`` for ``validate`` and ``check_params`` for the engine itself.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engines.errors import EngineInputError

Number = (int, float)


@dataclass(frozen=True)
class Family:
    name: str
    classes: tuple[str, ...]            # diffusers pipeline class names
    frame_step: int = 4                 # frames = frame_step * k + 1 (1: any count)
    size_multiple: int = 16             # height and width must be multiples of this
    height: int = 480
    width: int = 832
    fps: float = 16.0
    steps: int = 50
    guidance_scale: float = 5.0
    audio: bool = False                 # the pipeline returns its own soundtrack
    image_to_video: bool = False
    takes_frame_rate: bool = False      # __call__ has frame_rate (LTX, LTX-2)
    extra: dict[str, Any] = field(default_factory=dict)   # user-passable call params -> type(s)

    @property
    def frame_rule(self) -> str:
        return "any" if self.frame_step == 1 else f"{self.frame_step}k+1"


_WAN_EXTRA = {"guidance_scale_2": Number, "max_sequence_length": int}
_LTX_EXTRA = {"guidance_rescale": Number, "decode_timestep": Number, "decode_noise_scale": Number,
              "max_sequence_length": int}
_LTX2_EXTRA = {**_LTX_EXTRA, "stg_scale": Number, "modality_scale": Number, "audio_guidance_scale": Number,
               "audio_stg_scale": Number, "audio_modality_scale": Number, "audio_guidance_rescale": Number,
               "noise_scale": Number, "motion_speed": Number, "use_cross_timestep": bool}
_COG_EXTRA = {"use_dynamic_cfg": bool, "eta": Number, "max_sequence_length": int}
_HUNYUAN_EXTRA = {"true_cfg_scale": Number, "negative_prompt_2": str, "max_sequence_length": int}

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("wan", ("WanPipeline",), extra=_WAN_EXTRA),
    Family("wan-i2v", ("WanImageToVideoPipeline",), image_to_video=True, extra=_WAN_EXTRA),
    # Wan 2.2 TI2V 5B is a WanPipeline whose VAE compresses 16x: 704x1280 at 24 fps
    Family("wan2.2-ti2v", (), size_multiple=32, height=704, width=1280, fps=24.0, extra=_WAN_EXTRA),
    Family("ltx", ("LTXPipeline",), frame_step=8, size_multiple=32, height=512, width=704, fps=25.0,
           guidance_scale=3.0, takes_frame_rate=True, extra=_LTX_EXTRA),
    Family("ltx-i2v", ("LTXImageToVideoPipeline", "LTXConditionPipeline"), frame_step=8, size_multiple=32,
           height=512, width=704, fps=25.0, guidance_scale=3.0, image_to_video=True, takes_frame_rate=True,
           extra=_LTX_EXTRA),
    Family("ltx2", ("LTX2Pipeline",), frame_step=8, size_multiple=32, height=512, width=768, fps=24.0,
           steps=30, guidance_scale=3.0, audio=True, takes_frame_rate=True, extra=_LTX2_EXTRA),
    Family("ltx2-i2v", ("LTX2ImageToVideoPipeline", "LTX2ConditionPipeline"), frame_step=8, size_multiple=32,
           height=512, width=768, fps=24.0, steps=30, guidance_scale=3.0, audio=True, image_to_video=True,
           takes_frame_rate=True, extra={**_LTX2_EXTRA, "image_crf": int}),
    Family("cogvideox", ("CogVideoXPipeline",), height=480, width=720, fps=8.0, guidance_scale=6.0,
           extra=_COG_EXTRA),
    Family("cogvideox-i2v", ("CogVideoXImageToVideoPipeline",), height=480, width=720, fps=8.0,
           guidance_scale=6.0, image_to_video=True, extra=_COG_EXTRA),
    Family("hunyuan", ("HunyuanVideoPipeline",), height=720, width=1280, fps=24.0, guidance_scale=6.0,
           extra=_HUNYUAN_EXTRA),
    Family("hunyuan-i2v", ("HunyuanVideoImageToVideoPipeline",), height=720, width=1280, fps=24.0,
           guidance_scale=1.0, image_to_video=True, extra={**_HUNYUAN_EXTRA, "image_embed_interleave": int}),
)}
DEFAULT = FAMILIES["wan"]

# Params every local model takes, whatever its family (name -> type(s)).
COMMON_PARAMS: dict[str, Any] = {
    "height": int, "width": int, "fps": Number, "steps": int, "guidance_scale": Number,
    "negative_prompt": str, "frame_rule": str, "family": str, "i2v_model": str, "audio_model": str,
    "dtype": str, "device": str, "cpu_offload": bool, "vae_tiling": bool, "vae_slicing": bool, "compile": bool,
}


# Ranges of numeric params (inclusive), checked at validate: generous for every family, but finite,
# so one YAML line cannot ask for a billion denoising steps, a 1e8-token prompt or a 25 TB latent.
LIMITS: dict[str, tuple[float, float]] = {
    "steps": (1, 1000), "height": (1, 4096), "width": (1, 4096), "max_sequence_length": (1, 4096),
    "image_crf": (0, 63), "image_embed_interleave": (1, 64),
}
FPS_MAX = 120.0
FRAME_STEP_MAX = 64
INDEX_MAX_BYTES = 1 << 20       # a model_index.json is a few hundred bytes


def by_class(class_name: str) -> Family | None:
    return next((f for f in FAMILIES.values() if class_name in f.classes), None)


def pipeline_class(model: str | None) -> str | None:
    """The pipeline class a ``save_pretrained`` folder declares (no torch needed), if readable."""
    if not model:
        return None
    index = Path(model).expanduser() / "model_index.json"
    try:
        text = _read_index(index)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EngineInputError(f"engine.model: cannot read {index}: {exc.strerror or exc}") from exc
    if text is None:
        return None
    try:
        return str(json.loads(text)["_class_name"])
    except (ValueError, KeyError, TypeError):
        return None


def _read_index(index: Path) -> str | None:
    """The text of a regular file of at most ``INDEX_MAX_BYTES``; an EngineInputError line for anything else
    (a FIFO would block, a link to /dev/zero never ends). Opened non-blocking, checked on the open file."""
    if not index.parent.is_dir():
        return None
    fd = os.open(index, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EngineInputError(f"engine.model: {index} is not a regular file")
        data = os.read(fd, INDEX_MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > INDEX_MAX_BYTES:
        raise EngineInputError(f"engine.model: {index} is larger than {INDEX_MAX_BYTES // 1024} KB; "
                               "not a model_index.json")
    return data.decode("utf-8", errors="replace")


def family_for(class_name: str | None, params: dict | None = None) -> Family:
    """``params.family`` if given, else the family of ``class_name``, else Wan's rules."""
    params = params or {}
    name = params.get("family")
    if name is not None:
        if name not in FAMILIES:
            raise EngineInputError(f"engine.params.family: unknown model family {name!r}; "
                                   f"one of {', '.join(FAMILIES)}")
        family = FAMILIES[name]
    else:
        family = by_class(class_name or "") or DEFAULT
    rule = params.get("frame_rule")
    if rule is not None:
        family = replace(family, frame_step=parse_rule(rule))
    return family


def from_pipeline(pipe, params: dict | None = None) -> Family:
    """The family of a loaded pipeline, its frame step and size multiple read from the pipeline itself."""
    family = family_for(type(pipe).__name__, params)
    temporal = getattr(pipe, "vae_scale_factor_temporal", None) or getattr(pipe, "vae_temporal_compression_ratio", None)
    spatial = getattr(pipe, "vae_scale_factor_spatial", None) or getattr(pipe, "vae_spatial_compression_ratio", None)
    patch = getattr(getattr(getattr(pipe, "transformer", None), "config", None), "patch_size", None)
    patch = patch[-1] if isinstance(patch, (list, tuple)) else patch
    changes: dict[str, Any] = {}
    if isinstance(temporal, int) and temporal > 0 and "frame_rule" not in (params or {}):
        changes["frame_step"] = temporal
    if isinstance(spatial, int) and spatial > 0:
        changes["size_multiple"] = spatial * (patch if isinstance(patch, int) and patch > 0 else 1)
    return replace(family, **changes)


def parse_rule(rule: Any) -> int:
    """``4k+1`` -> 4, ``8k+1`` -> 8, ``any`` -> 1; anything else is an input error."""
    if rule == "any":
        return 1
    text = str(rule).replace(" ", "")
    head, _, tail = text.partition("k")
    if tail != "+1" or not (head.isascii() and head.isdigit()) or not 1 <= int(head) <= FRAME_STEP_MAX:
        raise EngineInputError(f"engine.params.frame_rule: {rule!r} is not a frame rule (4k+1, 8k+1 or any; "
                               f"a step from 1 to {FRAME_STEP_MAX})")
    return int(head)


def frames_for(seconds: float, fps: float, rule: str | int = "4k+1") -> int:
    """Frames to generate for ``seconds`` at ``fps``: the fewest on the model's grid that cover it."""
    step = rule if isinstance(rule, int) else parse_rule(rule)
    needed = max(1, round(seconds * fps))
    if step == 1:
        return needed
    return step * -(-(needed - 1) // step) + 1


def accepted_params(family: Family) -> dict[str, Any]:
    """Every param the local engine accepts for a model of ``family`` (name -> type(s))."""
    return {**COMMON_PARAMS, **family.extra}


def _type_name(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("number" if k is float else k.__name__ for k in kinds if k is not int or float not in kinds)


def declared_params() -> dict[str, Any]:
    """Every param the local engine accepts for some family (what ``validate`` knows without a model)."""
    out = dict(COMMON_PARAMS)
    for family in FAMILIES.values():
        out.update(family.extra)
    return out


def problems(params: dict, family: Family) -> list[tuple[str, str]]:
    """(param, problem) for unknown names, wrong types, non-finite numbers, values out of ``LIMITS``
    and sizes off the model's multiple: every one of them (a param of the wrong type is not checked further)."""
    accepted = accepted_params(family)
    found: list[tuple[str, str]] = []
    for name, value in params.items():
        kind = accepted.get(name)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if kind is None:
            found.append((name, f"not a parameter of the local engine for {family.name} models; "
                                f"accepted: {', '.join(sorted(accepted))}"))
        elif value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds)):
            found.append((name, f"expected {_type_name(kind)}, got {value!r}"))
    bad = {name for name, _ in found}
    if "frame_rule" in params and "frame_rule" not in bad:
        try:
            parse_rule(params["frame_rule"])
        except EngineInputError as exc:
            found.append(("frame_rule", str(exc).partition(": ")[2]))
    for name, value in params.items():
        if name in bad:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            found.append((name, f"must be a finite number, got {value!r}"))
        elif name in LIMITS and isinstance(value, int) and not LIMITS[name][0] <= value <= LIMITS[name][1]:
            low, high = LIMITS[name]
            found.append((name, f"must be from {low} to {high}, got {value!r}"))
    bad = {name for name, _ in found}
    for name in ("height", "width"):
        value = params.get(name)
        if value is not None and name not in bad and value % family.size_multiple:
            found.append((name, f"{value} is not a multiple of {family.size_multiple} ({family.name} models "
                                f"need it); try {nearest(value, family.size_multiple)}"))
    fps = params.get("fps")
    if fps is not None and "fps" not in bad and not 0 < fps <= FPS_MAX:
        found.append(("fps", f"must be above 0 and at most {FPS_MAX:g}, got {fps!r}"))
    return found


def check_params(params: dict, family: Family, where: str = "engine.params") -> None:
    """Raise the first of ``problems`` as one EngineInputError line naming the param."""
    for name, message in problems(params, family):
        raise EngineInputError(f"{where}.{name}: {message}")


def nearest(value: int, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)
