"""How a render uses the heap: large buffers given back when freed, two malloc arenas, and a
collector that does not scan what was alive before the render started.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading

# The C library through the process's own symbols: ctypes.util.find_library("c") runs
# `ldconfig -p` (16 ms, on every command).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
M_MMAP_THRESHOLD = -3          # glibc's mallopt parameters
M_ARENA_MAX = -8
LARGE_BUFFER = 1 << 20
ARENAS = 2


def return_large_buffers() -> None:
    """Keep a render's memory flat in its length (glibc's allocator; see docs/benchmarks.md).

    - Allocations of 1 MB and more come from their own mappings, given back when freed. glibc
      raises its mmap threshold after the first large free, so later image and audio buffers
      (8-16 MB: a storyboard sheet, a decoded contact sheet) came from arenas that keep the
      memory after it is freed.
    - At most ``ARENAS`` malloc arenas. glibc gives threads arenas of their own (up to 8 per
      core); a render's many short-lived threads (clips, normalising, the mix, side work) each
      left theirs fragmented, and a 360-clip render peaked 1.14x higher than a 24-clip one
      (1.09-1.13x with two arenas, and 20-30 MB lower). Its threads mostly wait on engines and ffmpeg, so they do not
      contend for the allocator.

    Process-wide and idempotent; elsewhere (musl, macOS) a no-op."""
    if _LIBC is None:
        return
    try:
        _LIBC.mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER)
        _LIBC.mallopt(M_ARENA_MAX, ARENAS)
    except AttributeError:
        pass


_renders = 0
_lock = threading.Lock()


def freeze_heap() -> None:
    """Keep the cyclic garbage collector off the objects that exist when a render starts.

    A render process holds hundreds of thousands of long-lived objects before its first step
    (Prefect, pydantic's schemas, SQLAlchemy): every full collection walks all of them, and the
    render's own allocations set one off every few hundred milliseconds of work; in a Prefect
    flow that was 0.3 s of loading a 24-scene production (docs/benchmarks.md, issue 10, sixth
    pass). ``gc.freeze()`` moves them out of the collector's generations (O(1)); reference
    counting still frees them when they go. They are not unfrozen when the render ends: that
    would hand all of them back to the next full collection.

    A process that renders again (``render_batch``, a test session) first collects what its
    earlier renders left behind, then freezes the rest: only cyclic garbage that already
    existed before its first render is never collected."""
    global _renders
    with _lock:
        if _renders:
            gc.collect()
        gc.freeze()
        _renders += 1
