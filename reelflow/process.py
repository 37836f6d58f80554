"""Child processes die with the render that started them (Linux: PR_SET_PDEATHSIG).

A SIGKILLed ``reelflow render`` cannot clean up, so every helper process it starts (the
temporary Prefect server, ffmpeg, the TTS worker) asks the kernel, before it runs, to be
killed when its parent goes. Pass ``**child_options()`` to ``subprocess``.

They also run in a session of their own: a terminal's Ctrl-C signals its whole foreground
process group, and a clip's ffmpeg or TTS worker killed by it was a paid clip lost (and the
temporary Prefect server a flow run cut off). The render alone gets the Ctrl-C; it lets the
clips being made land, then exits, and its helpers die with it.

How a helper is started (:func:`spawn`): where util-linux's ``setpriv --pdeathsig`` is there
(Debian, Ubuntu, Fedora: every Linux this runs on in practice), the helper is started through it,
with no Python code between fork and exec, so ``subprocess`` uses ``vfork``. A ``preexec_fn``
forces a full ``fork()`` of the render's process instead, with the GIL held while its page
tables are copied and Python's at-fork hooks run: about 2 ms of the GIL and 5 ms of wall time
per ffmpeg once Prefect is imported (0.5 ms without), a quarter of a render of many short clips.
Elsewhere the ``preexec_fn`` does it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import subprocess
import sys
from functools import cache

PR_SET_PDEATHSIG = 1
# The C library through the process's own symbols: ctypes.util.find_library("c") runs
# `ldconfig -p` (16 ms, on every command).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In the child, between fork and exec: SIGKILL me when my parent (thread) ends."""
    if _LIBC is None:
        return
    parent = os.getppid()
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:       # the parent died before prctl took effect
        os._exit(1)


HELD = frozenset({signal.SIGINT, signal.SIGTERM})
_SIG_DFL, _SIG_IGN = ctypes.c_void_p(0), ctypes.c_void_p(1)
if _LIBC is not None:
    _LIBC.signal.argtypes, _LIBC.signal.restype = [ctypes.c_int, ctypes.c_void_p], ctypes.c_void_p


