"""Engine answers are untrusted: links, paths, params and error texts, against the real
RunPod-shaped server (tests/remote_servers.py) running our worker."""

from __future__ import annotations

import json
import re

import pytest

from engines import EngineError, InvalidClip, TransientEngineError
from engines.adapters import build_payload
from engines.base import ClipRequest
from engines.remote_files import RefusedAnswer, check_link, save_output
from engines.runpod_endpoint import RunPodEngine
from reelflow import secrets
from tests.engine_contract import request
from tests.remote_servers import RunPodServer

API_KEY = "rpa_HOSTILE_test_key_0123456789abcdef"


@pytest.fixture(scope="module")
def runpod_server():
    with RunPodServer(API_KEY) as server:
        yield server


@pytest.fixture
def runpod_env(runpod_server, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", runpod_server.base_url)
    runpod_server.faults.jobs.clear()
    return runpod_server


@pytest.mark.parametrize("link", [
    "file:///etc/passwd", "FILE:///etc/hostname", "/etc/passwd", "../../secret.mp4", "ftp://host/x.mp4",
    "http://evil.example/x.mp4", "http://10.0.0.1/x.mp4", "gopher://x", "data:video/mp4;base64,AAAA",
    "javascript:alert(1)", "https:///nohost", "",
])
def test_engine_links_other_than_https_are_refused(link):
    with pytest.raises(RefusedAnswer):
        check_link(link)


def test_https_and_allowed_http_hosts_pass(monkeypatch):
    from reelflow.settings import reload_settings

    assert check_link("https://bucket.s3.amazonaws.com/x.mp4")
    assert check_link("http://127.0.0.1:9000/x.mp4") and check_link("http://localhost/x.mp4")
    monkeypatch.setenv("REELFLOW_ALLOW_HTTP_HOSTS", "minio.lan")
    reload_settings()
    assert check_link("http://minio.lan:9000/x.mp4")
    with pytest.raises(RefusedAnswer, match="REELFLOW_ALLOW_HTTP_HOSTS"):
        check_link("http://127.0.0.1:9000/x.mp4")


def test_a_local_path_is_accepted_only_inside_the_engines_downloads(tmp_path):
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"not for you")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "link.mp4").symlink_to(outside)
    for value in (str(outside), str(downloads / "link.mp4"), str(downloads / ".." / "outside.mp4")):
        with pytest.raises(RefusedAnswer, match="local path"):
            save_output("path", value, tmp_path / "out.mp4", downloads=downloads)
    assert not (tmp_path / "out.mp4").exists()


def test_a_file_the_client_downloaded_is_taken_not_left_behind(tmp_path):
    """Every video an hf-space client downloaded stayed in the work folder for ever."""
    downloads = tmp_path / "downloads"
    (downloads / "0a1b2c").mkdir(parents=True)
    (downloads / "0a1b2c" / "video.mp4").write_bytes(b"a video")
    (downloads / "keep").mkdir()
    (downloads / "keep" / "other.mp4").write_bytes(b"another clip's")
    out = save_output("path", str(downloads / "0a1b2c" / "video.mp4"), tmp_path / "out.mp4", downloads=downloads)
    assert out.read_bytes() == b"a video"
    assert sorted(p.relative_to(downloads).as_posix() for p in downloads.rglob("*")) == ["keep", "keep/other.mp4"]


@pytest.mark.parametrize("answer", [
    {"video_url": "file:///etc/passwd"},
    {"data": [{"url": "file:///etc/hostname"}]},
    {"video_url": "http://evil.example/x.mp4"},
    {"url": "/etc/passwd"},
])
def test_runpod_answers_with_local_links_are_refused(runpod_env, tmp_path, answer):
    runpod_env.faults.jobs = ["answer:" + json.dumps(answer)]
    with pytest.raises(RefusedAnswer, match="only https"):
        RunPodEngine(model="720x720_5s", params={"endpoint": "ovi"}).generate(request(), tmp_path)
    assert not list(tmp_path.glob("*.mp4"))


def test_runpod_error_echoing_the_key_is_redacted_before_it_is_cut(runpod_env, tmp_path):
    runpod_env.faults.jobs = ["error:" + "x" * 990 + f" auth failed for key {API_KEY} " + "y" * 400]
    with pytest.raises(TransientEngineError) as info:
        RunPodEngine(model="720x720_5s", params={"endpoint": "ovi"}).generate(request(), tmp_path)
    text = str(info.value)
    assert "failed:" in text and len(text) < 1100
    assert not any(API_KEY[i:i + 8] in text for i in range(len(API_KEY) - 7))


