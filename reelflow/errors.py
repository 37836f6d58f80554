"""The one error tree every user-facing failure belongs to.

    ReelflowError                     shown to the user as one line (+ a hint); exit_code for the CLI
    ├── InputError          exit 2    the production or the command is wrong: fix it and run again
    │                                 (ProjectError, PromptError, PlanError, ProbeError of user media)
    ├── RenderError         exit 1    the render ran and failed (EngineError and its tree, FFmpegError,
    │                                 TTSError, RenderFailed)
    └── InfrastructureError exit 3    storage, database or Prefect cannot be reached or refuses us
                                      (StorageError, CatalogError)

Each package keeps its own classes (``engines.errors``, ``storage.base`` ...) and derives
them from one of these, so the CLI and a Prefect run's state message need one ``except``.
"""

from __future__ import annotations

import errno


class ReelflowError(Exception):
    """Base of every error meant for the user. ``hint`` says how to fix it, when we know."""

    exit_code = 1

    def __init__(self, message: str = "", *args, hint: str | None = None):
        super().__init__(message, *args)
        self.hint = hint


class InputError(ReelflowError, ValueError):
    """Bad input: the production, a file in it, or the command line."""

    exit_code = 2


class RenderError(ReelflowError, RuntimeError):
    """A render that started and could not finish."""

    exit_code = 1


class InfrastructureError(ReelflowError, RuntimeError):
    """Storage, the catalog database or the Prefect API is unreachable or refuses us."""

    exit_code = 3


def one_line(exc: BaseException) -> str:
    """The first line of an error's text (what the CLI prints without ``-v``)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})   # full, over quota, read-only, too big
DISK_HINT = "free space on that disk (or make it writable), or point REELFLOW_WORK_DIR / REELFLOW_STORAGE elsewhere"


def disk_cause(exc: BaseException | None) -> OSError | None:
    """The full or read-only disk behind ``exc`` (itself or an error it was raised from), if any."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def disk_error(exc: BaseException) -> InfrastructureError | None:
    """A full or read-only disk behind ``exc``, as the infrastructure error it is (exit 3): not the
    production's fault, nor an engine's (another engine would meet the same disk)."""
    cause = disk_cause(exc)
    if cause is None:
        return None
    where = f": {cause.filename}" if cause.filename else ""
    return InfrastructureError(f"{cause.strerror or cause}{where}", hint=DISK_HINT)
