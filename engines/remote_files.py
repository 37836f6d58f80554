"""Turning a remote engine's answer (a link, base64 text, a local path) into a clip file."""

from __future__ import annotations

import base64
import binascii
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from engines.errors import InvalidClip, TransientEngineError


def save_output(kind: str, value: str, dest: Path, timeout: float = 300) -> Path:
    """Write the clip behind ``value`` (``url`` / ``base64`` / ``path``) to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "base64":
        try:
            dest.write_bytes(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise InvalidClip(f"the video is not valid base64: {exc}") from exc
    elif kind == "path":
        if not value or not Path(value).is_file():
            raise InvalidClip(f"the engine returned no file ({value!r})")
        shutil.copyfile(value, dest)
    else:
        try:
            with urllib.request.urlopen(value, timeout=timeout) as response, open(dest, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                raise InvalidClip(f"the video link is gone (HTTP {exc.code})") from exc
            raise TransientEngineError(f"downloading the video failed: HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise TransientEngineError(f"downloading the video failed: {exc}") from exc
    if dest.stat().st_size == 0:
        raise InvalidClip("the engine returned an empty video")
    return dest
