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
from storage import LocalStore, StorageError, open_store


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


def cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def making_a_clip(pid: int, tts_only: bool = False) -> set[int]:
    """The render's helper processes making a clip: its TTS worker, or an ffmpeg writing into a
    clip's scratch folder (not a normalisation or the stitch)."""
    from reelflow.settings import get_settings

    work = bytes(get_settings().work_dir.resolve())
    found = set()
    for p in descendants(pid):
        cmd = cmdline(p)
        if b"media.tts" in cmd or (not tts_only and any(a.startswith(work) and b"/clips/" in a for a in cmd[1:])):
            found.add(p)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("where, signum", [("--local", signal.SIGINT), ("--prefect", signal.SIGINT),
                                           ("--prefect -v", signal.SIGINT), ("--local", signal.SIGTERM)],
                         ids=["local", "prefect", "prefect_verbose", "sigterm"])
def test_ctrl_c_lets_clips_in_flight_land_and_records_every_one(demo_copy, where, signum):
    """A terminal's Ctrl-C goes to its whole foreground process group. The clips being made
    (their ffmpeg and TTS worker were in that group, and died of it) must land and be recorded:
    no attempt fails (a killed TTS worker was even recorded as bad input), and the catalog names
    every engine call that was paid for. With --prefect the temporary Prefect server was in the
    group too: the flow run then failed talking to it (exit 1, "internal error: ConnectError"),
    and clip task runs that landed after the Ctrl-C wrote their attempts to a closed log. With
    -v, Prefect's logs of the crash were sent after the server had stopped ("Error logging to API").
    SIGTERM (docker stop: to the render only) is a stop like Ctrl-C, exit 143; it killed the
    render at once, its clips in flight lost."""
    from reelflow.settings import get_settings
    from storage.catalog import open_catalog

    env = {k: v for k, v in os.environ.items()      # the user's: no API, Prefect's logs as the CLI sets them
           if not k.startswith("PREFECT_API") and k != "PREFECT_LOGGING_LEVEL"}
    proc = subprocess.Popen([sys.executable, "-m", "reelflow", "render", *where.split(), str(demo_copy)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    store = open_store()
    try:
        deadline = time.monotonic() + 300
        while not (store.list("clips") and making_a_clip(proc.pid)):
            assert proc.poll() is None, "the render ended before it could be interrupted"
            assert time.monotonic() < deadline, "no clip landed in time"
            time.sleep(0.02)
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)      # what a terminal's Ctrl-C sends: the whole group
        else:
            proc.send_signal(signum)                # what docker stop sends: the main process only
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signum, stderr
    how = "" if signum == signal.SIGINT else " by SIGTERM"
    said = f"interrupted{how}: clips that landed are stored (the next render reuses them); `reelflow history` shows what was made"
    if "-v" in where:
        assert stderr.strip().splitlines()[-1] == said and "Error logging to API" not in stderr, stderr[-2000:]
    else:
        assert stderr.strip().splitlines() == [said], stderr
    landed = {k for k in store.list("clips") if k.endswith(".mp4")}
    attempts = open_catalog(get_settings().database_url).attempts(slug=demo_copy.name)
    assert [(a.scene, a.error_class, a.error) for a in attempts if a.status != "generated"] == []
    assert {a.clip_key for a in attempts} == landed and len(landed) >= 2


def test_a_killed_tts_worker_is_a_transient_failure_not_bad_input(tmp_path):
    """A TTS worker killed by a signal (the OOM killer, a stop) said nothing of the line: the
    clip is retried, not recorded as bad input ("EngineInputError: KeyboardInterrupt")."""
    import threading

    from engines import EngineInputError, TransientEngineError, get_engine
    from tests.engine_contract import request

    outcome: list[BaseException | None] = []

    def generate() -> None:
        try:
            get_engine("animatic").generate(request(prompt="Max says <S>" + "Hello there. " * 40 + "<E>."), tmp_path)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=generate)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not (tts := making_a_clip(os.getpid(), tts_only=True)):
            assert thread.is_alive() and time.monotonic() < deadline, "no TTS worker was started"
            time.sleep(0.01)
        os.kill(tts.pop(), signal.SIGTERM)
    finally:
        thread.join(60)
    assert isinstance(outcome[0], TransientEngineError) and not isinstance(outcome[0], EngineInputError), outcome
    assert "killed by SIGTERM" in str(outcome[0])


