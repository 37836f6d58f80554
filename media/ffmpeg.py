"""The one place that runs ffmpeg.

Commands are built as ``list[str]`` by pure functions elsewhere (``media.commands``);
``run`` resolves the binary, logs ``shlex.join(cmd)``, applies a timeout and raises
``FFmpegError`` carrying the command and the tail of stderr (never all of it: see ``STDERR_TAIL``).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from functools import lru_cache

from reelflow.errors import DISK_HINT, InfrastructureError, RenderError
from reelflow import process
from reelflow.settings import get_settings

log = logging.getLogger("reelflow.ffmpeg")

BASE_ARGS = ["-nostdin", "-y", "-hide_banner"]


_CONTEXT = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\] ")     # "[in#0 @ 0x55...] ": where in ffmpeg, not why


class FFmpegError(RenderError):
    """ffmpeg failed or is missing; carries the command and stderr for the user.

    The first line (what the CLI and the Prefect state show) is ``message`` and ffmpeg's own last
    word on why; the lines under it hold the end of its stderr and the command (``-v``)."""

    def __init__(self, message: str, cmd: list[str] | None = None, stderr: str = ""):
        self.cmd = cmd or []
        self.stderr = stderr
        tail = [line for line in stderr.strip().splitlines() if line.strip()][-5:]
        first = message
        if self.cmd:
            why = list(dict.fromkeys(_CONTEXT.sub("", line).strip() for line in tail[-4:]))
            first += f": {'; '.join(why)[:400]}" if why else " with no error output"
        detail = tail + ([f"command: {shlex.join(self.cmd)}"] if self.cmd else [])
        super().__init__("\n".join([first, *detail]))


DISK_FULL = ("No space left on device", "Disk quota exceeded", "Read-only file system", "File too large")


class FFmpegDiskError(InfrastructureError):
    """ffmpeg could not write because its disk is full or read-only: infrastructure (exit 3),
    neither the production's fault nor the render's, and no retry or other engine would help."""

    def __init__(self, why: str, cmd: list[str], stderr: str):
        self.cmd, self.stderr = cmd, stderr
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        said = next((_CONTEXT.sub("", line).strip() for line in reversed(lines) if why in line), why)
        super().__init__("\n".join([f"ffmpeg could not write: {said[:300]}", *lines[-5:], f"command: {shlex.join(cmd)}"]),
                         hint=DISK_HINT)


def _failed(message: str, cmd: list[str], stderr: str) -> Exception:
    """The error of an ffmpeg run that failed: a full or read-only disk is infrastructure."""
    why = next((text for text in DISK_FULL if text in stderr), None)
    return FFmpegDiskError(why, cmd, stderr) if why else FFmpegError(message, cmd, stderr)


@lru_cache
def _resolve(explicit: str | None) -> str:
    if explicit:
        path = shutil.which(explicit) or (explicit if os.path.exists(explicit) else None)
        if not path:
            raise FFmpegError(f"REELFLOW_FFMPEG={explicit!r} is not an executable file")
        return path
    try:
        import imageio_ffmpeg

        return _bundled() or imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - fall through to PATH
        found = shutil.which("ffmpeg")
        if found:
            return found
    raise FFmpegError("ffmpeg not found: pip install imageio-ffmpeg, or set REELFLOW_FFMPEG")


def _bundled() -> str | None:
    """The imageio-ffmpeg wheel's own binary, found without running it: ``get_ffmpeg_exe`` runs
    ``ffmpeg -version`` first (13 ms before every command's first ffmpeg). None when the wheel
    is laid out otherwise, or ``IMAGEIO_FFMPEG_EXE`` names another binary."""
    if os.environ.get("IMAGEIO_FFMPEG_EXE"):
        return None
    try:
        import imageio_ffmpeg
        from imageio_ffmpeg._definitions import FNAME_PER_PLATFORM, get_platform

        exe = os.path.join(os.path.dirname(imageio_ffmpeg.__file__), "binaries", FNAME_PER_PLATFORM[get_platform()])
    except Exception:  # noqa: BLE001 - another version of the wheel: ask it
        return None
    return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None


def ffmpeg_binary() -> str:
    return _resolve(get_settings().ffmpeg)


def ffmpeg_binary_version() -> str:
    """Which ffmpeg this is, for cache keys: its path, size and mtime (no process started)."""
    path = ffmpeg_binary()
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


STDERR_TAIL = 256 * 1024   # bytes of ffmpeg's stderr kept: the end is what callers read (an
                           # ebur128 summary, the error), and a long input's per-frame lines
                           # (ebur128 logs 10 a second) must not grow the render's memory


def _tail(err) -> bytes:
    """The last ``STDERR_TAIL`` bytes of the file ``err``."""
    size = err.seek(0, os.SEEK_END)
    err.seek(max(0, size - STDERR_TAIL))
    return err.read()


def run(
    args: list[str],
    *,
    timeout: float | None = None,
    capture_stdout: bool = False,
    loglevel: str = "error",
    nice: int = 0,
) -> subprocess.CompletedProcess:
    """Run ``ffmpeg <BASE_ARGS> <args>``; return the completed process or raise FFmpegError.

    ffmpeg's stderr goes to a temporary file, of which the returned process carries the last
    ``STDERR_TAIL`` bytes. ``nice``: run it at that much lower a CPU priority (Linux)."""
    import tempfile

    cmd = [ffmpeg_binary(), *BASE_ARGS, "-loglevel", loglevel, *args]
    log.debug("ffmpeg: %s", shlex.join(cmd))
    limit = timeout if timeout is not None else get_settings().ffmpeg_timeout
    with tempfile.TemporaryFile() as err:
        try:
            proc = process.run(
                cmd,
                timeout=limit,
                nice=nice,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
                stderr=err,
            )
        except subprocess.TimeoutExpired as exc:
            raise FFmpegError(f"ffmpeg timed out after {limit:.0f}s", cmd,
                              _tail(err).decode(errors="replace")) from exc
        proc.stderr = _tail(err)
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        raise _failed(f"ffmpeg exited {proc.returncode}", cmd, stderr)
    return proc


def run_piped(args: list[str], chunks, *, timeout: float | None = None, loglevel: str = "error") -> None:
    """Run ``ffmpeg <BASE_ARGS> <args>`` feeding ``chunks`` (an iterable of bytes) to its stdin.

    For raw frames (``-f rawvideo -pix_fmt rgb24 -s WxH -i pipe:0``) straight from memory,
    with no image files. Same logging, timeout and ``FFmpegError`` as ``run``; ffmpeg's
    stderr goes to a temporary file, so a chatty ffmpeg cannot block the writer.
    """
    import tempfile
    import time

    cmd = [ffmpeg_binary(), *[a for a in BASE_ARGS if a != "-nostdin"], "-loglevel", loglevel, *args]
    log.debug("ffmpeg (piped): %s", shlex.join(cmd))
    limit = timeout if timeout is not None else get_settings().ffmpeg_timeout
    deadline = time.monotonic() + limit
    with tempfile.TemporaryFile() as err:
        proc = process.spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            try:
                for chunk in chunks:
                    if time.monotonic() > deadline:
                        raise subprocess.TimeoutExpired(cmd, limit)
                    proc.stdin.write(chunk)
                proc.stdin.close()
            except BrokenPipeError:
                pass            # ffmpeg stopped reading: its exit status and stderr say why
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            raise FFmpegError(f"ffmpeg timed out after {limit:.0f}s", cmd,
                              _tail(err).decode(errors="replace")) from exc
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if proc.stdin and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
        if proc.returncode != 0:
            raise _failed(f"ffmpeg exited {proc.returncode}", cmd, _tail(err).decode(errors="replace"))
