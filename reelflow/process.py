"""Child processes die with the render that started them (Linux: PR_SET_PDEATHSIG).

A SIGKILLed ``reelflow render`` cannot clean up, so every helper process it starts (the
temporary Prefect server, ffmpeg, the TTS worker) asks the kernel, before it runs, to be
killed when its parent goes. Pass ``**child_options()`` to ``subprocess``.

They also run in a session of their own: a terminal's Ctrl-C signals its whole foreground
process group, and a clip's ffmpeg or TTS worker killed by it was a paid clip lost (and the
temporary Prefect server a flow run cut off). The render alone gets the Ctrl-C; it lets the
clips being made land, then exits, and its helpers die with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

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


def child_options(nice: int = 0) -> dict:
    """``subprocess`` keyword arguments for a helper that must not outlive us and that a
    terminal's Ctrl-C does not reach (its own session); ``nice``: run it at that much lower a
    CPU priority (Linux)."""
    if _LIBC is None:
        return {"start_new_session": True}
    if not nice:
        return {"preexec_fn": die_with_parent, "start_new_session": True}

    def prepare() -> None:
        die_with_parent()
        os.nice(nice)

    return {"preexec_fn": prepare, "start_new_session": True}


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
