"""``--out``: the folder a command copies its files into, checked before any work and left
holding one render's files."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from reelflow.errors import DISK_ERRNOS, DISK_HINT, InfrastructureError, InputError

# Every name a render can write into --out: a name this render did not write is an earlier
# render's, removed so the folder holds one render's files (a 12 fps EDL beside a 7 fps video).
OUT_NAMES = ("final.mp4", "final.srt", "final.vtt", "final.otio", "final.edl", "contact-sheet.png",
             "storyboard.png", "storyboard.html")


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
            written = {target.name for _, target in staged}
            for name in set(OUT_NAMES) - written:
                (dest / name).unlink(missing_ok=True)
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


def check_names(dest: Path, names: tuple[str, ...] = OUT_NAMES) -> None:
    for name in names:
        if (dest / name).is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(dest / name))


def check_out(out_dir: Path | None, names: tuple[str, ...] = OUT_NAMES) -> None:
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
