"""S3-compatible object storage (MinIO, AWS S3, Cloudflare R2) with the ``minio`` SDK.

``REELFLOW_STORAGE=s3://bucket/prefix``; connection from the ``REELFLOW_S3_*`` settings.
Writes go to ``<prefix>/.tmp/<uuid>`` by multipart upload, then a server-side copy
publishes them under the final key, so no reader ever sees a partial object. Refused
connections, timeouts and 5xx answers are retried with backoff for up to
``REELFLOW_STORAGE_RETRY_SECONDS``; refused credentials fail at once with a clear error.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Callable, ContextManager, TypeVar
from urllib.parse import urlparse

from reelflow.errors import InputError
from reelflow.urls import mask_url
from storage.base import StorageError, TransientStorageError, check_key

log = logging.getLogger("reelflow.storage")
T = TypeVar("T")

_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed",
                    "OperationAborted", "XMinioServerNotInitialized"}
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationHeaderMalformed",
               "InvalidToken", "ExpiredToken"}
_MISSING_CODES = {"NoSuchKey", "NoSuchObject", "ResourceNotFound", "NotFound"}
_COPY_LIMIT = 5 * 1024**3
OPEN_RETRY_SECONDS = 10.0
LEASES = ".leases"          # lock objects (storage.s3_lease), never listed


def parse_endpoint(endpoint: str, secure: bool | None) -> tuple[str, bool]:
    """(host[:port], https?) from ``host:port`` or a URL; R2/AWS URLs work as given."""
    if "://" in endpoint:
        url = urlparse(endpoint)
        return url.netloc, (url.scheme == "https") if secure is None else secure
    return endpoint.rstrip("/"), True if secure is None else secure


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _check_location(url: str, bucket: str, prefix: str) -> None:
    """Refuse, before any client is built, what S3 (and minio's SDK) cannot address."""
    where = f"REELFLOW_STORAGE={mask_url(url)!r}"
    if "@" in bucket or ":" in bucket:
        raise InputError(f"{where}: credentials do not go in the storage URL; set REELFLOW_S3_ACCESS_KEY "
                         "and REELFLOW_S3_SECRET_KEY")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InputError(f"{where}: {bucket!r} is not an S3 bucket name (3-63 characters: lower-case letters, "
                         "digits, dots and hyphens, starting and ending with a letter or digit)")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise InputError(f"{where}: the prefix {prefix!r} has an empty, '.' or '..' segment")


def _check_endpoint(name: str, endpoint: str) -> None:
    setting = f"{name}={mask_url(endpoint)!r}"
    try:
        parts = urlparse(endpoint if "://" in endpoint else f"//{endpoint}")
    except ValueError:                                  # 'http://[::1': an unclosed IPv6 address
        raise InputError(f"{setting}: not an S3 endpoint (host, host:port or http(s)://host:port)") from None
    if "@" in parts.netloc:
        raise InputError(f"{setting}: credentials do not go in the endpoint; set REELFLOW_S3_ACCESS_KEY "
                         "and REELFLOW_S3_SECRET_KEY")
    try:
        port_ok = parts.port != 0                       # urllib refuses a port past 65535 or not a number
    except ValueError:
        port_ok = False
    host_ok = re.fullmatch(r"[a-z0-9.-]+|[0-9a-f:.]+", parts.hostname or "")   # a name, IPv4 or IPv6
    if parts.scheme not in ("", "http", "https") or not port_ok or not host_ok or parts.path.strip("/"):
        raise InputError(f"{setting}: not an S3 endpoint (host, host:port or http(s)://host:port)")


class S3Store:
    def __init__(
        self,
        url: str,
        *,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        region: str | None = None,
        secure: bool | None = None,
        public_endpoint: str | None = None,
        link_expiry: timedelta = timedelta(days=7),
        retention_days: int | None = None,
        part_size: int = 16 * 1024**2,
        retry_seconds: float = 120.0,
        timeout: float = 60.0,
    ):
        import urllib3
        from minio import Minio

        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InputError(f"REELFLOW_STORAGE={mask_url(url)!r} must look like s3://bucket/prefix")
        _check_location(url, parsed.netloc, parsed.path.strip("/"))
        _check_endpoint("REELFLOW_S3_ENDPOINT", endpoint)
        if public_endpoint:
            _check_endpoint("REELFLOW_S3_PUBLIC_ENDPOINT", public_endpoint)
        if not access_key or not secret_key:
            raise StorageError(
                "S3 storage needs credentials: set REELFLOW_S3_ACCESS_KEY and REELFLOW_S3_SECRET_KEY, "
                "or create the Prefect Secret blocks 'reelflow-s3-access-key' and 'reelflow-s3-secret-key'"
            )
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.endpoint, self.secure = parse_endpoint(endpoint, secure)
        self.region = region
        self.part_size = part_size
        self.retry_seconds = retry_seconds
        self.link_expiry = link_expiry
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=timeout),
            retries=False,  # one retry loop, ours (``_call``), which knows the deadline
            maxsize=16,
        )
        self.client = Minio(self.endpoint, access_key=access_key, secret_key=secret_key,
                            region=region, secure=self.secure, http_client=http)
        # The host is part of a presigned link's signature: sign with the public host.
        pub_host, pub_secure = parse_endpoint(public_endpoint or endpoint, secure)
        self._signer = Minio(pub_host, access_key=access_key, secret_key=secret_key,
                             region=region or "us-east-1", secure=pub_secure)
        self._leases = None
        self._ensure_bucket(retention_days)

    def __repr__(self) -> str:
        return f"S3Store(s3://{self.bucket}/{self.prefix} at {self.endpoint})"

    # -- plumbing ---------------------------------------------------------------------------

    def _name(self, key: str, *, internal: bool = False) -> str:
        if not internal:
            check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[[], T], retry_seconds: float | None = None) -> T:
        """Run ``fn``; retry connection faults, timeouts and 5xx with backoff until the deadline."""
        retry_seconds = self.retry_seconds if retry_seconds is None else retry_seconds
        deadline = time.monotonic() + retry_seconds
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised as our own errors
                kind, detail = classify(exc)
                if kind == "auth":
                    raise StorageError(
                        f"{what}: {self.endpoint} refused the credentials ({detail}); check "
                        f"REELFLOW_S3_ACCESS_KEY / REELFLOW_S3_SECRET_KEY and the bucket's policy"
                    ) from None
                if kind == "missing":
                    raise MissingObject(f"{what}: not found ({detail})") from None
                if kind == "fatal":
                    raise StorageError(f"{what}: {detail}") from None
            attempt += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransientStorageError(f"{what}: {detail} (gave up after {retry_seconds:.0f} s)",
                                            hint=f"is the S3 server at {self.endpoint} running? "
                                                 "(REELFLOW_S3_ENDPOINT)") from None
            pause = min(left, min(10.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.0))
            log.warning("%s: %s; retrying in %.1f s", what, detail, pause)
            time.sleep(pause)

    def _ensure_bucket(self, retention_days: int | None) -> None:
        try:
            # A store that cannot be reached when it is opened fails soon (a closed port, a wrong
            # endpoint); once open, outages are waited out for the full retry budget.
            exists = self._call(f"check bucket {self.bucket} at {self.endpoint}",
                                lambda: self.client.bucket_exists(self.bucket), min(self.retry_seconds, OPEN_RETRY_SECONDS))
        except MissingObject:
            exists = False
        if not exists:
            try:
                self._call(f"create bucket {self.bucket}",
                           lambda: self.client.make_bucket(self.bucket, location=self.region))
            except StorageError:
                # Another worker may have created it between our check and our create (409).
                if not self._call(f"check bucket {self.bucket}", lambda: self.client.bucket_exists(self.bucket)):
                    raise
        if retention_days:
            self._call(f"set lifecycle on {self.bucket}", lambda: self.client.set_bucket_lifecycle(
                self.bucket, lifecycle(self.prefix, retention_days)))

    # -- ClipStore --------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def stat(self, key: str):
        name = self._name(key)
        try:
            return self._call(f"stat {key}", lambda: self.client.stat_object(self.bucket, name))
        except MissingObject:
            return None

    def put_file(self, key: str, src: str | Path, metadata: dict[str, str] | None = None) -> str:
        from minio.commonconfig import ComposeSource, CopySource

        final = self._name(key)
        tmp = self._name(f".tmp/{uuid.uuid4().hex}-{Path(key).name}", internal=True)
        size = Path(src).stat().st_size
        meta = {k: str(v) for k, v in (metadata or {}).items()}
        self._call(f"upload {key}", lambda: self.client.fput_object(
            self.bucket, tmp, str(src), metadata=meta or None, part_size=self.part_size,
            content_type=_content_type(key)))
        try:
            if size <= _COPY_LIMIT:
                self._call(f"publish {key}", lambda: self.client.copy_object(
                    self.bucket, final, CopySource(self.bucket, tmp)))
            else:
                self._call(f"publish {key}", lambda: self.client.compose_object(
                    self.bucket, final, [ComposeSource(self.bucket, tmp)], metadata=meta or None))
        except BaseException:
            self._discard(tmp)      # one quick try: the publish error is the one to report
            raise
        try:
            self._call(f"clean up {tmp}", lambda: self.client.remove_object(self.bucket, tmp))
        except StorageError as exc:  # published all the same; .tmp/ leftovers expire by lifecycle
            log.warning("%s: %s", key, exc)
        return key

    def _discard(self, name: str) -> None:
        try:
            self.client.remove_object(self.bucket, name)
        except Exception:  # noqa: BLE001 - best effort; the original error matters more
            pass

    def fetch(self, key: str, workdir: str | Path) -> Path:
        dest = Path(workdir) / Path(key).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._call(f"download {key}", lambda: self.client.fget_object(self.bucket, self._name(key), str(dest)))
        except MissingObject:
            raise StorageError(f"{key} is not in s3://{self.bucket}/{self.prefix}") from None
        return dest

    def metadata(self, key: str) -> dict[str, str]:
        stat = self.stat(key)
        if stat is None:
            return {}
        return {k.lower().removeprefix("x-amz-meta-"): v for k, v in (stat.metadata or {}).items()
                if k.lower().startswith("x-amz-meta-")}

    def url(self, key: str) -> str:
        return self._signer.presigned_get_object(self.bucket, self._name(key), expires=self.link_expiry)

    def list(self, prefix: str = "") -> list[str]:
        base = self._name(prefix) if prefix else self.prefix
        strip = f"{self.prefix}/" if self.prefix else ""
        objects = self._call(f"list {prefix or '/'}", lambda: list(
            self.client.list_objects(self.bucket, prefix=base or None, recursive=True)))
        return sorted(o.object_name.removeprefix(strip) for o in objects
                      if not o.object_name.removeprefix(strip).startswith((".tmp/", f"{LEASES}/")))

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", lambda: self.client.remove_object(self.bucket, self._name(key)))

    # -- leases -----------------------------------------------------------------------------

    def lease(self, key: str, wait: float | None = None) -> ContextManager[None]:
        """Hold ``key``'s lease: a lock object under ``.leases/`` (see ``storage.s3_lease``)."""
        from storage.s3_lease import S3Leases

        if self._leases is None:
            self._leases = S3Leases(self)
        return self._leases.hold(key, wait)


