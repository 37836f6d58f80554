"""Where clips and renders live: a local folder by default, S3-compatible buckets by URL."""

from __future__ import annotations

from storage.base import ClipStore, StorageError, TransientStorageError, check_key
from storage.local import LocalStore


def open_store(url: str | None = None) -> ClipStore:
    """A store from ``url`` or ``REELFLOW_STORAGE``: a folder path, or ``s3://bucket/prefix``."""
    if url is None:
        from reelflow.settings import get_settings

        url = get_settings().storage
    if url.startswith("s3://"):
        raise StorageError("s3:// storage needs the S3 backend, which this version does not have yet")
    return LocalStore(url.removeprefix("file://"))


__all__ = ["ClipStore", "LocalStore", "StorageError", "TransientStorageError", "check_key", "open_store"]
