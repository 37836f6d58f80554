"""The hf-space and runpod engines against real local servers with the services' contracts
(a gradio app with the Ovi Space's signature; RunPod's REST routes running our worker)."""

from __future__ import annotations

import uuid

import pytest

from engines import EngineInputError, InvalidClip, QuotaExceeded, TransientEngineError
from engines.hf_space import HFSpaceEngine, quota_wait
from engines.runpod_endpoint import RunPodEngine
from media.tts import speak_to_wav
from tasks.clip import validate_clip
from tests.engine_contract import RemoteEngineContract, request
from tests.remote_servers import RunPodServer, SpaceServer

API_KEY = "rpa_q7test_key_0123456789"


@pytest.fixture(scope="module")
def space():
    with SpaceServer() as server:
        yield server


@pytest.fixture(scope="module")
def runpod_server():
    with RunPodServer(API_KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_faults(request):
    for name in ("space", "runpod_server"):
        if name in request.fixturenames:
            server = request.getfixturevalue(name)
            server.faults.http.clear(), server.faults.jobs.clear()
            server.faults.slow, server.faults.rate = 0.0, 0.0


@pytest.fixture
def runpod_env(runpod_server, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", runpod_server.base_url)
    return runpod_server


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("wav") / "line.wav"
    speak_to_wav("Hello there, how are you?", path, "en-us")
    return str(path)


class TestHFSpaceContract(RemoteEngineContract):
    native_duration = 5.0   # Ovi makes 5 s clips whatever is asked

    @pytest.fixture
    def engine(self, space):
        return HFSpaceEngine(params={"space": space.url})

    @pytest.fixture
    def bad_call(self, space):
        engine = HFSpaceEngine(params={"space": space.url, "arguments": {"prompt": "prompt_text"}})
        return lambda out: engine.generate(request(), out)

    @pytest.fixture
    def slow(self, space):
        space.faults.slow = 5
        engine = HFSpaceEngine(params={"space": space.url, "timeout": 1})
        return engine, lambda: True   # gradio_client's Job.cancel() ran (no server-side record)


@pytest.mark.parametrize("family", ["ovi", "multitalk", "infinitetalk", "omniavatar"])
class TestRunPodContract(RemoteEngineContract):
    @pytest.fixture
    def engine(self, runpod_env, family, speech_wav):
        self.native_duration = 5.0 if family == "ovi" else None
        self.clip_request = lambda **kw: request(audio=speech_wav, **kw)
        model = "720x720_5s" if family == "ovi" else None
        return RunPodEngine(model=model, params={"endpoint": family, "family": family, "width": 320, "height": 320}
                            if family == "ovi" else {"endpoint": family, "family": family})

    @pytest.fixture
    def bad_call(self, runpod_env, family):
        if family == "ovi":
            engine = RunPodEngine(model="720x720_5s", params={"endpoint": "ovi", "sample_steps": 5000})
            return lambda out: engine.generate(request(), out)       # the worker refuses: invalid input
        engine = RunPodEngine(params={"endpoint": family, "family": family})
        return lambda out: engine.generate(request(audio=None), out)  # no speech audio for a talking head

    @pytest.fixture
    def slow(self, runpod_env, family, speech_wav):
        runpod_env.faults.slow = 10
        engine = RunPodEngine(model="720x720_5s" if family == "ovi" else None,
                              params={"endpoint": family, "family": family, "timeout": 1.5})
        self.clip_request = lambda **kw: request(audio=speech_wav, **kw)
        before = len(runpod_env.cancelled)
        return engine, lambda: len(runpod_env.cancelled) == before + 1


# -- hf-space faults ------------------------------------------------------------------------

def test_quota_message_gives_the_wait():
    assert quota_wait("You have exceeded your GPU quota (60s left). Retry in 1:02:03") == 3723
    assert quota_wait("something else") is None


@pytest.mark.parametrize("fault,error", [("quota", QuotaExceeded), ("fail", TransientEngineError),
                                         ("none", InvalidClip)])
def test_space_faults_map_to_the_error_tree(space, tmp_path, fault, error):
    space.faults.jobs = [fault]
    with pytest.raises(error) as info:
        HFSpaceEngine(params={"space": space.url}).generate(request(), tmp_path)
    if fault == "quota":
        assert info.value.wait == 3


def test_space_queue_rejections_are_transient(space, tmp_path):
    space.faults.http = [429, 429, 429, 429, 429, 429]
    with pytest.raises(TransientEngineError):
        HFSpaceEngine(params={"space": space.url}).generate(request(), tmp_path)


@pytest.mark.slow
def test_truncated_space_output_is_an_invalid_clip(space, tmp_path):
    space.faults.jobs = ["truncate"]
    result = HFSpaceEngine(params={"space": space.url}).generate(request(), tmp_path)
    with pytest.raises(InvalidClip, match="truncated"):
        validate_clip(result.path, 2.0)


@pytest.fixture
def hub(monkeypatch):
    """A stand-in for the Hugging Face Hub's Space lookup (a Space given by name, not URL),
    answering every request with the status in ``hub.status``."""
    import http.server
    import threading

    import huggingface_hub.constants
    import huggingface_hub.hf_api

    class Hub(http.server.BaseHTTPRequestHandler):
        status = 503

        def do_GET(self):
            self.send_response(Hub.status)
            self.send_header("Content-Type", "application/json")
            if Hub.status == 404:
                self.send_header("X-Error-Code", "RepoNotFound")          # as the Hub says it
            self.end_headers()
            self.wfile.write(b'{"error": "nope"}')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)   # (the suite runs offline)
    try:
        yield Hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("status,error,match", [
    (503, TransientEngineError, "answered HTTP 503"), (429, TransientEngineError, "answered HTTP 429"),
    (401, EngineInputError, "refused the Hugging Face token"), (404, EngineInputError, "no such Space"),
    (None, TransientEngineError, "unreachable: ConnectError")])
def test_hub_faults_looking_a_space_up_by_name_map_to_the_error_tree(hub, monkeypatch, tmp_path, status, error, match):
    """huggingface_hub's own HTTP client raises httpx2 errors, not httpx's: an unreachable or busy
    Hub is transient (retried, then the fallback), a Space that is not there is bad input."""
    import huggingface_hub.hf_api

    from tests.servers import free_port

    if status is None:
        monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", f"http://127.0.0.1:{free_port()}")
    else:
        hub.status = status
    with pytest.raises(error, match=match):
        HFSpaceEngine(params={"space": f"someone/space-{status}"}).generate(request(), tmp_path)


def test_a_changed_space_fails_fast_saying_what_changed(space, tmp_path):
    engine = HFSpaceEngine(params={"space": space.url, "api_name": "/make_video"})
    with pytest.raises(EngineInputError, match="has no endpoint /make_video; it has: /generate_scene"):
        engine.generate(request(), tmp_path)
    engine = HFSpaceEngine(params={"space": space.url, "arguments": {"steps": "num_steps"}})
    with pytest.raises(EngineInputError, match=r"changed: it takes \(text_prompt, sample_steps, image\), not num_steps"):
        engine.generate(request(), tmp_path)
    engine = HFSpaceEngine(params={"space": space.url, "api_name": "/generate_scene_seeded"})
    with pytest.raises(EngineInputError, match="changed: it now requires seed, which reelflow does not send"):
        engine.generate(request(), tmp_path)


def test_one_client_per_space_is_reused(space):
    a, b = HFSpaceEngine(params={"space": space.url}), HFSpaceEngine(params={"space": space.url})
    assert a.client() is b.client()


# -- runpod faults ---------------------------------------------------------------------------

@pytest.mark.slow
def test_runpod_retries_429_and_5xx_itself(runpod_env, tmp_path):
    runpod_env.faults.http = [429, 500, 503, 502]
    result = RunPodEngine(model="720x720_5s", params={"endpoint": "ovi", "width": 160, "height": 160}).generate(
        request(), tmp_path)
    validate_clip(result.path, 5.0)


@pytest.mark.parametrize("fault,error,match", [
    ("fail", TransientEngineError, "CUDA out of memory"),
    ("none", InvalidClip, "completed with no output"),
])
def test_runpod_job_outcomes(runpod_env, tmp_path, fault, error, match):
    runpod_env.faults.jobs = [fault]
    with pytest.raises(error, match=match):
        RunPodEngine(model="720x720_5s", params={"endpoint": "ovi"}).generate(request(), tmp_path)


def test_runpod_truncated_output_is_an_invalid_clip(runpod_env, tmp_path):
    runpod_env.faults.jobs = ["truncate"]
    result = RunPodEngine(model="720x720_5s", params={"endpoint": "ovi", "width": 160, "height": 160}).generate(
        request(), tmp_path)
    with pytest.raises(InvalidClip, match="truncated"):
        validate_clip(result.path, 5.0)


def test_runpod_wrong_key_is_a_clear_input_error(runpod_env, monkeypatch, tmp_path):
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_wrong_key_000000000000000")
    with pytest.raises(EngineInputError, match="refused the API key"):
        RunPodEngine(model="720x720_5s", params={"endpoint": "ovi"}).generate(request(), tmp_path)


def test_runpod_needs_an_endpoint_and_a_key(monkeypatch):
    monkeypatch.delenv("REELFLOW_RUNPOD_ENDPOINT", raising=False)
    with pytest.raises(EngineInputError, match="REELFLOW_RUNPOD_ENDPOINT"):
        RunPodEngine()
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    with pytest.raises(EngineInputError, match="RUNPOD_API_KEY"):
        RunPodEngine(params={"endpoint": "x"}).client()


def test_big_inputs_go_as_presigned_links(runpod_env, moto_s3, monkeypatch, tmp_path, speech_wav):
    from tests.conftest import use_s3

    use_s3(monkeypatch, moto_s3.endpoint, f"in-{uuid.uuid4().hex[:8]}", REELFLOW_INLINE_LIMIT_MB="0.001")
    engine = RunPodEngine(params={"endpoint": "infinitetalk", "family": "infinitetalk"})
    payload_seen = {}
    original = engine._encoder

    def spy(req):
        encode = original(req)
        return lambda path: payload_seen.setdefault(path, encode(path))

    engine._encoder = spy
    result = engine.generate(request(audio=speech_wav), tmp_path)
    assert all(v.startswith(moto_s3.endpoint) and "X-Amz-Signature" in v for v in payload_seen.values())
    validate_clip(result.path, 2.0)


def test_runsync_and_health_routes_work(runpod_env):
    import json
    import urllib.request

    def call(method, path, body=None):
        req = urllib.request.Request(f"{runpod_env.base_url}/{path}", method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    out = call("POST", "ovi/runsync", {"input": {"prompt": "A cat. Audio: piano", "model": "720x720_5s",
                                                  "width": 160, "height": 160}})
    assert out["status"] == "COMPLETED" and out["output"]["object"] == "video.generation"
    assert out["output"]["usage"]["duration_seconds"] == 5.0
    assert call("GET", "ovi/health")["jobs"]["COMPLETED"] >= 1
