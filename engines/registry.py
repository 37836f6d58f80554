"""Engine names -> implementations, imported only when first used."""

from __future__ import annotations

import importlib
import json
import threading
from typing import Any, Callable

from engines.base import Engine
from engines.errors import EngineInputError

# name -> (import path "module:attr", install hint)
_BUILTIN: dict[str, tuple[str, str | None]] = {
    "animatic": ("engines.animatic:AnimaticEngine", None),
    "hf-space": ("engines.hf_space:HFSpaceEngine", "'reelflow[remote]' (gradio_client)"),
    "runpod": ("engines.runpod_endpoint:RunPodEngine", "'reelflow[remote]' (runpod)"),
    "local": ("engines.diffusers_local:DiffusersEngine", "'reelflow[local]' (torch, diffusers)"),
}
_FACTORIES: dict[str, Callable[..., Engine]] = {}
_INSTANCES: dict[tuple, Engine] = {}
_LOCK = threading.Lock()


def register(name: str, factory: Callable[..., Engine]) -> None:
    """Add or replace an engine: ``factory(model=..., params=...)`` returns an Engine."""
    with _LOCK:
        _FACTORIES[name] = factory
        for key in [k for k in _INSTANCES if k[0] == name]:
            del _INSTANCES[key]


def unregister(name: str) -> None:
    with _LOCK:
        _FACTORIES.pop(name, None)
        for key in [k for k in _INSTANCES if k[0] == name]:
            del _INSTANCES[key]


def names() -> list[str]:
    return sorted({*_BUILTIN, *_FACTORIES})


def _factory(name: str) -> Callable[..., Engine]:
    if name in _FACTORIES:
        return _FACTORIES[name]
    if name not in _BUILTIN:
        raise EngineInputError(f"unknown engine {name!r}; known engines: {', '.join(names())}")
    target, hint = _BUILTIN[name]
    module, attr = target.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        extra = f": install {hint}" if hint else ""
        raise EngineInputError(f"engine {name!r} cannot load ({exc.name} missing){extra}") from exc


def get_engine(name: str, model: str | None = None, params: dict[str, Any] | None = None) -> Engine:
    """One engine instance per (name, model, engine-level params) per process."""
    key = (name, model, json.dumps(params or {}, sort_keys=True, default=str))
    with _LOCK:
        if key not in _INSTANCES:
            _INSTANCES[key] = _factory(name)(model=model, params=params or {})
        return _INSTANCES[key]
