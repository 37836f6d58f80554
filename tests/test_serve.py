"""``reelflow serve`` over real HTTP: objects with Range requests, nothing outside the store,
read-only, and review pages built from a render's manifest."""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
from pathlib import Path

import pytest

from reelflow.serve import NotServed, byte_range, make_server, object_key
from storage import LocalStore

PAYLOAD = bytes(range(256)) * 40          # 10240 bytes, every offset recognisable


@pytest.fixture
def served(isolated_storage, tmp_path):
    """A store with a few objects, served on a free port; stopped in teardown."""
    store = LocalStore(isolated_storage)
    src = tmp_path / "payload.bin"
    src.write_bytes(PAYLOAD)
    for key in ("clips/abc.mp4", "renders/demo/r1/final.mp4", "renders/demo/r1/final.srt", "clips/.hidden.mp4"):
        store.put_file(key, src, {"scene": "x"})
    (tmp_path / "outside.txt").write_text("secret outside the store")
    os.symlink(tmp_path / "outside.txt", store.root / "clips" / "escape.mp4")
    server = make_server(str(isolated_storage), "127.0.0.1", 0, verbose=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield store, server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


def request(port: int, path: str, method: str = "GET", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)   # raw path: no client-side normalising
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def test_whole_object_has_type_length_and_accepts_ranges(served):
    _, port = served
    resp, body = request(port, "/clips/abc.mp4")
    assert resp.status == 200 and body == PAYLOAD
    assert resp.getheader("Content-Type") == "video/mp4"
    assert resp.getheader("Accept-Ranges") == "bytes"
    assert resp.getheader("Content-Length") == str(len(PAYLOAD))
    resp, body = request(port, "/renders/demo/r1/final.srt", "HEAD")
    assert resp.status == 200 and body == b"" and resp.getheader("Content-Length") == str(len(PAYLOAD))
    assert resp.getheader("Content-Type").startswith("text/plain")


@pytest.mark.parametrize("header, first, last", [
    ("bytes=0-99", 0, 99), ("bytes=100-", 100, len(PAYLOAD) - 1), ("bytes=-10", len(PAYLOAD) - 10, len(PAYLOAD) - 1),
    ("bytes=5000-999999", 5000, len(PAYLOAD) - 1),
])
def test_range_requests_answer_206_with_the_exact_bytes(served, header, first, last):
    _, port = served
    resp, body = request(port, "/renders/demo/r1/final.mp4", headers={"Range": header})
    assert resp.status == 206
    assert resp.getheader("Content-Range") == f"bytes {first}-{last}/{len(PAYLOAD)}"
    assert body == PAYLOAD[first:last + 1]


def test_unsatisfiable_range_is_416(served):
    _, port = served
    resp, _ = request(port, "/clips/abc.mp4", headers={"Range": f"bytes={len(PAYLOAD)}-"})
    assert resp.status == 416 and resp.getheader("Content-Range") == f"bytes */{len(PAYLOAD)}"


@pytest.mark.parametrize("path", [
    "/../outside.txt", "/clips/../../outside.txt", "/%2e%2e/outside.txt", "/clips/%2E%2E/%2e%2e/outside.txt",
    "/%252e%252e/outside.txt", "//etc/passwd", "/%2Fetc%2Fpasswd", "/clips/escape.mp4", "/clips",
    "/clips/", "/renders/demo", "/clips/.hidden.mp4", "/clips/abc.mp4.meta.json", "/clips/..%5c..%5coutside.txt",
    "/clips/abc.mp4%00.png", "/nope.mp4",
])
def test_nothing_outside_the_store_no_listing_no_hidden_files(served, path):
    _, port = served
    resp, body = request(port, path)
    assert resp.status == 404, path
    assert b"secret" not in body and b"abc.mp4" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_read_only(served, method):
    store, port = served
    resp, _ = request(port, "/clips/abc.mp4", method)
    assert resp.status == 405 and resp.getheader("Allow") == "GET, HEAD"
    assert store.exists("clips/abc.mp4")


def test_key_and_range_parsing_units():
    with pytest.raises(NotServed):
        object_key("/clips/a%20b.mp4")                   # not a valid store key
    assert object_key("/renders/demo/r1/final.mp4") == "renders/demo/r1/final.mp4"
    assert byte_range(None, 10) is None and byte_range("bytes=0-1,4-5", 10) is None
    with pytest.raises(ValueError):
        byte_range("bytes=-0", 10)


def write_manifest(store: LocalStore, tmp_path: Path, clip: Path) -> None:
    """A render folder as a render publishes it, with a manifest of two scenes (one has 2 takes)."""
    for key in ("clips/t1.mp4", "clips/t2.mp4", "clips/u1.mp4", "renders/demo/20260101-000000-abc123/final.mp4"):
        store.put_file(key, clip)
    manifest = {
        "slug": "demo", "render_id": "20260101-000000-abc123", "video": "x", "video_key": "renders/demo/20260101-000000-abc123/final.mp4",
        "duration": 3.0, "generated": 3, "reused": 0, "clips": [],
        "scenes": [
            {"scene_id": "intro", "index": 0, "start": 0.0, "end": 1.5, "speech": "Hello <b>there</b>",
             "action": "waving", "engine": "animatic", "picked": 2,
             "takes": [{"take": 1, "seed": 0, "key": "clips/t1.mp4", "engine": "animatic", "model": None, "cached": False},
                       {"take": 2, "seed": 1, "key": "clips/t2.mp4", "engine": "animatic", "model": None, "cached": False}]},
            {"scene_id": "outro", "index": 1, "start": 1.5, "end": 3.0, "speech": None, "action": "", "engine": "animatic",
             "picked": 1, "takes": [{"take": 1, "seed": 1, "key": "../etc/passwd", "engine": "animatic", "model": None,
                                     "cached": True}]},
        ],
    }
    path = tmp_path / "render.json"
    path.write_text(json.dumps(manifest))
    store.put_file("renders/demo/20260101-000000-abc123/render.json", path)


def test_review_page_shows_final_takes_side_by_side_and_the_pick(served, tmp_path):
    store, port = served
    write_manifest(store, tmp_path, tmp_path / "payload.bin")
    resp, body = request(port, "/")
    page = body.decode()
    assert resp.status == 200 and '/review/demo/20260101-000000-abc123' in page
    resp, body = request(port, "/review/demo/20260101-000000-abc123")
    page = body.decode()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/html")
    assert 'id="final"' in page and 'src="/renders/demo/20260101-000000-abc123/final.mp4"' in page
    assert '<figure class="take picked" data-take="2"><video controls preload="metadata" src="/clips/t2.mp4#t=0.1">' in page
    assert '<figure class="take" data-take="1"><video controls preload="metadata" src="/clips/t1.mp4#t=0.1">' in page
    assert "Hello &lt;b&gt;there&lt;/b&gt;" in page and "<b>there</b>" not in page
    assert "0:00.0–0:01.5" in page and "0:01.5–0:03.0" in page
    assert "etc/passwd" not in page                      # a bad key in a manifest never becomes a link
    assert request(port, "/review/demo/nope")[0].status == 404
    assert request(port, "/review/demo/..%2f..%2fx")[0].status == 404


@pytest.mark.slow
def test_an_s3_store_is_served_by_redirects_to_fresh_presigned_links(moto_s3, monkeypatch, tmp_path):
    import urllib.request

    from storage import open_store
    from tests.conftest import use_s3

    url = use_s3(monkeypatch, moto_s3.endpoint, "serve-review")
    store = open_store(url)
    src = tmp_path / "payload.bin"
    src.write_bytes(PAYLOAD)
    write_manifest(store, tmp_path, src)
    server = make_server(url, "127.0.0.1", 0, verbose=False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        resp, _ = request(port, "/renders/demo/20260101-000000-abc123/final.mp4")
        location = resp.getheader("Location")
        assert resp.status == 302 and location.startswith(moto_s3.endpoint) and "X-Amz-Signature" in location
        with urllib.request.urlopen(urllib.request.Request(location, headers={"Range": "bytes=10-19"})) as r:
            assert r.status == 206 and r.read() == PAYLOAD[10:20]
        assert request(port, "/clips/nope.mp4")[0].status == 404
        resp, body = request(port, "/review/demo/20260101-000000-abc123")
        page = body.decode()
        assert resp.status == 200 and f'src="{moto_s3.endpoint}/serve-review/reels/clips/t2.mp4?' in page
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_serve_on_a_busy_port_is_one_clear_line(isolated_storage):
    import socket

    from typer.testing import CliRunner

    from reelflow.cli import app

    isolated_storage.mkdir(parents=True, exist_ok=True)      # serve reads an existing store only
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = CliRunner().invoke(app, ["serve", "--port", str(busy.getsockname()[1])])
    assert result.exit_code == 3 and "cannot listen on 127.0.0.1:" in result.output and "Traceback" not in result.output


def raw_exchange(port: int, data: bytes, wait: float = 5.0) -> tuple[bytes, bool]:
    """Send ``data`` on one connection; everything answered, and whether the server closed it."""
    import socket
    import time

    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        got, deadline = b"", time.monotonic() + wait
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return got, True
            got += chunk
        return got, False


INNER = b"GET /clips/abc.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("head", [
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(INNER),
    b"PUT /clips/abc.mp4 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(INNER),
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(INNER),
    b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(INNER),
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"DELETE /clips/abc.mp4 HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_a_request_body_is_never_read_as_the_next_request(served, head):
    """A body (here: a whole GET) after a refused or a body-carrying request gets no answer of
    its own: the server answers the first request once, then closes the connection."""
    _, port = served
    got, closed = raw_exchange(port, head + INNER)
    assert got.count(b"HTTP/1.1 ") == 1, got[:300]
    assert closed and b"Connection: close" in got
    assert PAYLOAD[:64] not in got


def test_keep_alive_still_answers_pipelined_requests_without_a_body(served):
    _, port = served
    first = b"GET /clips/abc.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n"
    got, closed = raw_exchange(port, first + INNER)
    assert got.count(b"HTTP/1.1 206") == 1 and got.count(b"HTTP/1.1 200") == 1 and closed


def put_json(store: LocalStore, tmp_path: Path, key: str, data) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    store.put_file(key, path)


def test_the_review_page_reads_nothing_through_a_symlink_that_leaves_the_store(served, tmp_path):
    """The object route already 404s such a link; the page and the index must not show it either."""
    store, port = served
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"scenes": [{"scene_id": "s", "speech": "OUTSIDE-SECRET", "takes": []}]}))
    (tmp_path / "outside.png").write_bytes(b"\x89PNG outside")
    folder = store.root / "renders" / "evil" / "r1"
    folder.mkdir(parents=True)
    for name, target in (("render.json", outside), ("final.mp4", tmp_path / "payload.bin"),
                         ("storyboard.png", tmp_path / "outside.png")):
        os.symlink(target, folder / name)
    assert request(port, "/renders/evil/r1/render.json")[0].status == 404
    resp, body = request(port, "/review/evil/r1")
    assert resp.status == 404 and b"OUTSIDE-SECRET" not in body
    resp, body = request(port, "/")
    assert resp.status == 200 and b"evil" not in body
    # a link that stays inside the store is followed, as by the object route
    os.symlink(store.root / "renders" / "demo" / "r1" / "final.mp4", store.root / "renders" / "demo" / "r1" / "alias.mp4")
    put_json(store, tmp_path, "renders/demo/r1/render.json", {"duration": 1.0, "scenes": []})
    resp, body = request(port, "/review/demo/r1")
    assert resp.status == 200 and b"alias.mp4" in body and b"1.00 s" in body


