"""Engine names -> implementations, imported only when first used, and what each engine needs.

Each engine declares, once, in an ``EngineInfo``: whether it takes a scene's speech as audio,
which concurrency slot it holds (its own Prefect limit, or the GPU's), how many clips it
runs at once by default, its price and speed, how its params are checked, and which of its
settings make its clips (``settings_params``: they join the production's params, and so the
clip key). The tasks
read these declarations (``info(name)``) and never an engine's name; settings
(``REELFLOW_ENGINE_CONCURRENCY``, ``REELFLOW_PRICES``, ``REELFLOW_SPEED``) only override them.
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass
from typing import Any, Callable, Literal

from engines.base import Engine
from engines.errors import EngineInputError


@dataclass(frozen=True)
class EngineInfo:
    """What an engine needs from the pipeline around it."""

    target: str | None = None                  # "module:attr" of the factory (built-ins)
    hint: str | None = None                    # what to install when the import fails
    speech_audio: Literal["never", "audio-driven"] = "never"   # speech as a WAV for audio-driven families
    slot: Literal["engine", "gpu"] = "engine"  # Prefect limit reelflow-engine-<name>, or gpu:<REELFLOW_GPU>
    concurrency: int | None = None             # clips at once by default (None: unlimited)
    price: float = 0.0                         # dollars per engine-second
    speed: float = 1.0                         # engine-seconds per clip-second before the catalog knows
    params_check: str | None = None            # "module:attr" of problems(model, params) -> [(param, problem)]
    default_model: str | None = None           # "module:attr" of () -> the model used when none is named
    settings_params: str | None = None         # "module:attr" of () -> {variable: params} its REELFLOW_* settings
                                               # add under a production's params (only settings set away from
                                               # their default; never a secret: these go into keys and plans)
    version: int = 1                           # bump when the engine makes other clips from the same request
                                               # (part of every clip key of the engine past 1)
    speaks: bool = False                       # speaks the prompt's lines itself, in both speakers' voices
    captions: bool = False                     # draws the scene's action on its picture (in the bundled font)


_BUILTIN: dict[str, EngineInfo] = {
    # 2: a scene's own audio from its first sample (it had the TTS lead-in), captions wrapped by
    # their drawn width, photos turned by their EXIF, the sound whole at NTSC rates.
    "animatic": EngineInfo("engines.animatic:AnimaticEngine", speed=0.5, version=2, speaks=True, captions=True),
    "hf-space": EngineInfo("engines.hf_space:HFSpaceEngine", "'reelflow[remote]' (gradio_client)",
                           concurrency=1, speed=15.0, params_check="engines.adapters:space_problems",
                           settings_params="engines.settings:hf_space_settings_params"),
    "runpod": EngineInfo("engines.runpod_endpoint:RunPodEngine", "'reelflow[remote]' (runpod)",
                         speech_audio="audio-driven", concurrency=4, price=0.00076, speed=12.0,
                         params_check="engines.adapters:payload_problems",
                         settings_params="engines.settings:runpod_settings_params"),
    "local": EngineInfo("engines.diffusers_local:DiffusersEngine", "'reelflow[local]' (torch, diffusers)",
                        speech_audio="audio-driven", slot="gpu", concurrency=1, speed=20.0,
                        params_check="engines.diffusers_local:DiffusersEngine.param_problems",
                        default_model="engines.settings:default_local_model",
                        settings_params="engines.settings:local_settings_params"),
}
_FACTORIES: dict[str, Callable[..., Engine]] = {}
_INFOS: dict[str, EngineInfo] = {}
_INSTANCES: dict[tuple, Engine] = {}
_LOCK = threading.Lock()


def register(name: str, factory: Callable[..., Engine], info: EngineInfo | None = None) -> None:
    """Add or replace an engine: ``factory(model=..., params=...)`` returns an Engine.

    Its declaration is ``info``, else the factory's ``info`` attribute, else the built-in one of
    that name (a test double standing in for it), else the defaults."""
    with _LOCK:
        _FACTORIES[name] = factory
        _INFOS[name] = info or getattr(factory, "info", None) or _BUILTIN.get(name) or EngineInfo()
        for key in [k for k in _INSTANCES if k[0] == name]:
            del _INSTANCES[key]


def unregister(name: str) -> None:
    with _LOCK:
        _FACTORIES.pop(name, None)
        _INFOS.pop(name, None)
        for key in [k for k in _INSTANCES if k[0] == name]:
            del _INSTANCES[key]


def names() -> list[str]:
    return sorted({*_BUILTIN, *_FACTORIES})


def info(name: str) -> EngineInfo:
    """The engine's declaration (an unknown name is an input error)."""
    if name in _INFOS:
        return _INFOS[name]
    if name not in _BUILTIN:
        raise EngineInputError(f"unknown engine {name!r}; known engines: {', '.join(names())}")
    return _BUILTIN[name]


