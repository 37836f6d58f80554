"""Stored clips a render reuses, checked: a damaged file is made again instead of failing every render.

A local store's files can be cut short (an interrupted copy or sync, a full disk, a bad disk) or
replaced behind reelflow's back. A render reused a clip on its key's presence alone, so one
damaged file failed every later render, ``--force`` included, with an ffmpeg error naming no key.
Each file of a local store a render reuses is probed once per file identity
(``storage.file_memo``: any write or rename over it changes that), and a file reelflow stores
itself is vouched for as it is stored, so only files changed behind its back are probed. Object
stores (S3) publish whole objects by a server-side copy and are not probed here.
"""

from __future__ import annotations

from pathlib import Path

from storage import ClipStore
from storage.file_memo import FileMemo

_CHECKS = FileMemo("store-intact", 1)


def problem(store: ClipStore, key: str, frames: int | None = None) -> str | None:
    """What is wrong with the stored file of ``key`` (None: nothing found, or not a local file).
    ``frames``: the video frames it must have (a normalised clip, which must also have sound)."""
    path = _local_file(store, key)
    if path is None or not path.is_file():
        return None
    return _CHECKS.answer(path, lambda: _probe(path, frames) or "", str(frames)) or None


def vouch(store: ClipStore, key: str, frames: int | None = None) -> None:
    """Record the stored file of ``key`` as checked: it was checked before it was stored."""
    path = _local_file(store, key)
    if path is not None:
        _CHECKS.remember(path, "", str(frames))


def _local_file(store: ClipStore, key: str) -> Path | None:
    from storage.local import LocalStore

    return store.path(key) if isinstance(store, LocalStore) else None


def _probe(path: Path, frames: int | None) -> str | None:
    from engines import InvalidClip
    from tasks.clip import validate_clip     # (tasks.clip imports this module)

    try:
        info = validate_clip(path, None)
    except InvalidClip as exc:
        return str(exc).removeprefix(f"{path}: ")
    if frames is not None and (info.video_frames != frames or not info.has_audio):
        return f"{info.video_frames} frames{'' if info.has_audio else ' and no sound'} where {frames} were stored"
    return None
