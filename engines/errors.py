"""The one error tree every engine raises. Callers branch on type, never on message.

    EngineError                       anything an engine could not do
    ├── TransientEngineError          timeouts, 429, 5xx, queue full: retry with backoff
    ├── QuotaExceeded                 out of quota; ``wait`` seconds until it resets:
    │                                 wait if short, else fall back to the next engine
    ├── EngineInputError              the request is wrong (bad image, auth, unknown
    │                                 engine/model): never retried, fails fast
    └── InvalidClip                   output failed probing (missing streams, wrong
                                      duration or size, truncated file): retried

Adapters translate their SDK's exceptions at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from reelflow.errors import RenderError

class EngineError(RenderError):
    """Base class: an engine failed to produce a clip."""

    retryable = False


class TransientEngineError(EngineError):
    """A failure that may pass: retry with exponential backoff and jitter."""

    retryable = True


class QuotaExceeded(EngineError):
    """The engine's quota is spent; ``wait`` seconds until it resets (None: unknown)."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class EngineInputError(EngineError):
    """The request cannot succeed as written; retrying will not help."""


class InvalidClip(EngineError):
    """The engine returned something that is not a valid clip; retrying may help."""

    retryable = True


def is_retryable(exc: BaseException | None) -> bool:
    return isinstance(exc, EngineError) and exc.retryable


def falls_back(exc: BaseException | None) -> bool:
    """After retries: may the next engine in the chain take over this clip?"""
    return isinstance(exc, EngineError) and not isinstance(exc, EngineInputError)
