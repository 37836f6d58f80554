"""What each engine accepts in ``engine.params``: data, checked by ``validate``.

Two rules, both enforced before a render starts:

* ``OWNED`` keys are what an adapter fills from the checked scene (the prompt, the
  character image, the speech audio, under every family's own name). Params may never
  set them: the prompt that was validated is the prompt that is sent.
* ``DECLARED`` maps engine -> {param: type}. A declared engine rejects unknown params
  ("did you mean"), unless it passes extra params through to a remote service
  (``PASSTHROUGH``); values must have the declared type (no bool for a number).
"""

from __future__ import annotations

import difflib
from typing import Any

from engines import families

# Every name an adapter gives the prompt, the image or the audio (engines.adapters,
# engines.hf_space.ARGUMENTS, the runpod worker's schema), plus ClipRequest's own fields.
OWNED = frozenset({
    "prompt", "text_prompt", "caption", "image", "reference_image", "audio", "audio2",
    "audio_1", "audio_2", "input",
})

NUMBER = (int, float)
DECLARED: dict[str, dict[str, Any]] = {
    "animatic": {},
    "local": families.declared_params(),       # built from the model families' data
    "runpod": {
        "endpoint": str, "family": str, "timeout": NUMBER, "mode": str, "sample_steps": int,
        "video_guidance_scale": NUMBER, "audio_guidance_scale": NUMBER, "sampling_steps": int,
        "width": int, "height": int, "num_frames": int, "fps": NUMBER,
    },
    "hf-space": {"space": str, "api_name": str, "arguments": dict, "timeout": NUMBER, "sample_steps": int},
}
PASSTHROUGH = frozenset({"runpod"})     # extra params go to the endpoint as they are
HF_ARGUMENT_ROLES = ("prompt", "steps", "image")
_SCALARS = (str, int, float, bool, type(None))


def _type_name(kind: Any) -> str:
    if kind == NUMBER:       # by value: the local engine's families declare their own (int, float)
        return "a number"
    return {str: "text", int: "an integer", bool: "true or false", dict: "a mapping"}.get(kind, str(kind))


def _is(value: Any, kind: Any) -> bool:
    if isinstance(value, bool) and kind is not bool:
        return False
    return isinstance(value, kind)


def _plain(value: Any, depth: int = 0) -> bool:
    """JSON-like data only (what a payload can carry)."""
    if isinstance(value, _SCALARS):
        return True
    if depth > 4:
        return False
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def check_params(engine: str, params: dict[str, Any], model: str | None = None) -> list[tuple[str, str]]:
    """(param name, problem) for each param ``engine`` would not accept (for ``model``, where the engine
    declares per-model rules: the local engine's families, read from the model folder)."""
    problems: list[tuple[str, str]] = []
    declared = DECLARED.get(engine)
    for name, value in params.items():
        if name in OWNED:
            problems.append((name, f"{name!r} is set by reelflow from the scene (the checked prompt, image and "
                                   "audio); engine params cannot override it"))
            continue
        if declared is None:
            if not _plain(value):
                problems.append((name, "must be text, a number, true/false, a list or a mapping"))
            continue
        if name not in declared:
            if engine in PASSTHROUGH:
                if not _plain(value):
                    problems.append((name, "must be text, a number, true/false, a list or a mapping"))
                continue
            close = difflib.get_close_matches(name, declared, n=1)
            known = ", ".join(sorted(declared)) or "none"
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append((name, f"the {engine} engine has no param {name!r}; {hint}it takes: {known}"))
        elif not _is(value, declared[name]):
            problems.append((name, f"must be {_type_name(declared[name])}, not {type(value).__name__}"))
        elif engine == "hf-space" and name == "arguments":
            problems += _check_arguments(value)
    if engine in DECLARED:             # the engine's own rules, for every param not already refused
        from engines import registry

        bad = {name for name, _ in problems}
        problems += [(name, problem) for name, problem in
                     registry.param_problems(engine, model, {k: v for k, v in params.items() if k not in bad})
                     if name.split(".")[0] not in bad]
    return problems


def _check_arguments(value: dict) -> list[tuple[str, str]]:
    problems = []
    names = [v for v in value.values() if isinstance(v, str)]
    if len(set(names)) != len(names):
        problems.append(("arguments", "two roles are mapped to the same Space argument"))
    for role, argument in value.items():
        if role not in HF_ARGUMENT_ROLES:
            problems.append((f"arguments.{role}", f"unknown role; one of {', '.join(HF_ARGUMENT_ROLES)}"))
        elif not isinstance(argument, str):
            problems.append((f"arguments.{role}", "must be the Space's argument name (text)"))
    return problems


def suggest(name: str, known: list[str]) -> str:
    """``unknown engine 'x'; did you mean 'y'? (known: ...)``"""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown engine {name!r}{hint} (known: {', '.join(known)})"