_STORES: dict[tuple, "S3Store"] = {}
_STORES_LOCK = threading.Lock()


def open_s3(url: str) -> "S3Store":
    """The registry's ``s3`` factory: one client per (URL, settings) per process, pools reused."""
    from reelflow import secrets
    from reelflow.settings import get_settings

    s = get_settings()
    # The access key ID is an identifier (every presigned link carries it); the secret key is secret.
    access = secrets.resolve(s.s3_access_key, "reelflow-s3-access-key", sensitive=False)
    secret = secrets.resolve(s.s3_secret_key, "reelflow-s3-secret-key")
    ident = (url, s.s3_endpoint, s.s3_region, s.s3_secure, s.s3_public_endpoint, access, secret)
    with _STORES_LOCK:
        if ident not in _STORES:
            try:
                import minio  # noqa: F401
            except ImportError as exc:
                raise StorageError(f"s3:// storage needs the minio SDK: pip install 'reelflow[s3]' ({exc.name} missing)") from exc
            _STORES[ident] = S3Store(
                url, endpoint=s.s3_endpoint, access_key=access, secret_key=secret, region=s.s3_region,
                secure=s.s3_secure, public_endpoint=s.s3_public_endpoint,
                link_expiry=timedelta(hours=s.s3_link_expiry_hours), retention_days=s.s3_retention_days,
                part_size=s.s3_part_size_mb * 1024**2, retry_seconds=s.storage_retry_seconds,
            )
        return _STORES[ident]


