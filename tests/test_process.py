"""How helpers (ffmpeg, the TTS worker, the temporary Prefect server) are started: in a session
of their own, dead with the thread that started them, at the priority asked for, both through
setpriv (vfork, no Python in the child) and the preexec_fn way it falls back to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reelflow import process

REPO = Path(__file__).resolve().parents[1]
WAYS = ["setpriv", "preexec"]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def way_env(way: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("REELFLOW_NO_SETPRIV", None)
    if way == "preexec":
        env["REELFLOW_NO_SETPRIV"] = "1"
    return env


@pytest.fixture(autouse=True)
def fresh_lookup():
    process._setpriv.cache_clear()
    yield
    process._setpriv.cache_clear()


def test_setpriv_is_used_here_and_found_without_running_anything():
    """This machine (Debian) has util-linux's setpriv: the fast way is the one tested in CI."""
    assert process._setpriv() is not None


@pytest.mark.parametrize("way", WAYS)
def test_a_helper_has_its_own_session_and_dies_with_the_thread_that_started_it(way):
    parent = subprocess.Popen([sys.executable, "-c", """if True:
        import signal, sys, threading
        from reelflow.process import spawn, _setpriv
        signal.signal(signal.SIGINT, lambda *a: print("interrupted", flush=True))
        helper = spawn(["sleep", "60"])
        print(helper.pid, bool(_setpriv()), flush=True)
        sys.stdin.read()
        """], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True, env=way_env(way))
    try:
        pid, wrapped = parent.stdout.readline().split()
        helper = int(pid)
        assert wrapped == ("True" if way == "setpriv" else "False")
        for _ in range(100):            # setpriv has exec'd sleep
            argv = Path(f"/proc/{helper}/cmdline").read_bytes().split(b"\0")
            if argv[0].endswith(b"sleep"):
                break
            time.sleep(0.01)
        assert Path(argv[0].decode()).name == "sleep" and argv[1] == b"60"
        assert int(stat(helper)[3]) == helper, "the helper is not the leader of a session of its own"
        os.killpg(parent.pid, signal.SIGINT)            # a terminal's Ctrl-C: the whole group
        assert parent.stdout.readline().strip() == "interrupted"
        time.sleep(0.2)
        assert running(helper), "the terminal's Ctrl-C reached the helper"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while running(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(helper), "the helper outlived the process that started it"


@pytest.mark.parametrize("way", WAYS)
def test_nice_lowers_the_helper_and_a_missing_program_is_file_not_found(way, monkeypatch):
    if way == "preexec":
        monkeypatch.setenv("REELFLOW_NO_SETPRIV", "1")
    assert (process._setpriv() is None) == (way == "preexec")
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    with process.spawn(["sleep", "5"], nice=7) as helper:
        try:
            assert int(stat(helper.pid)[16]) == min(19, mine + 7)
        finally:
            helper.kill()
    with pytest.raises(FileNotFoundError):
        process.spawn(["no-such-program-here", "-x"])
    with pytest.raises(FileNotFoundError):
        process.spawn(["/nonexistent/ffmpeg"])


def test_output_environment_and_exit_status_pass_through_setpriv(tmp_path):
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho \"$GREETING $1\"; echo oops >&2; exit 3\n")
    script.chmod(0o755)
    done = process.run(["./tool", "world"], cwd=tmp_path, env={"GREETING": "hello", "PATH": os.defpath},
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"hello world\n", b"oops\n")
    with pytest.raises(subprocess.TimeoutExpired):
        process.run(["sleep", "5"], timeout=0.2)


def test_without_a_preexec_fn_python_forks_nothing_of_itself(tmp_path):
    """The fast way runs no at-fork hook: no Python code between fork and exec (vfork)."""
    probe = tmp_path / "forked"
    code = ("import os, sys\n"
            f"os.register_at_fork(after_in_child=lambda: open({str(probe)!r}, 'w').close())\n"
            "from reelflow.process import run\n"
            "run(['true'])\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=way_env("setpriv"), timeout=60)
    assert not probe.exists()
    subprocess.run([sys.executable, "-c", code], check=True, env=way_env("preexec"), timeout=60)
    assert probe.exists()
