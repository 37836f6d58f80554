"""Real engines for testing the layers above: they wrap the animatic and inject faults."""

from __future__ import annotations

import threading
from pathlib import Path

from engines import ClipRequest, ClipResult, EngineInputError, QuotaExceeded, TransientEngineError
from engines.animatic import AnimaticEngine


class CountingEngine:
    """The animatic, counting calls per scene."""

    def __init__(self, name: str = "animatic", model=None, params=None):
        self.name, self.model = name, model
        self.inner = AnimaticEngine(model, params)
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult:
        with self._lock:
            self.calls.append(request.scene_id)
        result = self.inner.generate(request, out_dir)
        return result.model_copy(update={"engine": self.name})


class FaultyEngine(CountingEngine):
    """Fails each scene's first ``fail_times`` calls with ``error``, then works (or never, if -1)."""

    def __init__(self, name: str, error: Exception, fail_times: int = -1, truncate: bool = False):
        super().__init__(name)
        self.error, self.fail_times, self.truncate = error, fail_times, truncate

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult:
        with self._lock:
            self.calls.append(request.scene_id)
            failures = self.calls.count(request.scene_id)
        if self.fail_times < 0 or failures <= self.fail_times:
            if self.truncate:
                result = self.inner.generate(request, out_dir)
                data = Path(result.path).read_bytes()
                Path(result.path).write_bytes(data[: len(data) // 3])
                return result.model_copy(update={"engine": self.name})
            raise self.error
        result = self.inner.generate(request, out_dir)
        return result.model_copy(update={"engine": self.name})


def quota(wait: float = 3600) -> QuotaExceeded:
    return QuotaExceeded("You have exceeded your GPU quota (60s left). Retry in 1:00:00", wait=wait)


def transient() -> TransientEngineError:
    return TransientEngineError("HTTP 503 from the engine")


def bad_input() -> EngineInputError:
    return EngineInputError("image must be a PNG or JPEG")


class SavingEngine(CountingEngine):
    """The animatic; its first call first writes ``data`` over ``path``: a person saving a project
    file while the render's later clips are still queued."""

    def __init__(self, path: Path, data: bytes):
        super().__init__()
        self.path, self.data = path, data

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult:
        with self._lock:
            first = not self.calls
        if first:
            self.path.write_bytes(self.data)
        return super().generate(request, out_dir)
