"""Where clips and renders live: a local folder by default, S3-compatible buckets by URL."""

from __future__ import annotations

import threading

from storage.base import ClipStore, StorageError, TransientStorageError, check_key
from storage.local import LocalStore


def open_store(url: str | None = None) -> ClipStore:
    """A store from ``url`` or ``REELFLOW_STORAGE``: a folder path, or ``s3://bucket/prefix``."""
    if url is None:
        from reelflow.settings import get_settings

        url = get_settings().storage
    if url.startswith("s3://"):
        return _s3_store(url)
    return LocalStore(url.removeprefix("file://"))


_S3_STORES: dict = {}
_S3_LOCK = threading.Lock()


def _s3_store(url: str) -> ClipStore:
    """One S3 client per (URL, settings) per process: connection pools are reused."""
    from datetime import timedelta

    from reelflow import secrets
    from reelflow.settings import get_settings

    s = get_settings()
    # The access key ID is an identifier (every presigned link carries it); the secret key is secret.
    access = secrets.resolve(s.s3_access_key, "reelflow-s3-access-key", sensitive=False)
    secret = secrets.resolve(s.s3_secret_key, "reelflow-s3-secret-key")
    ident = (url, s.s3_endpoint, s.s3_region, s.s3_secure, s.s3_public_endpoint, access, secret)
    with _S3_LOCK:
        if ident not in _S3_STORES:
            try:
                from storage.s3 import S3Store
            except ImportError as exc:
                raise StorageError(f"s3:// storage needs the minio SDK: pip install 'reelflow[s3]' ({exc.name} missing)") from exc
            _S3_STORES[ident] = S3Store(
                url, endpoint=s.s3_endpoint, access_key=access, secret_key=secret, region=s.s3_region,
                secure=s.s3_secure, public_endpoint=s.s3_public_endpoint,
                link_expiry=timedelta(hours=s.s3_link_expiry_hours), retention_days=s.s3_retention_days,
                part_size=s.s3_part_size_mb * 1024**2, retry_seconds=s.storage_retry_seconds,
            )
        return _S3_STORES[ident]


__all__ = ["ClipStore", "LocalStore", "StorageError", "TransientStorageError", "check_key", "open_store"]
