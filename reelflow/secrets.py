"""Secrets from the environment or Prefect Secret blocks, and redaction of their values.

A secret's value never goes into a log line, an artifact, an exception or the catalog:
every text that leaves the process through those paths passes ``redact`` first.
"""

from __future__ import annotations

import os
import threading

from pydantic import SecretStr

_KNOWN: set[str] = set()
_LOCK = threading.Lock()
ENV_SECRETS = ("HF_TOKEN", "RUNPOD_API_KEY", "REELFLOW_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")


def remember(value: str | None) -> str | None:
    """Register a secret value so ``redact`` hides it (short values are too common to hide)."""
    if value and len(value) >= 6:
        with _LOCK:
            _KNOWN.add(value)
    return value


def resolve(value: SecretStr | str | None, block: str, env: str | None = None, *, sensitive: bool = True) -> str | None:
    """The secret from a setting, an environment variable, or the Prefect Secret block ``block``."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value and env:
        value = os.environ.get(env)
    if not value:
        value = _from_block(block)
    return remember(value) if sensitive else value


_BLOCKS: dict[str, str] = {}


def _from_block(name: str) -> str | None:
    """The Prefect Secret block ``name`` (found values are kept for the process)."""
    if name in _BLOCKS:
        return _BLOCKS[name]
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None  # no server to ask; don't start an ephemeral one just to find nothing
    try:
        from prefect.blocks.system import Secret

        value = str(Secret.load(name).get())
    except Exception:  # noqa: BLE001 - a missing block is simply "not configured"
        return None
    with _LOCK:
        _BLOCKS[name] = value
    return value


def redact(text: object) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    out = str(text)
    with _LOCK:
        known = sorted(_KNOWN | {os.environ[k] for k in ENV_SECRETS if len(os.environ.get(k, "")) >= 6},
                       key=len, reverse=True)
    for value in known:
        out = out.replace(value, "***")
    return out
