"""The ``hf-space`` engine: a Hugging Face Space through ``gradio_client`` (2.x).

Default: ``alexnasa/Ovi-ZEROGPU`` ``/generate_scene(text_prompt, sample_steps, image)``
(reference 003). Space, api name and argument names come from the engine params
(``space``, ``api_name``, ``arguments``) or ``REELFLOW_HF_SPACE``. The token comes from
``HF_TOKEN`` or the Prefect Secret block ``hf-token``.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engines import adapters
from engines.base import ClipRequest, ClipResult
from engines.errors import EngineError, EngineInputError, InvalidClip, QuotaExceeded, TransientEngineError
from engines.remote_files import save_output
from reelflow import secrets
from engines.settings import engine_settings
from reelflow.settings import get_settings

DEFAULT_API = "/generate_scene"
# Which Space argument receives what, per model family (the Space's own parameter names).
ARGUMENTS = {"ovi": {"prompt": "text_prompt", "steps": "sample_steps", "image": "image"}}
_QUOTA_RE = re.compile(r"exceeded your GPU quota.*?retry in (\d+):(\d{2}):(\d{2})", re.IGNORECASE | re.DOTALL)

_CLIENTS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def quota_wait(message: str) -> float | None:
    """Seconds from ZeroGPU's "exceeded your GPU quota ... retry in H:MM:SS", or None."""
    match = _QUOTA_RE.search(message)
    if not match:
        return None
    h, m, s = (int(g) for g in match.groups())
    return h * 3600 + m * 60 + s


@contextmanager
def translate_errors(space: str):
    """Map gradio_client's exceptions into the engine error tree, most specific first.

    A Space given by name is looked up on the Hub by huggingface_hub, whose HTTP client is
    ``httpx2`` (its errors are not httpx's) and whose HTTP errors are ``HfHubHTTPError``."""
    from gradio_client import exceptions as gx
    from gradio_client import utils as gu

    statuses, transports, missing = _http_errors()
    try:
        yield
    except EngineError:
        raise
    except gx.AuthenticationError as exc:
        raise EngineInputError(f"{space} refused the Hugging Face token: set HF_TOKEN or the Prefect Secret block 'hf-token'") from exc
    except gx.AppError as exc:
        text = str(exc)
        if "quota" in text.lower():
            raise QuotaExceeded(f"{space}: {text}", wait=quota_wait(text)) from exc
        raise TransientEngineError(f"{space} failed: {text}") from exc
    except (gu.QueueError, gu.TooManyRequestsError) as exc:
        raise TransientEngineError(f"{space} is busy: {exc}") from exc
    except missing as exc:
        raise EngineInputError(f"{space}: no such Space on the Hub (or a private one: set HF_TOKEN)") from exc
    except statuses as exc:
        code = getattr(getattr(exc, "response", None), "status_code", None)
        if code is None:
            raise TransientEngineError(f"{space} is unreachable: {type(exc).__name__}") from exc
        if code in (401, 403):
            raise EngineInputError(f"{space} refused the Hugging Face token (HTTP {code}): set HF_TOKEN") from exc
        if code == 429 or code >= 500:
            raise TransientEngineError(f"{space} answered HTTP {code}") from exc
        raise EngineInputError(f"{space} answered HTTP {code}") from exc
    except transports as exc:
        raise TransientEngineError(f"{space} is unreachable: {type(exc).__name__}") from exc
    except ValueError as exc:   # gradio_client raises ValueError for unknown Spaces and api names
        raise EngineInputError(f"{space}: {exc}") from exc


def _http_errors() -> tuple[tuple, tuple, tuple]:
    """(HTTP status errors, transport errors, "no such repository") of gradio_client's httpx and
    of the Hub client, where it is installed."""
    import httpx

    statuses: list[type] = [httpx.HTTPStatusError]
    transports: list[type] = [httpx.TransportError, ConnectionError, TimeoutError]
    missing: list[type] = []
    try:
        import httpx2

        statuses.append(httpx2.HTTPStatusError)
        transports.append(httpx2.TransportError)
    except ImportError:
        pass
    try:
        from huggingface_hub import errors as hub

        statuses.append(hub.HfHubHTTPError)
        missing.append(hub.RepositoryNotFoundError)
    except (ImportError, AttributeError):
        pass
    return tuple(statuses), tuple(transports), tuple(missing)