def _load(name: str, target: str, hint: str | None) -> Any:
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        extra = f": install {hint}" if hint else ""
        raise EngineInputError(f"engine {name!r} cannot load ({exc.name} missing){extra}") from exc
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _factory(name: str) -> Callable[..., Engine]:
    if name in _FACTORIES:
        return _FACTORIES[name]
    declared = info(name)
    return _load(name, declared.target, declared.hint)


def param_problems(name: str, model: str | None, params: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(param, problem) for ``params`` as the engine declares them for ``model`` (no declaration: none)."""
    declared = info(name)
    if not declared.params_check:
        return []
    return list(_load(name, declared.params_check, declared.hint)(model, params or {}))


def check_params(name: str, model: str | None, params: dict[str, Any] | None) -> None:
    """Raise the first problem of ``param_problems`` as one EngineInputError line."""
    for param, problem in param_problems(name, model, params):
        raise EngineInputError(f"engine.params.{param}: {problem}")


def needs_speech_audio(name: str | None, model: str | None, params: dict[str, Any]) -> bool:
    """Does this engine take the scene's speech as an audio file (audio-driven model families)?"""
    if not name or info(name).speech_audio == "never":
        return False
    from engines.adapters import AUDIO_DRIVEN, family_of

    return family_of(model, params) in AUDIO_DRIVEN


def concurrency(name: str) -> int | None:
    """Clips at once for ``name``: REELFLOW_ENGINE_CONCURRENCY if it names it, else the declaration."""
    from reelflow.settings import get_settings

    return get_settings().engine_concurrency.get(name, info(name).concurrency)


def price(name: str | None) -> float:
    """Dollars per engine-second: REELFLOW_PRICES if it names the engine, else the declaration."""
    from reelflow.settings import get_settings

    if not name:
        return 0.0
    return get_settings().prices.get(name, info(name).price if name in names() else 0.0)


def speed(name: str) -> float:
    """Engine-seconds per clip-second before the catalog has history: REELFLOW_SPEED, else declared."""
    from reelflow.settings import get_settings

    return get_settings().speed.get(name, info(name).speed if name in names() else 1.0)


def default_model(name: str | None) -> str | None:
    """The model an engine uses when the production names none (e.g. ``REELFLOW_LOCAL_MODEL``).

    Plans and engine instances use it, so a clip's content key names the model that really
    made it and a changed setting never reuses another model's clips or pipeline.
    """
    try:
        target = info(name).default_model if name else None
    except EngineInputError:
        return None
    return _load(name, target, None)() if target else None


def settings_params(name: str | None) -> dict[str, dict[str, Any]]:
    """{variable: params} that the engine's settings add under a production's params, e.g.
    ``{"REELFLOW_LOCAL_PARAMS": {"steps": 30}}`` ({} for an engine that declares none)."""
    try:
        target = info(name).settings_params if name else None
    except EngineInputError:
        return {}
    return dict(_load(name, target, None)()) if target else {}


def effective_params(name: str | None, params: dict[str, Any] | None) -> dict[str, Any]:
    """The params the engine makes a clip with: its settings' (``settings_params``) under ``params``.

    Plans put these in the clip's key and hand them to the engine, so a changed setting never
    reuses clips made with the old one, and a setting left unset keeps the keys as they were.
    """
    merged: dict[str, Any] = {}
    for extra in settings_params(name).values():
        merged.update(extra)
    return {**merged, **(params or {})}


def get_engine(name: str, model: str | None = None, params: dict[str, Any] | None = None) -> Engine:
    """One engine instance per (name, model, engine-level params) per process."""
    model = model or default_model(name)
    key = (name, model, json.dumps(params or {}, sort_keys=True, default=str))
    with _LOCK:
        if key not in _INSTANCES:
            _INSTANCES[key] = _factory(name)(model=model, params=params or {})
        return _INSTANCES[key]
