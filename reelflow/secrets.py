"""Secrets from the environment or Prefect Secret blocks, and redaction of their values.

A secret's value never goes into a log line, an artifact, an exception or the catalog:
every text that leaves the process through those paths passes ``redact`` first, and
before anything is cut to length (``clip``): a secret cut in half no longer matches.
``redact`` also hides any run of characters that shares 8 or more consecutive characters
with a known secret (an engine may echo part of a key).
"""

from __future__ import annotations

import logging
import os
import re
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
    from reelflow.orchestrator import configured_api_url

    if not configured_api_url():
        return None  # no server to ask; don't start an ephemeral one just to find nothing
    try:
        from prefect.blocks.system import Secret

        value = str(Secret.load(name).get())
    except Exception:  # noqa: BLE001 - a missing block is simply "not configured"
        return None
    with _LOCK:
        _BLOCKS[name] = value
    return value


FRAGMENT = 8
_RUN = re.compile(r"[^\s'\"<>(){}\[\],;|`]{%d,}" % FRAGMENT)
_GRAMS: dict[tuple[str, ...], frozenset[str]] = {}


def _grams(known: tuple[str, ...]) -> frozenset[str]:
    if known not in _GRAMS:
        _GRAMS.clear()
        _GRAMS[known] = frozenset(v[i:i + FRAGMENT] for v in known for i in range(len(v) - FRAGMENT + 1))
    return _GRAMS[known]


def redact(text: object) -> str:
    """``text`` with every known secret value, and every run sharing 8+ characters with one, as ``***``."""
    out = str(text)
    with _LOCK:
        known = tuple(sorted(_KNOWN | {os.environ[k] for k in ENV_SECRETS if len(os.environ.get(k, "")) >= 6},
                             key=len, reverse=True))
    if not known:
        return out
    for value in known:
        out = out.replace(value, "***")
    grams = _grams(known)
    if not grams:
        return out

    def hide(match: re.Match) -> str:
        run = match.group(0)
        leaks = any(run[i:i + FRAGMENT] in grams for i in range(len(run) - FRAGMENT + 1))
        return "***" if leaks else run

    return _RUN.sub(hide, out)


def clip(text: object, limit: int) -> str:
    """Redact, then cut to ``limit`` characters (never the other way round)."""
    out = redact(text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def redact_exception(exc: BaseException) -> BaseException:
    """Redact the text of ``exc`` and of every exception chained to it, in place."""
    seen: set[int] = set()
    current: BaseException | None = exc
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        if args != current.args:
            try:
                current.args = args
            except (AttributeError, TypeError):   # pragma: no cover - exotic exception types
                pass
        stack += [current.__cause__, current.__context__]
    return exc


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None:
            redact_exception(record.exc_info[1])
            record.exc_text = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_log_redaction(*names: str) -> None:
    """Add the redacting filter to the handlers of these loggers (default: root and Prefect's)."""
    for name in names or ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "reelflow"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
