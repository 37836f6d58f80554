"""Clip engines behind one small interface, and the error tree they share."""

from engines.base import ClipRequest, ClipResult, Engine, file_digest
from engines.errors import (
    EngineError,
    EngineInputError,
    InvalidClip,
    QuotaExceeded,
    TransientEngineError,
    falls_back,
    is_retryable,
)
from engines.registry import get_engine, names, register, unregister

__all__ = [
    "ClipRequest", "ClipResult", "Engine", "EngineError", "EngineInputError", "InvalidClip",
    "QuotaExceeded", "TransientEngineError", "falls_back", "file_digest", "get_engine",
    "is_retryable", "names", "register", "unregister",
]
