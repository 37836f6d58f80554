"""A clip stored under a key is made from exactly the input files the key names: a file saved
while a render's clips are queued is refused, never baked in under the old file's key."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from PIL import Image

import engines
from engines import EngineInputError
from projects import load_project
from storage import LocalStore, open_store
from tasks.plan import plan_project
from tests.engines_fake import SavingEngine
from tests.media import tone_clip


@pytest.fixture
def one_at_a_time(monkeypatch):
    """The render's clips made one after another, in scene order."""
    from flows import local

    monkeypatch.setattr(local, "pool_size", lambda: 1)


def saving(path: Path, data: bytes):
    engine = SavingEngine(path, data)
    engines.register("animatic", lambda model=None, params=None: engine)
    return engine


@pytest.fixture(autouse=True)
def _unregister():
    yield
    engines.unregister("animatic")


def red_like(image: Path) -> bytes:
    with Image.open(image) as im:
        out = io.BytesIO()
        Image.new("RGB", im.size, (255, 0, 0)).save(out, "PNG")
        return out.getvalue()


def test_an_image_saved_while_clips_are_queued_is_refused_not_stored_under_the_old_key(small_project,
                                                                                       one_at_a_time):
    from flows.local import render_local

    image = small_project / "characters" / "max.png"
    original = image.read_bytes()
    keys = [chain[0].key for chain in plan_project(load_project(small_project))]
    saving(image, red_like(image))
    with pytest.raises(EngineInputError, match=r"2 of 3 .*max\.png changed after this render planned the clip"):
        render_local(str(small_project))
    store = open_store()
    assert [store.exists(k) for k in keys] == [True, False, False]     # s0 was copied before the save

    image.write_bytes(original)
    engine = saving(small_project / "unused", b"")
    result = render_local(str(small_project), force=True)
    assert sorted(engine.calls) == ["s1", "s2"] and [c.key for c in result.clips] == keys


def test_footage_saved_while_clips_are_queued_is_refused(small_project, one_at_a_time, tmp_path):
    from flows.local import render_local

    footage = tone_clip(small_project / "shot.mp4", seconds=1.5)
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["scenes"][1] = {"id": "s1", "footage": "shot.mp4"}
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    key = plan_project(load_project(small_project))[1][0].key
    saving(footage, tone_clip(tmp_path / "other.mp4", seconds=1.5, color="red").read_bytes())
    with pytest.raises(EngineInputError, match=r"shot\.mp4 changed after this render planned the clip"):
        render_local(str(small_project))
    assert not open_store().exists(key)


def test_footage_written_while_it_is_stored_is_removed_from_the_store(small_project, isolated_storage):
    from tasks.inputs import InputChanged, store_footage

    footage = tone_clip(small_project / "shot.mp4", seconds=1.0)
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["scenes"][0] = {"id": "s0", "footage": "shot.mp4"}
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    plan = plan_project(load_project(small_project))[0][0]

    class SavedDuringTheCopy(LocalStore):
        def put_file(self, key, src, metadata=None):
            out = super().put_file(key, src, metadata)
            with open(src, "ab") as f:
                f.write(b"\0")
            return out

    store = SavedDuringTheCopy(isolated_storage)
    with pytest.raises(InputChanged, match=r"shot\.mp4 changed"):
        store_footage(plan, store, {})
    assert not store.exists(plan.key)


def test_an_engine_s_error_names_the_project_s_file_not_its_copy(small_project, isolated_storage, tmp_path):
    from tasks.clip import produce_clip

    from tasks.plan import clip_key

    image = small_project / "characters" / "max.png"
    plan = plan_project(load_project(small_project))[0][0]
    image.write_bytes(b"not an image")             # keyed as it is now: these bytes are the ones read
    plan = plan.model_copy(update={"key": clip_key(plan.request, plan.engine, plan.model)})
    with pytest.raises(EngineInputError) as err:
        produce_clip(plan, LocalStore(isolated_storage), tmp_path / "clips")
    assert f"cannot read image {image}:" in str(err.value) and ".inputs" not in str(err.value)
