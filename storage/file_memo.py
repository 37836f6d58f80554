"""Answers about a local file kept by the file's identity, for later commands.

Some answers cost a read of the whole file (a SHA-256 of footage) or a probe and test decode,
at every command, for files that rarely change. :class:`FileMemo` keeps such an answer (a short
string) in memory for the process and as a small file under ``<work_dir>/cache/<name>``, keyed
by the file's identity: real path, device, inode, size, mtime and ctime. Any write to the file,
or a rename over it, changes that identity, and ctime cannot be set from user space, so a kept
answer is never one about other bytes. The cache is derived data: delete it at any time.
"""

from __future__ import annotations

import hashlib
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
    """One kind of answer (``name``; ``version``: bump when the answer for the same bytes changes)."""

    def __init__(self, name: str, version: int = 1):
        self.name, self.version = name, version
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
        try:
            value = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
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

    @staticmethod
    def _write(target: Path, value: str) -> None:
        keep_file(target, value.encode("utf-8"))


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
