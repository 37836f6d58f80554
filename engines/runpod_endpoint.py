"""The ``runpod`` engine: a RunPod serverless endpoint through the ``runpod`` SDK's client.

Submit (``/run``), poll the raw status with our own backoff, fetch the output, and cancel
the remote job when our time is up (no orphan GPU bills). The SDK's own retry does not
fire on https and its ``Job.output()`` returns None on FAILED, so this module reads the
raw status and the raw ``error`` field itself. 429, 5xx and connection faults are
transient; 401 is a clear input error. Payloads and outputs per model family live in
``engines.adapters``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from engines import adapters, stop
from engines.base import ClipRequest, ClipResult
from engines.errors import EngineError, EngineInputError, InvalidClip, TransientEngineError
from engines.remote_files import save_output
from reelflow import secrets
from engines.settings import engine_settings
from reelflow.settings import get_settings

T = TypeVar("T")
DEFAULT_BASE = "https://api.runpod.ai/v2"
CALL_SECONDS = 60.0        # one call's whole answer (requests' timeout bounds each read, not the answer)
_INPUT_ERROR_MARKERS = ("invalid input", "validation error", "valueerror", "must be one of", "is required")


class RunPodEngine:
    name = "runpod"

    def __init__(self, model: str | None = None, params: dict | None = None):
        self.model = model
        self.params = params or {}
        settings = engine_settings()
        self.endpoint_id = self.params.get("endpoint") or settings.runpod_endpoint
        if not self.endpoint_id:
            raise EngineInputError("the runpod engine needs an endpoint id: set REELFLOW_RUNPOD_ENDPOINT "
                                   "or engine params {endpoint: ...}")
        if not adapters.ENDPOINT_ID.fullmatch(str(self.endpoint_id)):   # one segment of the keyed URL
            raise EngineInputError(f"engine.params.endpoint: not a RunPod endpoint id (letters, digits, '-' and "
                                   f"'_'): {str(self.endpoint_id)[:80]!r}")
        self.family = adapters.family_of(model, self.params)
        self.timeout = float(self.params.get("timeout", settings.runpod_timeout))
        self.poll = settings.runpod_poll
        self.inline_limit = settings.inline_limit_mb * 1024 * 1024
        self._client = None

    # -- transport ---------------------------------------------------------------------------

    def client(self):
        if self._client is None:
            from runpod.endpoint.runner import RunPodClient

            key = secrets.resolve(None, "runpod-api-key", env="RUNPOD_API_KEY")
            if not key:
                raise EngineInputError("no RunPod API key: set RUNPOD_API_KEY or create the Prefect Secret block 'runpod-api-key'")
            self._client = RunPodClient(api_key=key)
            # The SDK retries plain-http calls itself (urllib3: five tries, backoff, a warning line on
            # stderr each): our backoff is the one (and a stopping render is seen between tries).
            from requests.adapters import HTTPAdapter

            self._client.rp_session.mount("http://", HTTPAdapter(max_retries=0))
            # The SDK reads RUNPOD_ENDPOINT_BASE_URL once at import; read it per engine instead.
            self._client.endpoint_url_base = os.environ.get("RUNPOD_ENDPOINT_BASE_URL", DEFAULT_BASE).rstrip("/")
        return self._client

    def _call(self, what: str, fn: Callable[[], T], deadline: float) -> dict:
        """One SDK call with our backoff on 429, 5xx and connection faults, until ``deadline``;
        each try gets a whole answer within ``CALL_SECONDS``. An answer that is not a JSON object
        is a TransientEngineError at once."""
        import requests

        attempt = 0
        while True:
            try:
                answer = _within(fn, max(1.0, min(CALL_SECONDS, deadline - time.time())))
            except requests.exceptions.JSONDecodeError:
                # Not RunPod's API (a proxy's error page, a wrong base URL): the clip's own retries
                # and fallbacks decide, not a wait until the deadline.
                raise TransientEngineError(f"RunPod {what}: the answer is not JSON") from None
            except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                    requests.exceptions.InvalidURL) as exc:
                base = secrets.clip(self.client().endpoint_url_base, 120)
                raise EngineInputError(f"RUNPOD_ENDPOINT_BASE_URL={base!r} is not an http(s) URL "
                                       f"({type(exc).__name__})") from None
            except RuntimeError as exc:            # the SDK's 401
                if "unauthorized" in str(exc).lower():
                    raise EngineInputError("RunPod refused the API key (401): check RUNPOD_API_KEY") from exc
                raise
            except requests.HTTPError as exc:
                code = exc.response.status_code if exc.response is not None else 0
                if code == 404:
                    raise EngineInputError(f"RunPod endpoint {self.endpoint_id!r} not found (404) during {what}") from exc
                if code not in (408, 429) and code < 500:
                    raise EngineInputError(f"RunPod rejected {what}: HTTP {code}") from exc
                error = f"HTTP {code}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                error = type(exc).__name__
            else:
                if isinstance(answer, dict):
                    return answer
                raise TransientEngineError(f"RunPod {what}: the answer is not a JSON object ({secrets.clip(answer, 80)})")
            attempt += 1
            pause = min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
            if time.time() + pause > deadline:
                raise TransientEngineError(f"RunPod {what}: {error}, still failing after {attempt} tries")
            if what == "submit":          # no job yet, nothing paid for: a stopping render waits for none
                if stop.pause(pause):
                    stop.check(f"RunPod submit ({error}, {attempt} tries)")
            else:
                time.sleep(pause)

    # -- the job -----------------------------------------------------------------------------

    def _encoder(self, request: ClipRequest) -> adapters.Encoder:
        """Base64 inline, or presigned links from the store when the inputs are too big for /run."""
        inputs = [p for p in (request.image, request.audio, request.audio2) if p]
        if sum(Path(p).stat().st_size for p in inputs) * 4 / 3 <= self.inline_limit:
            return adapters.b64
        from engines.base import file_digest
        from storage import open_store

        store = open_store()

        def link(path: str) -> str:
            key = f"inputs/{file_digest(path)}{Path(path).suffix.lower()}"
            if not store.exists(key):
                store.put_file(key, path)
            url = store.url(key)
            if not url.startswith(("http://", "https://")):
                raise EngineInputError(f"{path} is too big to send inline and the store "
                                       f"({get_settings().storage}) makes no links: use s3:// storage")
            return url

        return link

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult:
        started = time.monotonic()
        request = request.model_copy(update={"params": {**self.params, **request.params}})
        budget = request.seconds_left(self.timeout)
        deadline = time.time() + budget
        payload = adapters.build_payload(self.family, request, self.model, self._encoder(request))
        client = self.client()
        submitted = self._call("submit", lambda: client.post(f"{self.endpoint_id}/run", {"input": payload}, timeout=30),
                               deadline)
        job_id = submitted.get("id")
        if not job_id:
            raise TransientEngineError(f"RunPod accepted no job: {secrets.clip(submitted, 200)}")
        output = self._wait(client, job_id, deadline, budget)
        kind, value = adapters.parse_output(output)
        path = save_output(kind, value, Path(out_dir) / f"{request.scene_id}.mp4", max(30.0, deadline - time.time()))
        return ClipResult(path=str(path), engine=self.name, model=self.model, seconds=time.monotonic() - started,
                          meta={"job": job_id, "family": self.family})

    def _wait(self, client, job_id: str, deadline: float, budget: float) -> Any:
        pause = 0.25
        while True:
            if time.time() >= deadline:
                self.cancel(job_id)
                raise TransientEngineError(f"RunPod job {job_id} did not finish in {budget:.0f} s; it was cancelled")
            try:
                state = self._call("status", lambda: client.get(f"{self.endpoint_id}/status/{job_id}", timeout=30),
                                   deadline)
            except EngineError:
                self.cancel(job_id)                # the job may run on: nobody would collect (or stop) it
                raise
            status = state.get("status")
            if status == "COMPLETED":
                if state.get("output") is None:
                    raise InvalidClip(f"RunPod job {job_id} completed with no output")
                return state["output"]
            if status == "FAILED":
                error = secrets.clip(state.get("error") or "no error message", 1000)
                if any(marker in error.lower() for marker in _INPUT_ERROR_MARKERS):
                    raise EngineInputError(f"RunPod job {job_id} failed: {error}")
                raise TransientEngineError(f"RunPod job {job_id} failed: {error}")
            if status in ("CANCELLED", "TIMED_OUT"):
                raise TransientEngineError(f"RunPod job {job_id} ended {status}")
            if status not in ("IN_QUEUE", "IN_PROGRESS"):
                raise EngineError(f"RunPod job {job_id} has an unknown status {status!r}")
            time.sleep(min(pause, max(0.0, deadline - time.time())))
            pause = min(self.poll, pause * 1.6)

    def cancel(self, job_id: str) -> None:
        """Cancel a remote job (best effort, a few tries): nobody pays for a job we gave up on."""
        client = self.client()
        try:
            self._call("cancel", lambda: client.post(f"{self.endpoint_id}/cancel/{job_id}", None, timeout=10),
                       time.time() + 15)
        except EngineError:
            pass


def _within(fn: Callable[[], T], seconds: float) -> T:
    """``fn()``, or ``requests.Timeout`` when it has not returned in ``seconds`` (an answer that
    trickles in a byte at a time never trips a per-read timeout). The abandoned call ends on its
    own, on a daemon thread."""
    import requests

    box: dict[str, Any] = {}
    done = threading.Event()

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=call, name="reelflow-runpod-call", daemon=True).start()
    if not done.wait(seconds):
        raise requests.Timeout(f"no whole answer in {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