def forget_clients() -> None:
    """Drop the cached clients (settings changed, e.g. in tests)."""
    with _STORES_LOCK:
        _STORES.clear()


class MissingObject(StorageError):
    """The bucket or object does not exist."""


def classify(exc: BaseException) -> tuple[str, str]:
    """('auth' | 'missing' | 'transient' | 'fatal', detail) for an exception from the minio SDK.

    minio raises S3Error for XML error bodies, ServerError for 5xx without one, and
    InvalidResponseError when a server's Content-Type is not exactly XML (rclone's is
    ``text/xml; charset=utf-8``): the status and S3 code are read from each alike.
    """
    import urllib3
    from minio.error import InvalidResponseError, S3Error, ServerError

    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        reason = getattr(exc, "reason", None) or exc
        kind = "timed out" if "timed out" in str(reason).lower() else "connection refused or reset"
        return "transient", f"{type(reason).__name__} ({kind})"
    status, code = None, None
    if isinstance(exc, S3Error):
        code = exc.code
        status = exc.response.status if exc.response is not None else None
    elif isinstance(exc, ServerError):
        status = exc.status_code
    elif isinstance(exc, InvalidResponseError):
        status = getattr(exc, "_code", None)
        found = re.search(r"<Code>([^<]+)</Code>", getattr(exc, "_body", "") or str(exc))
        code = found.group(1) if found else None
    else:
        raise exc
    detail = f"HTTP {status}" + (f" {code}" if code else "")
    if code in _AUTH_CODES or status in (401, 403):
        return "auth", detail
    if code in _MISSING_CODES or code == "NoSuchBucket" or status == 404:
        return "missing", detail
    if code in _TRANSIENT_CODES or status in (408, 429) or (status or 0) >= 500:
        return "transient", detail
    return "fatal", detail


