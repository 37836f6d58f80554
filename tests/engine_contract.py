"""The behaviour every engine must show. Each engine's test class inherits this and
provides an ``engine`` fixture (and ``bad_request`` for its input errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines import ClipRequest, ClipResult, Engine, EngineError
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
    """Inherit and provide fixtures ``engine`` and ``bad_request``."""

    expected_duration_tolerance = 1 / 24

    def test_is_an_engine(self, engine):
        assert isinstance(engine, Engine) and engine.name

    def test_makes_a_valid_clip_of_the_requested_length(self, engine, tmp_path):
        result = engine.generate(request(), tmp_path)
        assert isinstance(result, ClipResult) and result.engine == engine.name
        info = probe(result.path, count_frames=True)
        assert info.has_video and info.has_audio
        assert info.video_duration == pytest.approx(2.0, abs=self.expected_duration_tolerance)
        assert Path(result.path).is_relative_to(tmp_path)

    def test_bad_input_is_a_typed_error(self, engine, bad_request, tmp_path):
        with pytest.raises(EngineError) as info:
            engine.generate(bad_request, tmp_path)
        assert type(info.value).__module__ == "engines.errors"
        assert str(info.value)
