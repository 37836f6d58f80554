"""Answers about a local file kept by the file's identity, for later commands.

Some answers cost a read of the whole file (a SHA-256 of footage) or a probe and test decode,
at every command, for files that rarely change. :class:`FileMemo` keeps such an answer (a short
string) in memory for the process and as a small file under ``<work_dir>/cache/<name>``, keyed
by the file's identity: real path, device, inode, size, mtime and ctime. Any write to the file,
or a rename over it, changes that identity, and ctime cannot be set from user space, so a kept
answer is never one about other bytes. The cache is derived data: delete it at any time.

A kept answer, like every derived file kept with :func:`keep_checked`, carries the SHA-256 of
its content, and is read back with :func:`read_checked`: a file damaged after it was kept (a
disk error, a sync tool, a person) is not trusted but computed again. A ``check`` given to
:class:`FileMemo` also refuses an answer that cannot be one (a digest that is not hex, a
duration that is not a finite number).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from pathlib import Path
from typing import Callable


def identity(path: str | os.PathLike) -> tuple | None:
    """What changes whenever the file's bytes may have: None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileMemo:
    """One kind of answer (``name``; ``version``: bump when the answer for the same bytes changes;
    ``check``: whether a kept answer can be one, else it is computed again)."""

    def __init__(self, name: str, version: int = 1, check: Callable[[str], bool] | None = None):
        self.name, self.version, self.check = name, version, check
        self._memory: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def answer(self, path: str | os.PathLike, compute: Callable[[], str], *extra: str) -> str:
        """The kept answer for ``path`` (and ``extra``: what else the answer depends on), else
        ``compute()``'s, kept. A file that cannot be stat'ed is not kept."""
        found = identity(path)
        if found is None:
            return compute()
        key = (*found, *extra, self.version)
        with self._lock:
            if key in self._memory:
                return self._memory[key]
        target = self._file(key)
        value = self._read(target)
        if value is None:
            value = compute()
            self._write(target, value)
        with self._lock:
            self._memory[key] = value
        return value

    def remember(self, path: str | os.PathLike, value: str, *extra: str) -> None:
        """Keep ``value`` as the answer for ``path`` as it is now (one known without computing it:
        a file this process just wrote and checked)."""
        found = identity(path)
        if found is None:
            return
        key = (*found, *extra, self.version)
        self._write(self._file(key), value)
        with self._lock:
            self._memory[key] = value

    def forget(self) -> None:
        """Drop the answers kept in memory (the next call reads the disk: a later command's view)."""
        with self._lock:
            self._memory.clear()

    def _file(self, key: tuple) -> Path:
        from reelflow.settings import get_settings

        name = hashlib.sha256(repr(key).encode()).hexdigest()[:40]
        return Path(get_settings().work_dir) / "cache" / self.name / name

    def _read(self, target: Path) -> str | None:
        data = read_checked(target)
        try:
            value = data.decode("utf-8") if data is not None else None
        except UnicodeDecodeError:
            return None
        return value if value is not None and (self.check is None or self.check(value)) else None

    @staticmethod
    def _write(target: Path, value: str) -> None:
        keep_checked(target, value.encode("utf-8"))


CHECKED = b"reelflow-sha256 "     # the first line of a file kept by keep_checked: this, then the digest


def keep_checked(target: Path, data: bytes) -> bool:
    """:func:`keep_file` of ``data`` behind a line holding its SHA-256 (read with :func:`read_checked`)."""
    return keep_file(target, CHECKED + hashlib.sha256(data).hexdigest().encode() + b"\n" + data)


def read_checked(target: Path) -> bytes | None:
    """What :func:`keep_checked` kept in ``target``; None when it is missing, unreadable, or
    not what was kept (damaged, cut short, or written by something else): compute it again."""
    try:
        raw = target.read_bytes()
    except OSError:
        return None
    head, _, data = raw.partition(b"\n")
    if not head.startswith(CHECKED) or head[len(CHECKED):] != hashlib.sha256(data).hexdigest().encode():
        return None
    return data


def finite(text: str, low: float = -math.inf, high: float = math.inf) -> bool:
    """Is ``text`` one finite number within [``low``, ``high``]?"""
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and low <= value <= high


def keep_file(target: Path, data: bytes) -> bool:
    """Write derived data (a cache entry) whole or not at all: a part file named for this process
    and thread, renamed into place. A read-only or full disk costs the next command the work,
    nothing else: False, no error."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
        part.write_bytes(data)
        os.replace(part, target)
        return True
    except OSError:
        return False
