"""``--out``: the folder a command copies its files into, checked before any work and left
holding one render's files.

What a render wrote there is kept in :data:`RECORD` (name -> SHA-256): the next render removes
a name it does not write only if that record lists it and the file still holds those bytes, so
a file reelflow did not write, or one edited since, is left alone. A record that is missing, not
a plain file or not one (damaged, hostile) removes nothing."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path

from reelflow.errors import DISK_ERRNOS, DISK_HINT, InfrastructureError, InputError

# Every name a render can write into --out: one this render did not write, that an earlier render
# wrote (and nobody changed since), is removed so the folder holds one render's files (a 12 fps
# EDL beside a 7 fps video).
OUT_NAMES = ("final.mp4", "final.srt", "final.vtt", "final.otio", "final.edl", "contact-sheet.png",
             "storyboard.png", "storyboard.html")
RECORD = ".reelflow-out.json"
RECORD_LIMIT = 64 * 1024          # a record of OUT_NAMES is well under 1 KiB


def copy_out(result, dest: Path) -> Path:
    """Copy the render's files into ``dest``: all fetched beside it first, then moved into place,
    the video last (its presence = complete). Nothing is moved unless every file could be fetched
    and every name is free of folders."""
    import tempfile

    from reelflow.settings import get_settings
    from storage import open_store

    store = open_store(get_settings().storage)
    base = result.video_key.rsplit("/", 1)[0]
    keys = [k for k in store.list(base) if k != result.video_key and k != result.manifest_key] + [result.video_key]
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest, prefix=".reelflow-") as tmp:
            staged: list[tuple[Path, Path]] = []
            for key in keys:
                target = dest / key.rsplit("/", 1)[-1]
                fetched = store.fetch(key, tmp)
                if not fetched.is_relative_to(tmp):      # the store's own file: copy it beside dest
                    part = Path(tmp) / f"{target.name}.part"
                    shutil.copyfile(fetched, part)
                    fetched = part
                staged.append((fetched, target))
            check_names(dest)
            digests = {target.name: _sha256(path) for path, target in staged}
            for stale in earlier_files(dest, read_record(dest), set(digests)):
                stale.unlink(missing_ok=True)
            record = Path(tmp) / RECORD
            record.write_text(json.dumps({"written": digests}, indent=1, sort_keys=True) + "\n")
            staged.insert(-1, (record, dest / RECORD))          # the video still last
            for path, target in staged:
                os.replace(path, target)
    except OSError as exc:
        name = exc.filename2 or exc.filename
        message = (f"--out {dest}: cannot write {Path(name).name if name else 'there'} "
                   f"({exc.strerror or exc}); the render is kept: {result.video}")
        if exc.errno in DISK_ERRNOS:          # a full or read-only disk: infrastructure, not the command
            raise InfrastructureError(message, hint=DISK_HINT) from None
        raise InputError(message) from None
    return dest / "final.mp4"


def read_record(dest: Path) -> dict[str, str]:
    """The files (name -> SHA-256) an earlier render recorded writing into ``dest``: only names it
    can write, with well-formed digests; {} for a record missing or unreadable, not a plain file
    (a link, a FIFO), too big, or not JSON of that shape."""
    try:
        fd = os.open(dest / RECORD, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            data = os.read(fd, RECORD_LIMIT + 1) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
        finally:
            os.close(fd)
        written = json.loads(data)["written"] if 0 < len(data) <= RECORD_LIMIT else {}
    except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError):
        return {}
    if not isinstance(written, dict):
        return {}
    return {name: digest for name, digest in written.items()
            if name in OUT_NAMES and isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)}


def earlier_files(dest: Path, record: dict[str, str], written: set[str]) -> list[Path]:
    """The files in ``dest`` an earlier render wrote (``record``) that this one does not
    (``written``), still holding the bytes it wrote: plain files only, never through a link."""
    stale = []
    for name, digest in record.items():
        path = dest / name
        try:
            plain = stat.S_ISREG(os.lstat(path).st_mode)
        except FileNotFoundError:
            continue
        if name not in written and plain and _sha256(path) == digest:
            stale.append(path)
    return stale


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_names(dest: Path, names: tuple[str, ...] = (*OUT_NAMES, RECORD)) -> None:
    for name in names:
        if (dest / name).is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(dest / name))


def check_out(out_dir: Path | None, names: tuple[str, ...] = (*OUT_NAMES, RECORD)) -> None:
    """``--out`` is made (or found writable, with no folder in the way of ``names``) before any
    work: not a render paid for and then lost."""
    if out_dir is None:
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        check_names(out_dir, names)
        why = None if os.access(out_dir, os.W_OK | os.X_OK) else "Permission denied"
    except IsADirectoryError as exc:
        why = f"{Path(exc.filename).name} is a folder"
    except OSError as exc:
        why = exc.strerror or str(exc)
    if why:
        raise InputError(f"--out {out_dir}: cannot write there ({why})")
