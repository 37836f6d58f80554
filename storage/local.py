"""A folder as a clip store (the default): ``REELFLOW_STORAGE=./.reelflow/store``."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from reelflow.errors import DISK_ERRNOS, DISK_HINT, InputError
from storage import lease as leases
from storage.base import StorageError, check_key

LEASES = ".leases"

_UMASK = os.umask(0)
os.umask(_UMASK)


def open_local(url: str, create: bool = True) -> "LocalStore":
    """The registry's ``local`` factory: a folder path or ``file:///path``. ``create=False``
    (readers such as ``reelflow serve``): a folder that does not exist is an InputError naming
    REELFLOW_STORAGE, and nothing is created."""
    from urllib.parse import unquote, urlsplit

    path = url
    if url.lower().startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise InputError(f"REELFLOW_STORAGE={url!r}: a file:// URL names a folder on this machine "
                             f"(file:///path), not on host {parts.netloc!r}")
        path = unquote(parts.path)
    try:
        return LocalStore(path, create=create)
    except InputError as exc:
        raise InputError(f"REELFLOW_STORAGE={url!r}: {exc}") from None


class LocalStore:
    def __init__(self, root: str | Path, create: bool = True):
        """The store in folder ``root``, created (with its parents) unless ``create`` is False:
        then a missing folder is an InputError and nothing is written."""
        self.root = Path(root).expanduser().resolve()
        if not create:
            if self.root.exists() and not self.root.is_dir():
                raise InputError(f"{self.root} is not a folder")
            if not self.root.is_dir():
                raise InputError(f"no such folder {self.root} (a render creates its store: is the path mistyped?)")
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot use {self.root} as the store: {exc.strerror or exc}") from exc

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put_file(self, key: str, src: str | Path, metadata: dict[str, str] | None = None) -> str:
        dest = self.path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        except OSError as exc:         # a read-only or full store, a folder we may not write
            raise StorageError(f"cannot write {dest}: {exc.strerror or exc}", hint=_hint(exc)) from exc
        meta_tmp = None
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            if metadata:   # a unique temporary name: two writers of one key must not share it
                meta = dest.with_name(dest.name + ".meta.json")
                meta_fd, meta_tmp = tempfile.mkstemp(prefix=f".{meta.name}.", suffix=".part", dir=dest.parent)
                with os.fdopen(meta_fd, "w") as out:
                    out.write(json.dumps(metadata, sort_keys=True))
                os.chmod(meta_tmp, 0o666 & ~_UMASK)
                os.replace(meta_tmp, meta)
                meta_tmp = None
            os.replace(tmp, dest)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            if metadata and meta_tmp:
                Path(meta_tmp).unlink(missing_ok=True)
            raise StorageError(f"cannot write {dest}: {exc.strerror or exc}", hint=_hint(exc)) from exc
        return key

    def fetch(self, key: str, workdir: str | Path) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise StorageError(f"{key} is not in {self.root}")
        return path

    def metadata(self, key: str) -> dict[str, str]:
        meta = self.path(key).with_name(self.path(key).name + ".meta.json")
        return json.loads(meta.read_text()) if meta.is_file() else {}

    def url(self, key: str) -> str:
        return str(self.path(key))

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith((".part", ".meta.json"))
            and p.relative_to(self.root).parts[0] != LEASES
        )

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    @contextmanager
    def lease(self, key: str, wait: float | None = None) -> Iterator[None]:
        """Hold ``key``'s lease: an flock on ``.leases/<key>.lock`` (released by the kernel if we die)."""
        path = self.root / LEASES / f"{check_key(key)}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {path.parent}: {exc.strerror or exc}") from exc
        fd = leases.acquire(key, lambda: _try_lock(path), wait)
        try:
            try:
                os.ftruncate(fd, 0)
                os.write(fd, leases.encode(leases.holder()))
            except OSError as exc:         # a full store: the lease holds without its holder's note
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise StorageError(f"cannot write the lease {path}: {exc.strerror or exc}") from exc
            yield
        finally:
            path.unlink(missing_ok=True)     # before the unlock: a waiter that locks the old file retries
            os.close(fd)


def _hint(exc: OSError) -> str | None:
    return DISK_HINT if exc.errno in DISK_ERRNOS else None


def _try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock of the file now at ``path``, or None if someone holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:             # a read-only or full store
        raise StorageError(f"cannot take the lease {path}: {exc.strerror or exc}", hint=_hint(exc)) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        current = os.stat(path).st_ino
    except FileNotFoundError:
        current = None
    if current != os.fstat(fd).st_ino:     # the holder removed it while we waited: take the new one
        os.close(fd)
        return None
    return fd