def hugging_face_hosted(space: str) -> bool:
    """Is ``space`` a Space on Hugging Face (an id, or a huggingface.co / *.hf.space link)?"""
    if adapters.SPACE_ID.fullmatch(space):
        return True
    import urllib.parse

    parts = urllib.parse.urlsplit(space)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (
        host == "huggingface.co" or host.endswith((".hf.space", ".huggingface.co")))


class HFSpaceEngine:
    name = "hf-space"

    def __init__(self, model: str | None = None, params: dict | None = None):
        self.model = model
        self.params = params or {}
        settings = engine_settings()
        self.space = self.params.get("space") or settings.hf_space
        if why := adapters.space_problem(self.space):
            raise EngineInputError(f"engine.params.space: {why}")
        self.api_name = self.params.get("api_name", DEFAULT_API)
        self.arguments = {**ARGUMENTS["ovi"], **self.params.get("arguments", {})}
        self.timeout = float(self.params.get("timeout", settings.hf_timeout))
        self._checked = False

    def client(self):
        """One gradio client per (Space, token) per process, reused by every clip."""
        # The user's token goes to Hugging Face only: a production may name any link as its Space.
        token = secrets.resolve(None, "hf-token", env="HF_TOKEN") if hugging_face_hosted(self.space) else None
        key = (self.space, token)
        with _LOCK:
            if key not in _CLIENTS:
                from gradio_client import Client

                with translate_errors(self.space):
                    downloads = Path(get_settings().work_dir).resolve() / "hf-space"
                    downloads.mkdir(parents=True, exist_ok=True)
                    _CLIENTS[key] = Client(self.space, token=token, verbose=False, download_files=str(downloads),
                                           analytics_enabled=False)
            return _CLIENTS[key]

    def check_signature(self, client) -> None:
        """Fail fast, saying what changed, if the Space's endpoint no longer takes our arguments."""
        if self._checked:
            return
        with translate_errors(self.space):
            api = client.view_api(print_info=False, return_format="dict")
        endpoints = api.get("named_endpoints", {})
        if self.api_name not in endpoints:
            raise EngineInputError(f"{self.space} has no endpoint {self.api_name}; it has: {', '.join(endpoints) or 'none'}")
        parameters = endpoints[self.api_name].get("parameters", [])
        have = [p.get("parameter_name") or p.get("label") for p in parameters]
        missing = [n for n in self.arguments.values() if n not in have]
        if missing:
            raise EngineInputError(f"{self.space}{self.api_name} changed: it takes ({', '.join(map(str, have))}), "
                                   f"not {', '.join(missing)}")
        unsent = [name for name, p in zip(have, parameters)
                  if not p.get("parameter_has_default", True) and name not in self.arguments.values()]
        if unsent:
            raise EngineInputError(f"{self.space}{self.api_name} changed: it now requires "
                                   f"{', '.join(map(str, unsent))}, which reelflow does not send")
        self._checked = True

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult:
        from gradio_client import handle_file

        started = time.monotonic()
        client = self.client()
        self.check_signature(client)
        params = {**self.params, **request.params}
        kwargs = {self.arguments["steps"]: int(params.get("sample_steps", 40))}
        if request.image:
            kwargs[self.arguments["image"]] = handle_file(request.image)
        kwargs[self.arguments["prompt"]] = request.prompt     # last: the checked prompt wins any name clash
        timeout = request.seconds_left(self.timeout)
        with translate_errors(self.space):
            job = client.submit(api_name=self.api_name, **kwargs)
            try:
                output = job.result(timeout=timeout)
            except TimeoutError as exc:
                job.cancel()
                raise TransientEngineError(f"{self.space} did not finish in {timeout:.0f} s; the job was cancelled") from exc
        if isinstance(output, dict):
            output = output.get("video") or output.get("path") or output.get("value")
        if isinstance(output, (list, tuple)):
            output = output[0] if output else None
        if not output:
            raise InvalidClip(f"{self.space} returned no video")
        kind = "url" if str(output).startswith(("http://", "https://")) else "path"
        downloads = Path(client.download_files) if isinstance(client.download_files, (str, Path)) else None
        path = save_output(kind, str(output), Path(out_dir) / f"{request.scene_id}.mp4", timeout, downloads=downloads)
        return ClipResult(path=str(path), engine=self.name, model=self.model, seconds=time.monotonic() - started)
