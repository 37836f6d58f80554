"""Small frames cut from clips, kept on this machine under the clip's content key.

Storyboards and contact sheets show one frame per clip, and cutting it costs a seek and the
decode of up to a second of video. A clip's store key names its content, so the frame of a key
never changes: it is kept as a small PNG under ``<work_dir>/cache/frames``, and a re-render
decodes only the clips it has not seen. The cache is derived data: delete it at any time.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from PIL import Image

from media.stitch import middle_frame

FRAME_VERSION = 2     # bump when middle_frame cuts a different picture (2: fitted by display shape)


def frame_cache_dir() -> Path:
    from reelflow.settings import get_settings

    return Path(get_settings().work_dir) / "cache" / "frames"


def cached_middle_frame(key: str, path: str | Path, size: tuple[int, int] | None = None,
                        fit: tuple[int, int] | None = None, folder: Path | None = None) -> Image.Image:
    """``media.stitch.middle_frame(path, size, fit)`` of the clip stored under ``key``, from the
    cache when it has been cut before."""
    folder = folder or frame_cache_dir()
    name = hashlib.sha256(f"{key}|{size}|{fit}|{FRAME_VERSION}".encode()).hexdigest()[:40]
    cached = folder / f"{name}.png"
    try:
        with Image.open(cached) as img:
            img.load()
            if _fits(img.size, size, fit):
                return img.convert("RGB")
    except (OSError, ValueError, SyntaxError):    # PIL's "broken PNG file" is a SyntaxError
        pass                                     # not cut yet (or a damaged file): cut it again
    frame = middle_frame(path, size, fit)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            frame.save(handle, format="PNG", compress_level=1)     # small frames: speed over size
        os.replace(tmp, cached)
    except OSError:
        Path(tmp).unlink(missing_ok=True)        # a full disk costs the cache, not the render
    return frame


def _fits(found: tuple[int, int], size: tuple[int, int] | None, fit: tuple[int, int] | None) -> bool:
    """Can a kept frame of ``found`` pixels be the one asked: exactly ``size``, or inside ``fit``."""
    if size is not None:
        return tuple(found) == tuple(size)
    if fit is not None:
        return 0 < found[0] <= fit[0] and 0 < found[1] <= fit[1]
    return found[0] > 0 and found[1] > 0
