"""The engine interface: one request in, one clip file out."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from storage.file_memo import FileMemo

KEY_VERSION = 1  # bump when what an engine makes from the same request changes


_DIGESTS = FileMemo("digests", check=lambda kept: re.fullmatch(r"[0-9a-f]{64}", kept) is not None)


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, kept by the file's identity for later commands
    (``storage.file_memo``): footage is hashed once, not at every render."""
    return _DIGESTS.answer(path, lambda: _sha256(path))


class ClipRequest(BaseModel):
    """Everything an engine needs for one clip. Paths are absolute local files."""

    scene_id: str
    prompt: str
    caption: str = ""
    caption_at: Literal["bottom", "top", "none"] = Field(
        "bottom", description="Where an engine that draws captions puts them: top when subtitles are burned in.")
    image: str | None = None
    audio: str | None = None
    audio2: str | None = None        # a second speaker's line (MultiTalk)
    voice: str = "en-us"
    voice2: str | None = None        # the second speaker's voice (the second <S> line), for engines that speak
    width: int
    height: int
    fps: float
    duration: float = Field(gt=0)
    seed: int = 0
    params: dict[str, Any] = Field(default_factory=dict)
    deadline: float | None = Field(default=None, description="time.time() by which the clip must be done")

    def content_key(self, engine: str, model: str | None, version: int = 1, speaks: bool = False,
                    digest: Callable[[str], str] = file_digest) -> str:
        """Content address: same engine (and its ``version``), model, prompt, inputs and params -> same key.
        ``speaks``: the engine speaks the lines itself, so the second speaker's voice is in the key
        (for the others it is not: a second line reaches them as audio2, already keyed).
        ``digest``: an input file's sha256 (another than :func:`file_digest` for copies already hashed)."""
        doc = self.model_dump(exclude={"scene_id", "image", "audio", "audio2", "deadline"})
        doc.update(
            v=KEY_VERSION,
            engine=engine,
            model=model,
            image=digest(self.image) if self.image else None,
            audio=digest(self.audio) if self.audio else None,
            audio2=digest(self.audio2) if self.audio2 else None,
        )
        if doc["caption_at"] == "bottom":
            del doc["caption_at"]   # keys made before caption placement existed stay valid
        if doc["audio2"] is None:
            del doc["audio2"]  # keys made before two-speaker scenes existed stay valid
        if doc["voice2"] is None or not speaks:
            del doc["voice2"]  # keys of one-speaker scenes, and of engines that do not speak, stay valid
        if version != 1:
            doc["engine_version"] = version     # keys of an engine's first version stay valid
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


    def seconds_left(self, default: float) -> float:
        """Time this request may still take: ``default``, capped by its deadline."""
        import time

        return default if self.deadline is None else max(0.0, min(default, self.deadline - time.time()))


class ClipResult(BaseModel):
    path: str
    engine: str
    model: str | None = None
    seconds: float = 0.0
    meta: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """A clip generator. ``generate`` writes one MP4 into ``out_dir`` and returns it."""

    name: str
    model: str | None

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult: ...
