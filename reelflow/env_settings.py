"""Settings models filled from ``REELFLOW_*`` environment variables.

``reelflow.settings`` and ``engines.settings`` are plain pydantic models read through
:func:`from_environment`: a field ``work_dir`` is ``REELFLOW_WORK_DIR`` (any case), a dict or list
field is JSON, everything else is validated from its string as pydantic does. A bad value is one
:class:`~reelflow.errors.InputError` naming the variable, its value left out where it may be a
secret; never a traceback. (pydantic-settings did this before; its imports weighed 70 ms under
``-X importtime``, and a variable holding bad JSON escaped as a ``SettingsError`` traceback.)
"""

from __future__ import annotations

import json
import os
import typing
from typing import TypeVar

from pydantic import BaseModel, ValidationError

PREFIX = "REELFLOW_"
_PRIVATE = ("SECRET", "KEY", "TOKEN", "PASSWORD", "URL")
M = TypeVar("M", bound=BaseModel)


def from_environment(model: type[M], environ: typing.Mapping[str, str] | None = None) -> M:
    """``model`` from the environment (``environ``, default ``os.environ``)."""
    found = {name.upper(): value for name, value in (os.environ if environ is None else environ).items()
             if name.upper().startswith(PREFIX)}
    values: dict[str, object] = {}
    problems: list[str] = []
    for name, field in model.model_fields.items():
        variable = PREFIX + name.upper()
        if variable not in found:
            continue
        raw = found[variable]
        if _structured(field.annotation):
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                problems.append(f"{variable}: not valid JSON ({getattr(exc, 'msg', exc)}){_shown(variable, raw)}")
            continue
        values[name] = raw
    if not problems:
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors():
                variable = PREFIX + str(error["loc"][0]).upper() if error["loc"] else PREFIX
                problems.append(f"{variable}: {error['msg']}{_shown(variable, error.get('input'))}")
    from reelflow.errors import InputError

    raise InputError("; ".join(problems))


def _shown(variable: str, value: object) -> str:
    private = any(word in variable for word in _PRIVATE)
    return "" if private else f" (got {str(value)[:80]!r})"


def _structured(annotation: object) -> bool:
    """A field whose variable holds JSON: a dict, list, set, tuple or model (optional or not)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return any(_structured(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    kind = origin or annotation
    return isinstance(kind, type) and (issubclass(kind, (dict, list, set, tuple, BaseModel)))
