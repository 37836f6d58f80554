"""The ClipStore interface: a flat key -> bytes store with atomic publishing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ContextManager, Protocol, runtime_checkable
from reelflow.errors import InfrastructureError, InputError

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


class StorageError(InfrastructureError):
    """The store could not read or write an object."""


class TransientStorageError(StorageError):
    """Connection refused, timeout, 5xx: worth retrying."""


def check_key(key: str) -> str:
    if not _KEY_RE.match(key) or ".." in key.split("/") or key.endswith("/"):
        raise InputError(f"invalid storage key {key!r}")
    return key


@runtime_checkable
class ClipStore(Protocol):
    """Objects under keys like ``clips/<sha256>.mp4``. Writes publish atomically."""

    def exists(self, key: str) -> bool: ...

    def put_file(self, key: str, src: str | Path, metadata: dict[str, str] | None = None) -> str:
        """Publish ``src`` under ``key`` (readers see the whole object or nothing)."""
        ...

    def fetch(self, key: str, workdir: str | Path) -> Path:
        """A local, read-only file with the object's bytes (may be the store's own file)."""
        ...

    def metadata(self, key: str) -> dict[str, str]:
        """The metadata ``put_file`` stored with the object ({} if none)."""
        ...

    def url(self, key: str) -> str:
        """Where a person can open the object (a path, or a presigned link)."""
        ...

    def list(self, prefix: str = "") -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def lease(self, key: str, wait: float | None = None) -> ContextManager[None]:
        """Hold ``key``'s lease (one holder across threads, processes, machines); a holder that
        dies loses it. Waits up to ``wait`` seconds (None: no limit), then ``LeaseTimeout``."""
        ...
