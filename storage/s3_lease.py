"""Leases on S3-compatible storage: a lock object per key, ``<prefix>/.leases/<key>.lock``.

Where the server honours conditional writes (AWS S3, recent MinIO, R2, moto) the lock is
created with ``If-None-Match: *`` and renewed or taken over with ``If-Match`` on its ETag,
so exactly one writer wins. Servers that ignore the condition (rclone's ``serve s3``, old
MinIO) are detected once per store by a probe object, and get the fallback: write the lock
only when none is live, wait ``SETTLE`` seconds, read it back, and hold it only if it is
still ours (the last writer wins, and every loser sees it has lost).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from storage import lease as leases
from storage.base import StorageError, check_key

if TYPE_CHECKING:
    from storage.s3 import S3Store

log = logging.getLogger("reelflow.storage")
LEASES = ".leases"
SETTLE = 0.5


class S3Leases:
    def __init__(self, store: "S3Store"):
        self.store = store
        self._conditional: bool | None = None
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key: str, wait: float | None) -> Iterator[None]:
        name = self.store._name(f"{LEASES}/{check_key(key)}.lock", internal=True)
        me = leases.holder()
        conditional = self.conditional()
        state = {"etag": leases.acquire(key, lambda: self._try(name, me, conditional), wait)}

        def renew() -> None:
            record = {**me, "expires": time.time() + leases.TTL}
            if conditional:
                state["etag"] = self._put(name, record, {"If-Match": f'"{state["etag"]}"'}) or state["etag"]
            elif self._read(name)[0].get("token") == me["token"]:
                self._put(name, record, {})

        beat = leases.Heartbeat(renew, leases.TTL / 4)
        try:
            yield
        finally:
            beat.stop()
            try:
                if conditional or self._read(name)[0].get("token") == me["token"]:
                    self.store._call(f"release lease of {key}",
                                     lambda: self.store.client.remove_object(self.store.bucket, name), 10)
            except StorageError as exc:     # it expires on its own
                log.warning("%s: %s", key, exc)

    def conditional(self) -> bool:
        """Does the server refuse a second If-None-Match: * create? (probed once per store)"""
        with self._lock:
            if self._conditional is None:
                probe = self.store._name(f"{LEASES}/.probe-{uuid.uuid4().hex}", internal=True)
                first = self._put(probe, {}, {"If-None-Match": "*"})
                second = self._put(probe, {}, {"If-None-Match": "*"})
                self.store._discard(probe)
                self._conditional = first is not None and second is None
                if not self._conditional:
                    log.info("%r ignores conditional writes: leases use write, settle and re-read", self.store)
            return self._conditional

    def _try(self, name: str, me: dict, conditional: bool) -> str | None:
        """The lock's ETag (or our token) if we now hold it, else None."""
        if conditional:
            etag = self._put(name, me, {"If-None-Match": "*"})
            if etag is not None:
                return etag
        record, etag = self._read(name)
        if etag is not None and not leases.is_stale(record):
            return None
        if conditional:                      # take over a dead holder's lock, if nobody else did
            return None if etag is None else self._put(name, me, {"If-Match": f'"{etag}"'})
        self._put(name, me, {})
        time.sleep(SETTLE)
        return me["token"] if self._read(name)[0].get("token") == me["token"] else None

    def _read(self, name: str) -> tuple[dict, str | None]:
        """(holder record, ETag) of the lock, or ({}, None) if there is none."""
        from storage.s3 import MissingObject, _read_all

        try:
            data, etag = self.store._call(f"read lease {name}", lambda: _read_all(
                self.store.client.get_object(self.store.bucket, name)))
        except MissingObject:
            return {}, None
        return leases.decode(data), etag

    def _put(self, name: str, record: dict, condition: dict[str, str]) -> str | None:
        """PUT ``record`` under ``condition``; its ETag, or None if the condition failed."""
        from minio.error import S3Error

        body = leases.encode(record)
        headers = {"Content-Type": "application/json", **condition}

        def put():
            try:
                response = self.store.client._execute("PUT", self.store.bucket, name, body=body, headers=headers)
            except S3Error as exc:
                status = exc.response.status if exc.response is not None else None
                if exc.code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                    return None
                raise
            return response.headers.get("etag", "").strip('"') or None

        return self.store._call(f"lease {name}", put)