def child_options(nice: int = 0) -> dict:
    """``subprocess`` keyword arguments for a helper that must not outlive us and that a
    terminal's Ctrl-C does not reach (its own session); ``nice``: run it at that much lower a
    CPU priority (Linux). Start it with :func:`spawn`, which holds back a Ctrl-C that arrives
    while the child is still between fork and its own session."""
    if _LIBC is None:
        return {"start_new_session": True}

    def prepare() -> None:
        die_with_parent()
        if nice:
            os.nice(nice)
        # Held by spawn() across the fork: a Ctrl-C that reached this child while it was still in
        # the render's process group was meant for the render. Ignoring a pending signal drops it;
        # then the helper gets the default actions (through libc: exec keeps an ignored signal).
        for held in HELD:
            _LIBC.signal(held, _SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
        for held in HELD:
            _LIBC.signal(held, _SIG_DFL)

    return {"preexec_fn": prepare, "start_new_session": True}


def spawn(args, nice: int = 0, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(args, **kwargs)`` for a helper: in a session of its own, killed when
    the calling thread ends, at ``nice`` lower a CPU priority (Linux). ``args``: a list whose
    first item is the program (a missing one raises ``FileNotFoundError``, as ``Popen`` does).

    Through ``setpriv --pdeathsig KILL`` where it can (see the module's docstring), else with
    :func:`child_options`. With the latter, Python runs its at-fork hooks in the child before
    the child has its own session (Prefect's build queues there): a terminal's Ctrl-C in that
    moment raised KeyboardInterrupt in the child and printed a traceback under the render's one
    line. SIGINT and SIGTERM are blocked in this thread for that fork (a signal meant for us is
    delivered when the child has started) and unblocked in the child before it runs the helper.
    Through setpriv no Python runs in the child; a Ctrl-C in the few system calls between the
    fork and the child's own session stops the helper before it runs (the render is stopping)."""
    wrapper = _setpriv()
    if wrapper is not None and isinstance(args, (list, tuple)) and not kwargs.keys() & _NO_WRAPPER:
        program = _program(str(args[0]), kwargs.get("env"), kwargs.get("cwd"))
        proc = subprocess.Popen([wrapper, "--pdeathsig", "KILL", "--", program, *args[1:]],
                                start_new_session=True, **kwargs)
        if nice:
            _lower(proc.pid, nice)
        return proc
    options = {**child_options(nice), **kwargs}
    if _LIBC is None:
        return subprocess.Popen(args, **options)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        return subprocess.Popen(args, **options)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


# Popen arguments the setpriv path does not handle itself: these go the preexec_fn way.
_NO_WRAPPER = frozenset({"shell", "executable", "preexec_fn", "start_new_session", "process_group"})


@cache
def _setpriv() -> str | None:
    """util-linux's setpriv, if it is there and knows ``--pdeathsig`` (2.33, 2018): found by
    reading the program, not running it (a command starts no helper to find its tools)."""
    if _LIBC is None or os.environ.get("REELFLOW_NO_SETPRIV"):
        return None
    found = shutil.which("setpriv")
    try:
        return found if found and b"pdeathsig" in open(found, "rb").read(8 << 20) else None
    except OSError:
        return None


def _program(name: str, env: dict | None, cwd) -> str:
    """The path of the program ``Popen`` would run: what setpriv is handed, so a missing one is
    Popen's ``FileNotFoundError`` here, not setpriv's exit status 127."""
    if os.sep in name:
        path = name if os.path.isabs(name) or cwd is None else os.path.join(os.fspath(cwd), name)
        found = path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    else:
        found = shutil.which(name, path=(os.environ if env is None else env).get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return os.path.abspath(found)


def _lower(pid: int, nice: int) -> None:
    """Run the process ``pid`` at ``nice`` lower a priority than this thread (as ``os.nice`` in
    the child would have)."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
    except OSError:           # gone already, or not allowed: it runs at ours
        pass


def run(args, timeout: float | None = None, input: bytes | None = None, nice: int = 0,
        **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(args, ...)`` for a helper, started with :func:`spawn` (not checked; on a
    timeout it is killed and ``TimeoutExpired`` raised, as ``subprocess.run`` does)."""
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with spawn(args, nice, **kwargs) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except BaseException:             # a timeout, Ctrl-C: the helper does not run on
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


BACKGROUND_NICE = 10


def lower_thread_priority() -> None:
    """Run the calling thread (and the processes it starts) at a lower CPU priority.

    For side work a render waits for only at its end (the storyboard, the contact sheet): on a
    busy machine it yields the cores to the clip and stitch work ahead of it instead of
    slowing it down. Linux sets nice per thread; elsewhere, or where it is refused, it is a no-op.
    A ``ThreadPoolExecutor`` initializer: the thread stays lowered for its life.
    """
    if not sys.platform.startswith("linux"):
        return
    import threading

    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), BACKGROUND_NICE))
    except OSError:
        pass



class Terminated(KeyboardInterrupt):
    """SIGTERM (docker stop, a CI cancel, systemd): stopped like Ctrl-C, so clips being made land."""

    signum = signal.SIGTERM


def stop_on_sigterm() -> None:
    """In the main thread: SIGTERM raises :class:`Terminated` there, as SIGINT raises
    KeyboardInterrupt (without it the process died at once, its clips in flight lost)."""

    def stop(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, stop)


def stop_signal(exc: BaseException) -> int | None:
    """The signal ``exc`` stands for (Ctrl-C, SIGTERM, Prefect's ``TerminationSignal``), else None."""
    if isinstance(exc, KeyboardInterrupt):
        return int(getattr(exc, "signum", signal.SIGINT))
    if type(exc).__name__ == "TerminationSignal" and isinstance(getattr(exc, "signal", None), int):
        return int(exc.signal)
    return None
