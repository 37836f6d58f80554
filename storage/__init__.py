"""Where clips and renders live: a local folder by default, S3-compatible buckets by URL (``registry``)."""

from __future__ import annotations

from storage.base import ClipStore, StorageError, TransientStorageError, check_key
from storage.local import LocalStore
from storage.registry import open_store, register, schemes, unregister

__all__ = ["ClipStore", "LocalStore", "StorageError", "TransientStorageError", "check_key", "open_store",
           "register", "schemes", "unregister"]
