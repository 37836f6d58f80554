"""The boundary to the Prefect API: an unreachable or refusing server is an InfrastructureError."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from reelflow.errors import InfrastructureError
from reelflow.urls import mask_url

HINT = "start the server (prefect server start), fix PREFECT_API_URL, or unset it to run with a temporary one"


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or ""


def _prefect_fault(exc: BaseException) -> BaseException | None:
    """The transport error (or Prefect's own 'Failed to reach API') behind ``exc``, if any."""
    import httpx

    api = _api_url()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, RuntimeError) and str(exc).startswith("Failed to reach API"):
            return exc
        if isinstance(exc, (httpx.TransportError, httpx.HTTPStatusError)):
            try:
                url = str(exc.request.url)
            except RuntimeError:            # no request attached
                url = ""
            if api and url.startswith(api.rstrip("/")):
                return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def prefect_boundary() -> Iterator[None]:
    """Turn 'the Prefect API cannot be reached' into one InfrastructureError (exit 3)."""
    try:
        yield
    except InfrastructureError:
        raise
    except Exception as exc:
        fault = _prefect_fault(exc)
        if fault is None:
            raise
        api = mask_url(_api_url()) or "the temporary Prefect server"
        detail = type(fault.__cause__ or fault).__name__
        raise InfrastructureError(f"the Prefect API at {api} cannot be reached ({detail})", hint=HINT) from exc
