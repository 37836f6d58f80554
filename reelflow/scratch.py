"""Scratch folders: each process's own, under ``<work_dir>/scratch/<host>.<pid>.<start>``.

A render's clips, normalisations, stitch and publish work in temporary folders that it removes
as it goes; a render that is SIGKILLed (the OOM killer, a lost machine) cannot. So every process
puts them under one folder named for it (host, pid and the pid's start time, so a reused pid is
not taken for it), and a later render removes the folders of this host's processes that are
gone. A live render's folder is never touched: two renders can run at once on one work folder.
Folders of other hosts (a work folder shared over NFS) are left to their own hosts' renders.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import time
from pathlib import Path

from reelflow.settings import get_settings

HOST = socket.gethostname()
# The layout before this module: scratch folders straight under these (or <work_dir>/tmp*). Their
# leftovers are removed once they are a day old (a render of an older reelflow may still run).
OLD_SCRATCH = ("clips", "normalize", "stitch", "manifest")
OLD_AGE = 24 * 3600.0


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None where /proc cannot say."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _name(pid: int) -> str:
    return f"{HOST}.{pid}.{_start_ticks(pid) or 0}"


_MINE: dict[int, str] = {}          # pid -> this process's folder name (a fork gets its own)
_LEAVE: set[Path] = set()           # this process's folders, removed at its exit


def scratch_dir(name: str) -> Path:
    """``<work_dir>/scratch/<this process>/<name>``, created."""
    pid = os.getpid()
    if pid not in _MINE:
        _MINE[pid] = _name(pid)
    mine = Path(get_settings().work_dir).resolve() / "scratch" / _MINE[pid]
    if mine not in _LEAVE:
        _LEAVE.add(mine)
        atexit.register(_leave, mine, pid)              # an orderly exit takes it along
    folder = mine / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _leave(mine: Path, pid: int) -> None:
    if os.getpid() == pid:                              # not a fork that inherited the hook
        shutil.rmtree(mine, ignore_errors=True)


def _gone(folder: str) -> bool:
    """Is the process that named ``folder`` a process of this host that no longer runs?"""
    rest = folder.rsplit(".", 2)
    if len(rest) != 3 or rest[0] != HOST or not rest[1].isdigit() or not rest[2].isdigit():
        return False
    pid, started = int(rest[1]), int(rest[2])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    now = _start_ticks(pid)
    return started != 0 and now is not None and now != started        # the pid was reused


def sweep_scratch(now: float | None = None) -> list[Path]:
    """Remove the scratch folders of this host's processes that are gone (and the old layout's
    leftovers a day old); return what was removed. Never raises: it is housekeeping."""
    work = Path(get_settings().work_dir)
    removed: list[Path] = []
    try:
        dead = [entry for entry in os.scandir(work / "scratch") if entry.is_dir() and _gone(entry.name)]
    except OSError:
        dead = []
    old = (now or time.time()) - OLD_AGE
    for parent, prefix in [(work / sub, "") for sub in OLD_SCRATCH] + [(work, "tmp")]:
        try:
            dead += [e for e in os.scandir(parent) if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)
                     and e.stat(follow_symlinks=False).st_mtime < old]
        except OSError:
            pass
    for entry in dead:
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed
