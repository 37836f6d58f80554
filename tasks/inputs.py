"""A clip is made from exactly the input files its key names.

A clip's key holds the digests of its input files (a character's image, the scene's audio, the
spoken lines, footage) as they were when the render planned it, but the clip is made later,
minutes or hours later behind an engine's limit. A file saved in between was baked into a clip
stored under the old file's key, and every later render of the old file (``--force`` too) got it.

- A generated clip's engine reads copies: each input file is copied into the clip's scratch
  folder, hashed as it is copied, and the key is computed again from the copies. A key that is
  not the plan's means a file changed: :class:`InputChanged`, before any engine call.
- Footage is stored from the file itself (it can be large): its digest (kept by file identity,
  ``engines.base.file_digest``) must be the key's before the copy into the store, and its
  identity the same after it; else the stored copy is removed at once and the scene refused.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from engines import EngineInputError
from engines.base import ClipRequest, file_digest
from reelflow.errors import disk_cause
from storage import ClipStore
from storage.file_memo import identity
from tasks.models import ClipPlan
from tasks.plan import clip_key

FIELDS = ("image", "audio", "audio2")       # a request's input files (the key has their digests)


class InputChanged(EngineInputError):
    """An input file changed after the render planned the clip: never retried, never stored."""


def changed(plan: ClipPlan, paths: list[str]) -> InputChanged:
    return InputChanged(f"scene {plan.scene_id!r}: {' or '.join(paths)} changed after this render planned the "
                        f"clip (its key names the file as it was then); the clip is not made, render again "
                        f"to use the file as it is now")


def _copy(src: str, dest: Path) -> str:
    """Copy ``src`` to ``dest``; the sha256 of the bytes copied."""
    h = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f, open(dest, "wb") as out:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            out.write(block)
    return h.hexdigest()


@contextmanager
def copied(plan: ClipPlan, request: ClipRequest, scratch: Path) -> Iterator[ClipRequest]:
    """:func:`snapshot`; an error raised inside names the project's files, not their copies."""
    snapped = snapshot(plan, request, scratch)
    given = {getattr(snapped, f): getattr(request, f) for f in FIELDS if getattr(snapped, f) != getattr(request, f)}
    try:
        yield snapped
    except Exception as exc:
        args = tuple(_named(a, given) if isinstance(a, str) else a for a in exc.args)
        if args != exc.args:
            try:
                exc.args = args
            except (AttributeError, TypeError):      # pragma: no cover - exotic exception types
                pass
        raise


def _named(text: str, given: dict[str, str]) -> str:
    for copy, path in given.items():
        text = text.replace(copy, path)
    return text


def snapshot(plan: ClipPlan, request: ClipRequest, scratch: Path) -> ClipRequest:
    """``request`` reading copies (in ``scratch``) of its input files, which are the bytes
    ``plan.key`` was computed from; :class:`InputChanged` if they are not."""
    copies: dict[str, str] = {}
    digests: dict[str, str] = {}
    for field in FIELDS:
        if not (path := getattr(request, field)):
            continue
        copy = scratch / ".inputs" / field / Path(path).name
        try:
            digests[str(copy)] = _copy(path, copy)
        except OSError as exc:
            if disk_cause(exc) is not None:
                raise                                     # the scratch disk is full: infrastructure
            raise changed(plan, [path]) from None        # it was read to plan the clip
        copies[field] = str(copy)
    if not copies:
        return request
    snapped = request.model_copy(update=copies)
    if clip_key(snapped, plan.engine, plan.model, digests.__getitem__) != plan.key:
        raise changed(plan, [getattr(request, field) for field in copies])
    return snapped


def store_footage(plan: ClipPlan, store: ClipStore, metadata: dict[str, str]) -> None:
    """Store the plan's footage under its key, if the file still holds the bytes the key names."""
    before = identity(plan.footage)
    if before is None or f"footage/{file_digest(plan.footage)}{Path(plan.footage).suffix.lower()}" != plan.key:
        raise changed(plan, [plan.footage])
    store.put_file(plan.key, plan.footage, metadata)
    if identity(plan.footage) != before:                 # written while it was copied
        store.delete(plan.key)
        raise changed(plan, [plan.footage])

