"""One clip, one engine call, even with two renders of one production at once."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

import engines
from flows.render import render_project
from tests.engines_fake import CountingEngine

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


class SlowEngine(CountingEngine):
    def generate(self, request, out_dir):
        time.sleep(0.7)                 # long enough that both renders ask for every clip
        return super().generate(request, out_dir)


def render_twice_at_once(project) -> tuple[list, SlowEngine]:
    engine = SlowEngine()
    engines.register("animatic", lambda model=None, params=None: engine)
    results: list = []
    start = threading.Barrier(2)

    def render() -> None:
        start.wait()
        # force: both really render; otherwise the later one may find the earlier one's finished
        # render in the index (correct, but not the race this test is about)
        results.append(render_project(str(project), force=True))

    threads = [threading.Thread(target=render) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        engines.unregister("animatic")
    return results, engine


@pytest.mark.slow
def test_two_renders_at_once_make_each_clip_once_and_both_finish(small_project):
    results, engine = render_twice_at_once(small_project)
    assert len(results) == 2, "a render did not finish"
    assert sorted(engine.calls) == ["s0", "s1", "s2"]
    assert sum(r.generated for r in results) == 3 and sum(r.reused for r in results) == 3
    assert results[0].render_id != results[1].render_id


@pytest.mark.slow
def test_two_renders_at_once_on_s3(small_project, moto_s3, monkeypatch):
    from tests.conftest import use_s3

    use_s3(monkeypatch, moto_s3.endpoint, f"lease-{uuid.uuid4().hex[:8]}")
    results, engine = render_twice_at_once(small_project)
    assert len(results) == 2 and sorted(engine.calls) == ["s0", "s1", "s2"]
