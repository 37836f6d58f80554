"""A phone's portrait photo is stored on its side with an EXIF tag saying so: engines, the
storyboard and cards read pixels, so every one of them showed the character lying down."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image


def turned_photo(path: Path) -> Path:
    """A JPEG stored 160x80 (left red, right blue) whose EXIF says: turn 90 degrees clockwise.
    Upright it is 80x160, red above blue."""
    img = Image.new("RGB", (160, 80), (220, 20, 20))
    img.paste((20, 20, 220), (80, 0, 160, 80))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, "JPEG", exif=exif, quality=95)
    return path


def red_above_blue(picture: np.ndarray) -> bool:
    h = picture.shape[0]
    top, bottom = picture[h // 8: h // 3].reshape(-1, 3).mean(axis=0), picture[h // 2: 2 * h // 3].reshape(-1, 3).mean(axis=0)
    return top[0] > top[2] + 60 and bottom[2] > bottom[0] + 60


def test_an_upright_copy_is_made_only_for_a_turned_photo(tmp_path):
    from media.images import upright_copy

    plain = tmp_path / "plain.png"
    Image.new("RGB", (10, 20)).save(plain)
    assert upright_copy(plain, tmp_path) == plain
    copy = upright_copy(turned_photo(tmp_path / "turned.jpg"), tmp_path)
    with Image.open(copy) as img:
        assert img.size == (80, 160) and red_above_blue(np.asarray(img.convert("RGB")))


def test_cards_and_the_storyboard_show_a_turned_photo_upright(tmp_path):
    from media.cards import Card, card_png
    from tasks.models import ClipPlan
    from tasks.storyboard import scene_picture
    from engines.base import ClipRequest

    photo = turned_photo(tmp_path / "turned.jpg")
    card = card_png(Card(text=".", image=str(photo)), 80, 160, tmp_path / "card.png")
    assert red_above_blue(np.asarray(Image.open(card).convert("RGB")))
    plan = ClipPlan(scene_id="a", index=0, project="p", kind="generate", key="clips/x.mp4", engine="animatic",
                    request=ClipRequest(scene_id="a", prompt="x", image=str(photo), width=80, height=160, fps=12,
                                        duration=1))
    picture, problem = scene_picture(plan, (80, 160))
    assert problem is None and red_above_blue(np.asarray(picture))


@pytest.mark.slow
def test_an_engine_gets_a_turned_photo_upright_under_the_same_key(small_project):
    import av

    from flows.local import render_local
    from projects import load_project
    from tasks.plan import plan_project

    turned_photo(small_project / "characters" / "max.jpg")
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["characters"]["max"]["image"] = "characters/max.jpg"
    spec["output"].update(width=80, height=160)
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = render_local(str(small_project), scenes=["s0"])
    clip = result.clips[0]
    # the key is still the photo's own (the file as it is), so nothing made before is made again
    assert clip.key == plan_project(load_project(small_project), None, ["s0"], 3.0)[0][0].key
    from storage import open_store
    from reelflow.settings import get_settings

    with av.open(str(open_store(get_settings().storage).path(clip.key))) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert red_above_blue(frame)


def test_a_16_bit_grey_image_keeps_its_tones_for_engines_cards_and_the_storyboard(tmp_path):
    """A 16-bit PNG opens with 0..65535 samples, which ``convert("RGB")`` clips to white."""
    from engines.animatic import AnimaticEngine
    from engines.base import ClipRequest
    from media.cards import Card, card_png
    from media.images import upright_copy
    from tasks.models import ClipPlan
    from tasks.storyboard import scene_picture

    deep = tmp_path / "grey16.png"
    Image.fromarray(np.tile(np.linspace(0, 65535, 160), (160, 1)).astype(np.uint16)).save(deep)

    def dark_to_light(picture) -> bool:
        row = np.asarray(picture.convert("L"), dtype=float)[picture.height // 2]
        return row[-len(row) // 8:].mean() - row[: len(row) // 8].mean() > 80     # clipped: all white

    with Image.open(upright_copy(deep, tmp_path)) as copy:
        assert copy.mode == "L" and dark_to_light(copy)
    assert dark_to_light(Image.open(card_png(Card(text=".", image=str(deep)), 160, 160, tmp_path / "card.png")))
    request = ClipRequest(scene_id="a", prompt="x", image=str(deep), width=160, height=160, fps=12, duration=1)
    picture, _ = scene_picture(ClipPlan(scene_id="a", index=0, project="p", kind="generate", key="clips/x.mp4",
                                        engine="animatic", request=request), (160, 160))
    assert dark_to_light(picture)
    (tmp_path / "work").mkdir()
    assert dark_to_light(Image.open(AnimaticEngine()._still(request, tmp_path / "work")))