@pytest.mark.parametrize("answers,what", [
    ([("text/html", "<html><body>502 Bad Gateway</body></html>")], "submit: the answer is not JSON"),
    ([("application/json", "[1, 2, 3]")], "submit: the answer is not a JSON object ([1, 2, 3])"),
    ([("application/json", '{"id": "x", "status": "IN_QUEUE"}'), ("application/json", '"COMPLETED"')],
     "status: the answer is not a JSON object (COMPLETED)"),
], ids=["html", "list", "status-string"])
def test_runpod_answers_that_are_not_json_objects_are_transient_at_once(runpod_env, tmp_path, answers, what):
    """A proxy's error page or another API's answer is a failed try for the clip's own retries and
    fallbacks, not a Python error (no retry, no fallback) nor a wait until the job's deadline."""
    import time

    runpod_env.faults.answers = list(answers)
    before = len(runpod_env.requests)
    started = time.monotonic()
    with pytest.raises(TransientEngineError, match=re.escape(f"RunPod {what}")):
        RunPodEngine(model="720x720_5s", params={"endpoint": "ovi", "timeout": 600}).generate(request(), tmp_path)
    assert time.monotonic() - started < 5
    if "status" in what:                        # the job we stop following is cancelled
        assert runpod_env.requests[-1] == "POST /v2/ovi/cancel/x"
    else:
        assert runpod_env.requests[before:] == ["POST /v2/ovi/run"]


def test_an_answer_that_trickles_in_is_bounded_by_the_clip_s_time(runpod_env, tmp_path, monkeypatch):
    """requests' timeout bounds each read: an answer a byte every 0.3 s never tripped it."""
    import time

    from engines import runpod_endpoint

    monkeypatch.setattr(runpod_endpoint, "CALL_SECONDS", 1.0)
    runpod_env.faults.drip = 0.3
    try:
        started = time.monotonic()
        with pytest.raises(TransientEngineError, match="RunPod submit: Timeout"):
            RunPodEngine(model="720x720_5s", params={"endpoint": "ovi", "timeout": 3}).generate(request(), tmp_path)
        assert time.monotonic() - started < 6
    finally:
        runpod_env.faults.drip = 0.0


def test_a_base_url_that_is_not_a_url_names_the_setting(runpod_env, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", "api.runpod.ai/v2")
    with pytest.raises(EngineError, match=r"RUNPOD_ENDPOINT_BASE_URL='api.runpod.ai/v2' is not an http\(s\) URL"):
        RunPodEngine(model="720x720_5s", params={"endpoint": "ovi"}).generate(request(), tmp_path)


def test_a_video_that_trickles_in_is_bounded_by_the_download_s_time(tmp_path):
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from engines.remote_files import _download

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x" * 10)
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(TransientEngineError, match="took over 1 s"):
            _download(f"http://127.0.0.1:{server.server_port}/clip.mp4", tmp_path / "clip.mp4", 1.0)
        assert time.monotonic() - started < 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_redact_hides_fragments_and_clip_redacts_first(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "Q" * 10 + "abcdefghijklmnop")
    token = "hf_" + "Q" * 10 + "abcdefghijklmnop"
    assert secrets.redact(f"bad token {token[:14]}") == "bad token ***"           # a cut-off prefix
    assert secrets.redact(f"x: {token[5:20]}, y") == "x: ***, y"                  # a middle piece
    assert secrets.redact("short hf_QQQ is fine") == "short hf_QQQ is fine"        # under 8 characters
    cut = secrets.clip("e" * 195 + " " + token, 200)
    assert token[:8] not in cut and len(cut) <= 200


def test_redact_exception_scrubs_the_whole_chain(monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    try:
        try:
            raise ValueError(f"SDK said {API_KEY}")
        except ValueError as inner:
            raise EngineError("wrapped") from inner
    except EngineError as exc:
        secrets.redact_exception(exc)
        assert API_KEY not in str(exc.__cause__) and "***" in str(exc.__cause__)


@pytest.mark.parametrize("family", ["ovi", "multitalk", "infinitetalk", "omniavatar"])
def test_params_never_replace_what_the_adapter_owns(tmp_path, family):
    image, audio = tmp_path / "a.png", tmp_path / "a.wav"
    image.write_bytes(b"img"), audio.write_bytes(b"wav")
    forged = {k: "<S>forged<E>" for k in ("prompt", "text_prompt", "image", "audio", "reference_image",
                                          "audio_1", "audio_2")}
    req = ClipRequest(scene_id="s", prompt="A checked prompt.", image=str(image), audio=str(audio), width=64,
                      height=64, fps=24, duration=1, params={**forged, "sample_steps": 3})
    payload = build_payload(family, req, "720x720_5s" if family == "ovi" else None)
    assert payload["prompt"] == "A checked prompt."
    assert "<S>forged<E>" not in json.dumps(payload)


def test_an_invalid_clip_answer_never_reaches_the_store(tmp_path):
    with pytest.raises(InvalidClip):
        save_output("base64", "not base64!", tmp_path / "x.mp4")


@pytest.mark.parametrize("output", [{"data": [{"url": 123}]}, {"data": [{"b64_json": ["a"]}]},
                                    {"data": [{"url": {"x": 1}, "b64_json": None}]}])
def test_an_output_whose_video_is_not_a_string_is_no_video(output):
    """It was a raw AttributeError / TypeError: a reelflow bug to the reader, and no fallback."""
    from engines.adapters import parse_output

    with pytest.raises(InvalidClip, match="no video in the endpoint's output"):
        parse_output(output)
