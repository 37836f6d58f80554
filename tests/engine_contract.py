"""The behaviour every engine must show. Each engine's test class inherits this and
provides an ``engine`` fixture (and ``bad_request`` for its input errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines import ClipRequest, ClipResult, Engine, EngineError, TransientEngineError
from tests.conftest import DEMO
from media.probe import probe


def request(**overrides) -> ClipRequest:
    base = dict(
        scene_id="win",
        prompt="Max waves. Max says <S>Yes! Another win!<E>. <AUDCAP>crowd cheering<ENDAUDCAP>.",
        caption="waving",
        image=str(DEMO / "characters" / "max.png"),
        width=320, height=480, fps=24, duration=2.0, seed=7,
    )
    base.update(overrides)
    return ClipRequest(**base)


class EngineContract:
    """Inherit and provide fixtures ``engine`` and ``bad_call`` (a call that must fail typed).

    ``native_duration``: None for engines that honour the requested duration, else the
    fixed length their model makes (Ovi: 5 s); normalisation fits it to the scene later.
    """

    native_duration: float | None = None
    clip_request = staticmethod(request)

    def test_is_an_engine(self, engine):
        assert isinstance(engine, Engine) and engine.name

    def test_makes_a_valid_clip_of_the_right_length(self, engine, tmp_path):
        result = engine.generate(self.clip_request(), tmp_path)
        assert isinstance(result, ClipResult) and result.engine == engine.name
        info = probe(result.path, count_frames=True)
        assert info.has_video and info.has_audio
        assert info.video_frames == info.declared_frames
        expected = self.native_duration or 2.0
        assert info.video_duration == pytest.approx(expected, abs=1 / 24)
        assert Path(result.path).is_relative_to(tmp_path)

    def test_bad_input_is_a_typed_error(self, bad_call, tmp_path):
        with pytest.raises(EngineError) as info:
            bad_call(tmp_path)
        assert type(info.value).__module__ == "engines.errors"
        assert str(info.value)


class RemoteEngineContract(EngineContract):
    """Remote engines also prove: a job that overruns its time is cancelled (fixture ``slow``:
    (engine with a short timeout, a function telling whether the server saw a cancel))."""

    def test_a_job_past_its_timeout_is_cancelled(self, slow, tmp_path):
        engine, was_cancelled = slow
        with pytest.raises(TransientEngineError, match="cancel"):
            engine.generate(self.clip_request(), tmp_path)
        assert was_cancelled()
