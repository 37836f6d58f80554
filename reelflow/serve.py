"""``reelflow serve``: the store, read-only over HTTP, and a review page per render.

    GET /                            every render in the store, newest first
    GET /review/<slug>/<render_id>   the final video, the storyboard, every scene's takes
    GET /<key>                       a stored object (Range requests: a <video> seeks)

Only GET and HEAD. A request that is refused (405) or carries a body (``Content-Length`` above 0,
or ``Transfer-Encoding``) is answered once and its connection closed, the body discarded unread:
a body is never parsed as a next request (no request smuggling behind a proxy). A key is checked like every store key (no ``..``, no absolute path, no
hidden or partial files, nothing reached through a symlink that leaves the store root), and
folders are never listed. With an S3 store an object answers with a redirect to a fresh
presigned link. Standard library only (``http.server``), no Prefect import.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import socket
import tempfile
import time
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from storage import ClipStore, LocalStore, open_store
from storage.base import StorageError, check_key

TYPES = {
    ".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm", ".m4a": "audio/mp4",
    ".wav": "audio/wav", ".mp3": "audio/mpeg", ".png": "image/png", ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif", ".json": "application/json",
    ".otio": "application/json", ".html": "text/html; charset=utf-8", ".vtt": "text/vtt; charset=utf-8",
    ".srt": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1 << 16
LINGER_BYTES = 1 << 20     # at most this much of an unwanted body is read (and dropped) before closing,
LINGER_SECONDS = 2.0       # for at most this long: closing with unread input resets the connection,
                           # and a client then may lose the answer it was sent


class NotServed(Exception):
    """The request names nothing this server hands out (answered 404)."""


def servable(raw: str) -> str:
    """``raw`` as a store key this server hands out, or NotServed: checked like any store key,
    with hidden (``.x``), partial and metadata files refused."""
    if not raw or "\\" in raw or "\x00" in raw or "%" in raw:
        raise NotServed(raw)
    try:
        key = check_key(raw)
    except ValueError:
        raise NotServed(raw) from None
    if any(part.startswith(".") for part in key.split("/")) or key.endswith((".part", ".meta.json")):
        raise NotServed(raw)
    return key


def object_key(url_path: str) -> str:
    """The store key a URL path names (percent-decoded once), or NotServed."""
    return servable(unquote(url_path, errors="strict").removeprefix("/"))


def inside_root(root: Path, key: str) -> Path:
    """The regular file of servable ``key`` whose real path (symlinks followed) is inside ``root``, or NotServed."""
    try:
        path = (root / servable(key)).resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotServed(key) from None
    if not path.is_relative_to(root) or not path.is_file():
        raise NotServed(key)
    return path


class ServedView:
    """A local store as this server shows it: a key exists only if ``inside_root`` finds it.
    The review pages read through it (manifest, final video, storyboard, file links), so they
    show nothing that the object route answers 404 for. Read-only."""

    def __init__(self, store: LocalStore):
        self.store, self.root = store, store.root

    def exists(self, key: str) -> bool:
        try:
            inside_root(self.root, key)
        except NotServed:
            return False
        return True

    def fetch(self, key: str, workdir: str | Path) -> Path:
        try:
            return inside_root(self.root, key)
        except NotServed:
            raise StorageError(f"{key} is not served from {self.root}") from None

    def list(self, prefix: str = "") -> list[str]:
        return [key for key in self.store.list(prefix) if self.exists(key)]

    def url(self, key: str) -> str:
        return self.store.url(key)


def served_view(store: ClipStore) -> ClipStore:
    """What the server shows of ``store``: a ServedView of a local folder; S3 as it is (its
    objects are keys, no symlinks)."""
    return ServedView(store) if isinstance(store, LocalStore) else store


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``bytes=`` range; None: send everything. ValueError: 416."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match:
        return None                    # multiple or foreign ranges: a full answer is allowed
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:                      # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError("range not satisfiable")
    return start, end


def content_type(key: str) -> str:
    suffix = Path(key).suffix.lower()
    return TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def link_for(store: ClipStore, key: str) -> str:
    """Where the review page's browser finds ``key``: this server for a folder, S3 presigned."""
    from urllib.parse import quote

    return "/" + quote(key) if isinstance(store, (LocalStore, ServedView)) else store.url(key)


