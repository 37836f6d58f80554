"""Storage URL schemes -> store implementations, imported only when first used.

    (no scheme), file://   local     a folder on this machine (the default)
    s3://bucket/prefix     s3        MinIO, AWS S3, Cloudflare R2 (REELFLOW_S3_* settings)

Like ``engines.registry``: a scheme maps to ``module:factory`` plus an install hint, and
``register`` adds one (tests, plugins). An unknown scheme (``gs://``, ``ftp://``) is an
InputError naming the known ones, never a local folder called ``gs:``.
"""

from __future__ import annotations

import importlib
import re
import threading
from typing import Callable

from reelflow.errors import InputError
from reelflow.urls import mask_url
from storage.base import ClipStore, StorageError

# scheme -> (import path "module:factory(url) -> ClipStore", install hint)
_BUILTIN: dict[str, tuple[str, str | None]] = {
    "local": ("storage.local:open_local", None),
    "s3": ("storage.s3:open_s3", "'reelflow[s3]' (minio)"),
}
_ALIASES = {"file": "local"}
_FACTORIES: dict[str, Callable[[str], ClipStore]] = {}
_LOCK = threading.Lock()
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def register(scheme: str, factory: Callable[[str], ClipStore]) -> None:
    """Add or replace a scheme: ``factory(url)`` returns a ClipStore."""
    with _LOCK:
        _FACTORIES[scheme] = factory


def unregister(scheme: str) -> None:
    with _LOCK:
        _FACTORIES.pop(scheme, None)


def schemes() -> list[str]:
    return sorted({*_BUILTIN, *_FACTORIES})


def scheme_of(url: str) -> str:
    """``local`` for a path or ``file://``; else the URL's scheme, lower-cased."""
    found = _SCHEME.match(url)
    if not found:
        return "local"
    scheme = found.group(1).lower()
    return _ALIASES.get(scheme, scheme)


def _factory(scheme: str, url: str) -> Callable[[str], ClipStore]:
    if scheme in _FACTORIES:
        return _FACTORIES[scheme]
    if scheme not in _BUILTIN:
        known = ", ".join(f"{s}://" if s != "local" else "a folder path (or file://)" for s in schemes())
        raise InputError(f"REELFLOW_STORAGE={mask_url(url)!r}: unknown storage scheme {scheme + '://'!r}; known: {known}",
                         hint="use a folder path for local storage, or s3://bucket/prefix for MinIO, S3 or R2")
    target, hint = _BUILTIN[scheme]
    module, attr = target.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        extra = f": install {hint}" if hint else ""
        raise StorageError(f"{scheme}:// storage cannot load ({exc.name} missing){extra}") from exc


def open_store(url: str | None = None, create: bool = True) -> ClipStore:
    """A store for ``url`` or the ``REELFLOW_STORAGE`` setting. ``create=False`` (readers such as
    ``reelflow serve``): a local folder must exist already (InputError, nothing created). Other
    schemes open as usual (an S3 bucket that is missing is still created)."""
    if url is None:
        from reelflow.settings import get_settings

        url = get_settings().storage
    url = str(url)
    if not url.strip():
        raise InputError("REELFLOW_STORAGE is empty: give a folder path or s3://bucket/prefix")
    scheme = scheme_of(url)
    if not create and scheme == "local" and "local" not in _FACTORIES:
        from storage.local import open_local

        return open_local(url, create=False)
    return _factory(scheme, url)(url)