@pytest.mark.parametrize("manifest", [
    {"duration": 1e400, "generated": 1e400, "reused": "x", "scenes": [{"scene_id": "s", "start": 1e400, "end": "NaN", "takes": [{"take": 1, "key": "clips/abc.mp4"}]}]},
    '{"duration": NaN, "scenes": [{"scene_id": "s", "start": -Infinity, "end": NaN, "takes": 3}]}',
    {"clips": [{"scene_id": "s", "duration": 1e400, "key": "clips/abc.mp4"}, {"scene_id": "t", "duration": "long"}]},
    {"scenes": "nope", "clips": 7},
    {"scenes": [{"scene_id": "s", "start": [1], "end": {"x": 1}, "picked": [], "takes": [{"take": [2], "seed": {}}]}]},
])
def test_a_manifest_with_bad_numbers_or_shapes_renders_a_page_never_a_500(served, tmp_path, manifest):
    store, port = served
    put_json(store, tmp_path, "renders/demo/r1/render.json", manifest)
    resp, body = request(port, "/review/demo/r1")
    page = body.decode()
    assert resp.status == 200 and 'id="final"' in page, page
    text = page.split("</style>", 1)[1]
    assert not re.search(r"\b(inf|infinity|nan)\b", text, re.IGNORECASE), text