class StoreHandler(BaseHTTPRequestHandler):
    server: "StoreServer"
    protocol_version = "HTTP/1.1"
    server_version = "reelflow-serve"
    head = False
    linger = False         # the connection closes with input we did not read: drain it first

    def parse_request(self) -> bool:
        """The base parser, then: a request with a body is its connection's last (we read no body)."""
        if not super().parse_request():
            return False
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length", "0").strip() != "0":
            self.close_connection = self.linger = True
        return True

    def handle(self) -> None:
        super().handle()
        if self.linger:
            self._drain()

    def _drain(self) -> None:
        """Stop sending, then read and drop what the client still sends (bounded in bytes and time),
        so that closing does not reset the connection before the client has read our answer."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            left, deadline = LINGER_BYTES, time.monotonic() + LINGER_SECONDS
            while left > 0 and (wait := deadline - time.monotonic()) > 0:
                self.connection.settimeout(wait)
                chunk = self.connection.recv(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _refuse(self) -> None:
        self.close_connection = self.linger = True     # its body, if any, is never read as a request
        self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only\n",
                        extra={"Allow": "GET, HEAD"})

    def _close_header(self) -> None:
        if self.close_connection:
            self.send_header("Connection", "close")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def _answer(self, head: bool) -> None:
        from reelflow import review_page

        self.head = head
        path = urlsplit(self.path).path
        try:
            if path in ("", "/"):
                return self._send_html(review_page.index_html(self.server.store))
            if path.startswith("/review/"):
                parts = [unquote(p) for p in path.removeprefix("/review/").strip("/").split("/")]
                if len(parts) != 2:
                    raise NotServed(path)
                page = review_page.review_html(self.server.store, *parts)
                if page is None:
                    raise NotServed(path)
                return self._send_html(page)
            self._send_object(object_key(path))
        except (NotServed, UnicodeDecodeError):
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n")
        except StorageError as exc:
            self._send_text(HTTPStatus.BAD_GATEWAY, f"store error: {exc}\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True     # the browser stopped reading (a <video> seeking)
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the connection down silently
            self.log_error("%s: %s", type(exc).__name__, exc)
            self._send_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")

    def _send_object(self, key: str) -> None:
        store = self.server.store
        if not isinstance(store, LocalStore):
            if not store.exists(key):
                raise NotServed(key)
            return self._send_text(HTTPStatus.FOUND, "", extra={"Location": store.url(key)})
        path = self.server.resolve(key)
        with path.open("rb") as f:
            stat = os.fstat(f.fileno())
            size = stat.st_size
            try:
                span = byte_range(self.headers.get("Range"), size)
            except ValueError:
                return self._send_text(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "range not satisfiable\n",
                                       extra={"Content-Range": f"bytes */{size}"})
            first, last = span if span else (0, size - 1)
            length = max(0, last - first + 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
            self.send_header("Content-Type", content_type(key))
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
            self.send_header("X-Content-Type-Options", "nosniff")
            if span:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self._close_header()
            self.end_headers()
            if self.head:
                return
            f.seek(first)
            left = length
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _send_html(self, page: str) -> None:
        self._send_text(HTTPStatus.OK, page, ctype="text/html; charset=utf-8")

    def _send_text(self, status: HTTPStatus, text: str, ctype: str = "text/plain; charset=utf-8",
                   extra: dict[str, str] | None = None) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self._close_header()
        self.end_headers()
        if not self.head:
            self.wfile.write(body)


class StoreServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, store: ClipStore, address: tuple[str, int], verbose: bool = False):
        self.store, self.verbose = store, verbose
        super().__init__(address, StoreHandler)

    def resolve(self, key: str) -> Path:
        """The file of ``key`` inside the store root (symlinks followed), or NotServed."""
        return inside_root(self.store.root, key)


def make_server(storage: str, host: str = "127.0.0.1", port: int = 8765, verbose: bool = True) -> StoreServer:
    """A server (not yet serving) for the store at ``storage`` (a folder or s3:// URL). A folder
    that does not exist is an InputError: a read-only server creates no store."""
    return StoreServer(open_store(storage, create=False), (host, port), verbose=verbose)


def read_json(store: ClipStore, key: str) -> dict | None:
    """A small JSON object from the store, or None if it is absent or unreadable."""
    try:
        if not store.exists(key):
            return None
        with tempfile.TemporaryDirectory(prefix="reelflow-serve-") as tmp:
            data = json.loads(store.fetch(key, tmp).read_text(encoding="utf-8"))
    except (OSError, ValueError, StorageError):
        return None
    return data if isinstance(data, dict) else None