def _read_all(response) -> tuple[bytes, str]:
    """(body, ETag) of a get_object response."""
    try:
        return response.read(), response.headers.get("etag", "").strip('"')
    finally:
        response.close()
        response.release_conn()


def lifecycle(prefix: str, days: int):
    """Expire ``clips/`` after ``days``; drop leftovers of interrupted uploads after a day."""
    from minio.commonconfig import ENABLED, Filter
    from minio.lifecycleconfig import AbortIncompleteMultipartUpload, Expiration, LifecycleConfig, Rule

    base = f"{prefix}/" if prefix else ""
    return LifecycleConfig([
        Rule(ENABLED, rule_filter=Filter(prefix=f"{base}clips/"), rule_id="reelflow-clips-retention",
             expiration=Expiration(days=days)),
        Rule(ENABLED, rule_filter=Filter(prefix=f"{base}.tmp/"), rule_id="reelflow-tmp-cleanup",
             expiration=Expiration(days=1),
             abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(1)),
    ])


def _content_type(key: str) -> str:
    return {".mp4": "video/mp4", ".mov": "video/quicktime", ".png": "image/png", ".srt": "application/x-subrip",
            ".vtt": "text/vtt", ".wav": "audio/wav"}.get(Path(key).suffix.lower(), "application/octet-stream")
