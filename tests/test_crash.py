"""Crash hygiene: a SIGKILLed render leaves no process behind and its catalog row becomes
'crashed'; a failed publish leaves no partial set of outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelflow.cli import app
from storage import open_store


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.add(int(entry))
    return found


def descendants(pid: int) -> set[int]:
    found, frontier = set(), {pid}
    while frontier:
        frontier = set().union(*(children(p) for p in frontier)) - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"        # a zombie has exited; only its (dead) parent could reap it


@pytest.mark.slow
def test_a_sigkilled_render_leaves_no_process_and_history_shows_crashed(demo_copy):
    """No PREFECT_API_URL: the CLI starts its temporary Prefect server, which must die with it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    proc = subprocess.Popen([sys.executable, "-m", "reelflow", "render", str(demo_copy)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    seen: set[int] = set()
    store = open_store()
    try:
        deadline = time.monotonic() + 300
        while not store.list("clips"):              # mid-way: at least one clip made
            assert proc.poll() is None, "the render ended before it could be killed"
            assert time.monotonic() < deadline, "no clip landed in time"
            seen |= descendants(proc.pid)
            time.sleep(0.1)
        seen |= descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)            # the render only: its children get no signal from us
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert seen, "the render started no helper process (its temporary Prefect server)"
    deadline = time.monotonic() + 10
    while any(running(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in seen if running(p)}
    for pid in survivors:                           # don't leak them into the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert survivors == {}

    history = CliRunner().invoke(app, ["history", str(demo_copy)])
    assert history.exit_code == 0, history.output
    assert "crashed" in history.output and "running" not in history.output