def test_scratch_of_killed_renders_is_removed_by_the_next_render_and_a_live_ones_is_kept(small_project):
    """A SIGKILLed render cannot clean its scratch folders (clips being made, normalisations,
    the stitch): they stayed in the work folder for ever. The next render removes those of
    processes gone, never a live one's (two renders can share a work folder)."""
    from reelflow.settings import get_settings

    work = get_settings().work_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    live = subprocess.Popen([sys.executable, "-c", """if True:
        import sys
        from reelflow.scratch import scratch_dir
        (scratch_dir("clips") / "s0-live").mkdir()
        print("ready", flush=True)
        sys.stdin.read()
        """], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    killed = subprocess.Popen([sys.executable, "-m", "reelflow", "render", "--local", str(small_project)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert live.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 120
        while not list(work.glob(f"scratch/*.{killed.pid}.*/clips/*")):      # a clip being made
            assert killed.poll() is None and time.monotonic() < deadline, "the render made no clip to kill"
            time.sleep(0.02)
        killed.kill()
        killed.wait()
        left = list(work.glob(f"scratch/*.{killed.pid}.*"))
        assert left, "the killed render's scratch folder is gone before any render removed it"
        old, recent = work / "clips" / "s1-old", work / "clips" / "s2-recent"    # reelflow's old layout
        for folder in (old, recent):
            folder.mkdir(parents=True)
        os.utime(old, (time.time() - 3 * 86400,) * 2)

        result = CliRunner().invoke(app, ["render", "--local", "--force", str(small_project)])
        assert result.exit_code == 0, result.output
        assert not any(p.exists() for p in left) and not old.exists() and recent.exists()
        mine = list(work.glob(f"scratch/*.{live.pid}.*"))
        assert [p.name for p in mine[0].glob("clips/*")] == ["s0-live"]
        live.stdin.close()                          # it ends in order
        assert live.wait(timeout=30) == 0
    finally:
        for proc in (killed, live):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not mine[0].exists(), "a process that ended in order left its scratch folder"


class FullDiskStore(LocalStore):
    """A real local store whose disk fills up when a render's video is published."""

    def put_file(self, key, src, metadata=None):
        if key.endswith("/final.mp4"):
            raise StorageError(f"cannot write {self.path(key)}: [Errno 28] No space left on device")
        return super().put_file(key, src, metadata)


def test_publish_all_withdraws_what_it_put_when_one_put_fails(tmp_path):
    from storage.batch import publish_all

    store = FullDiskStore(tmp_path / "s")
    files = []
    for name in ("final.srt", "contact-sheet.png", "final.mp4"):
        (tmp_path / name).write_bytes(b"x")
        files.append((f"renders/p/1/{name}", tmp_path / name))
    with pytest.raises(StorageError, match="No space left"):
        publish_all(store, files)
    assert store.list() == []
    assert publish_all(store, files[:2]) == ["renders/p/1/final.srt", "renders/p/1/contact-sheet.png"]


@pytest.mark.slow
def test_a_render_whose_video_cannot_be_published_leaves_no_outputs(small_project, tmp_path, monkeypatch,
                                                                    prefect_harness):
    import storage
    from reelflow.settings import reload_settings

    storage.register("fulldisk", lambda url: FullDiskStore(url.removeprefix("fulldisk://")))
    monkeypatch.setenv("REELFLOW_STORAGE", f"fulldisk://{tmp_path / 'full'}")
    reload_settings()
    try:
        result = CliRunner().invoke(app, ["render", str(small_project)])
    finally:
        storage.unregister("fulldisk")
    assert result.exit_code == 3, result.output
    assert "No space left on device" in result.stderr.strip().splitlines()[-1]
    outputs = [k for k in LocalStore(tmp_path / "full").list("renders") if not k.rsplit("/", 1)[-1].startswith("storyboard")]
    assert outputs == []


@pytest.mark.parametrize("way", ["setpriv", "preexec"])
def test_a_ctrl_c_while_a_helper_is_being_forked_stays_with_the_render(tmp_path, way):
    """Python runs its at-fork hooks in the child before the child has its own session (Prefect
    builds queues there): a terminal's Ctrl-C in that moment raised KeyboardInterrupt in the child
    and printed a traceback under the render's one line. spawn() holds SIGINT back across the fork;
    the render still gets it, once the helper has started. (Through setpriv, no hook runs.)"""
    import sys

    script = tmp_path / "fork.py"
    started = tmp_path / "started"
    script.write_text(
        "import os, signal, sys, threading, time\n"
        "os.register_at_fork(after_in_child=lambda: time.sleep(0.6))     # a slow hook, like Prefect's\n"
        "from reelflow.process import spawn\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), os.killpg(0, signal.SIGINT)), daemon=True).start()\n"
        "try:\n"
        f"    spawn(['sh', '-c', 'echo yes > {started}']).wait()\n"
        "    time.sleep(1)\n"
        "    print('no interrupt')\n"
        "except KeyboardInterrupt:\n"
        "    time.sleep(1)                    # as a render lets its clips land\n"
        "    print('interrupted')\n",
    )
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "REELFLOW_NO_SETPRIV"}
    env.update(PYTHONPATH=str(repo), **({"REELFLOW_NO_SETPRIV": "1"} if way == "preexec" else {}))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          env=env, start_new_session=True)
    assert "KeyboardInterrupt" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "interrupted", proc.stdout + proc.stderr        # the render got it
    for _ in range(50):                                                          # and the helper ran
        if started.exists():
            break
        time.sleep(0.1)
    assert started.read_text().strip() == "yes"