@pytest.mark.parametrize("names", [("storyboard.png", "storyboard.html"), ("storyboard.html",)])
def test_a_render_without_a_final_video_has_its_page_and_is_listed_as_not_finished(served, tmp_path, names):
    """A render publishes its storyboard before its first clip: while it runs, and after it
    failed, the folder holds only that, and it is what there is to look at."""
    store, port = served
    for name in names:
        (tmp_path / name).write_bytes(b"<html>board</html>" if name.endswith("html") else b"\x89PNG board")
        store.put_file(f"renders/demo/20990101-000000-aaaaaa/{name}", tmp_path / name)
    resp, body = request(port, "/review/demo/20990101-000000-aaaaaa")
    page = body.decode()
    assert resp.status == 200 and "No final video yet" in page and 'id="final"' not in page
    assert 'href="/renders/demo/20990101-000000-aaaaaa/storyboard.html"' in page
    if "storyboard.png" in names:
        assert 'src="/renders/demo/20990101-000000-aaaaaa/storyboard.png"' in page
    rows = request(port, "/")[1].decode().split("<tr>")
    unfinished = [r for r in rows if "20990101-000000-aaaaaa" in r]
    finished = [r for r in rows if "/review/demo/r1" in r]
    assert len(unfinished) == 1 and "not finished" in unfinished[0] and "final.mp4" not in unfinished[0]
    assert len(finished) == 1 and "not finished" not in finished[0] and "final.mp4" in finished[0]
    assert request(port, "/renders/demo/20990101-000000-aaaaaa/storyboard.html")[0].status == 200


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_serve_refuses_a_store_folder_that_does_not_exist_and_creates_nothing(isolated_storage, tmp_path, monkeypatch, kind):
    """serve is read-only: a mistyped REELFLOW_STORAGE is one line naming it, not a new empty store."""
    from typer.testing import CliRunner

    from reelflow.cli import app
    from tests.conftest import reload_settings

    wrong = tmp_path / "typo" / "stroe"
    if kind == "file":
        wrong.parent.mkdir()
        wrong.write_text("not a folder")
    monkeypatch.setenv("REELFLOW_STORAGE", str(wrong))
    monkeypatch.setattr("reelflow.serve.StoreServer.serve_forever", lambda self: None)   # never block
    reload_settings()
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "REELFLOW_STORAGE" in lines[0] and str(wrong) in lines[0] and "Traceback" not in result.output
    assert (wrong.is_file() if kind == "file" else not (tmp_path / "typo").exists())


def test_a_render_still_creates_its_store_folder(tmp_path):
    from storage import open_store

    open_store(str(tmp_path / "new" / "store"))
    assert (tmp_path / "new" / "store").is_dir()
