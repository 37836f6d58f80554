"""Per-key leases: one holder of a key at a time, across threads, processes and machines.

A render takes the lease of a clip key before it calls an engine and checks the store again
once it holds it, so two renders of overlapping productions make each clip once: the second
waits, then reuses. Each backend keeps its own lock (``LocalStore``: an flock'ed lock file;
``S3Store``: a lock object created with ``If-None-Match: *`` and kept alive by a heartbeat);
the waiting, the holder record and the staleness rule live here.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TypeVar

from storage.base import TransientStorageError

T = TypeVar("T")
HOST = socket.gethostname()
TTL = 60.0            # a holder that stops renewing loses its lease after this long
POLL = 0.25


class LeaseTimeout(TransientStorageError):
    """Another holder kept the key's lease longer than we could wait."""


def holder(ttl: float = TTL) -> dict:
    """The record a lease holder leaves: who (host, pid), a unique token, until when."""
    return {"token": uuid.uuid4().hex, "host": HOST, "pid": os.getpid(), "expires": time.time() + ttl}


def encode(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True).encode()


def decode(data: bytes) -> dict:
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def same_process_alive(pid: int, started: datetime) -> bool:
    """Is ``pid`` alive and not a newer process that reused the number (it started after ``started``)?"""
    if not pid_alive(pid):
        return False
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return True                       # no /proc: trust the pid
    began = boot + ticks / os.sysconf("SC_CLK_TCK")
    when = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
    return began <= when.timestamp() + 1


def is_stale(record: dict, now: float | None = None) -> bool:
    """Expired, unreadable, or held by a process of this host that is gone."""
    if not record:
        return True
    if float(record.get("expires", 0)) < (now or time.time()):
        return True
    return record.get("host") == HOST and isinstance(record.get("pid"), int) and not pid_alive(record["pid"])


def acquire(key: str, attempt: Callable[[], T | None], wait: float | None) -> T:
    """Call ``attempt`` until it returns a handle; LeaseTimeout after ``wait`` seconds (None: no limit)."""
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        handle = attempt()
        if handle is not None:
            return handle
        if deadline is not None and time.monotonic() >= deadline:
            raise LeaseTimeout(f"{key}: still leased by another render after {wait:.0f} s",
                               hint="another render is making this clip; run again when it is done")
        time.sleep(POLL * random.uniform(0.5, 1.5))


class Heartbeat:
    """Calls ``renew`` every ``interval`` seconds in a daemon thread until stopped."""

    def __init__(self, renew: Callable[[], None], interval: float):
        self._renew, self._interval = renew, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reelflow-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._renew()
            except Exception:  # noqa: BLE001 - a missed renewal only shortens the lease
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
