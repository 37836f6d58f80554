"""Turning a remote engine's answer (a link, base64 text, a downloaded file) into a clip file.

Engine answers are untrusted. A link must be ``https://`` (plain ``http://`` only for the
hosts in ``REELFLOW_ALLOW_HTTP_HOSTS``, e.g. a local MinIO), on every redirect too; a local
path is accepted only inside the folder the engine's own client downloads into; ``file:``
and every other scheme are refused. Downloads stop at ``MAX_CLIP_BYTES``.
"""

from __future__ import annotations

import base64
import binascii
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from engines.errors import EngineError, InvalidClip, TransientEngineError
from reelflow.secrets import clip

MAX_CLIP_BYTES = 4 << 30


class RefusedAnswer(EngineError):
    """The engine answered with a link or path we do not follow (not retried)."""


def allowed_http_hosts() -> set[str]:
    from reelflow.settings import get_settings

    return {h.strip().lower() for h in get_settings().allow_http_hosts.split(",") if h.strip()}


def check_link(url: str) -> str:
    """``url`` if an engine may hand it to us, else RefusedAnswer naming why."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise RefusedAnswer(f"the engine answered with a malformed link {clip(url, 80)!r}") from None
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host and host in allowed_http_hosts():
        return url
    if parts.scheme == "http":
        raise RefusedAnswer(f"the engine answered with a plain http link to {host!r}; only https is followed "
                            f"(allow a host with REELFLOW_ALLOW_HTTP_HOSTS)")
    raise RefusedAnswer(f"the engine answered with a {parts.scheme or 'local'!s}: link; only https links are followed")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_link(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_CheckedRedirects)


def _download(url: str, dest: Path, timeout: float) -> None:
    check_link(url)
    ends = time.monotonic() + timeout     # the whole transfer: a socket timeout bounds each read only
    try:
        with _OPENER.open(url, timeout=min(timeout, 30.0)) as response, open(dest, "wb") as out:
            total = 0
            while block := response.read1(1 << 20):       # what has come, not a full megabyte
                total += len(block)
                if total > MAX_CLIP_BYTES:
                    raise InvalidClip(f"the video is larger than {MAX_CLIP_BYTES >> 30} GiB")
                if time.monotonic() > ends:
                    raise TransientEngineError(f"downloading the video took over {timeout:.0f} s "
                                               f"({total} bytes had come)")
                out.write(block)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise InvalidClip(f"the video link is gone (HTTP {exc.code})") from exc
        raise TransientEngineError(f"downloading the video failed: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise TransientEngineError(f"downloading the video failed: {clip(getattr(exc, 'reason', exc), 200)}") from exc


def _discard(target: Path, downloads: Path) -> None:
    """Remove a downloaded file and the folders the client made for it (up to ``downloads``)."""
    try:
        target.unlink()
        folder = target.parent
        while folder != downloads and folder.is_relative_to(downloads):
            folder.rmdir()                  # only if empty: another clip's file keeps its folder
            folder = folder.parent
    except OSError:
        pass


def save_output(kind: str, value: str, dest: Path, timeout: float = 300, downloads: Path | None = None) -> Path:
    """Write the clip behind ``value`` (``url`` / ``base64`` / ``path``) to ``dest``.

    A ``path`` must lie inside ``downloads`` (where the engine's client saved it).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "base64":
        if len(value) > MAX_CLIP_BYTES * 4 // 3 + 4:
            raise InvalidClip(f"the video is larger than {MAX_CLIP_BYTES >> 30} GiB")
        try:
            dest.write_bytes(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise InvalidClip(f"the video is not valid base64: {exc}") from exc
    elif kind == "path":
        target = Path(value).resolve() if value else None
        if target is None or downloads is None or not target.is_relative_to(Path(downloads).resolve()):
            raise RefusedAnswer(f"the engine answered with a local path {clip(value, 80)!r}; "
                                "only files its client downloaded are accepted")
        if not target.is_file():
            raise InvalidClip(f"the engine returned no file ({clip(value, 80)!r})")
        shutil.copyfile(target, dest)
        _discard(target, Path(downloads).resolve())     # the client's copy: else one per clip, for ever
    else:
        _download(value, dest, timeout)
    if dest.stat().st_size == 0:
        raise InvalidClip("the engine returned an empty video")
    return dest
