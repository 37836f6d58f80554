"""Semantic checks of a production that schema validation cannot make.

They run on the raw YAML data, so they are reported together with schema problems in one
pass: files resolve inside the project folder (symlinks followed) and are media of an
allowed kind and size; characters, voices and scene ids are consistent; engine and
fallback names exist ("did you mean"); engine params are what the engine declares, merged
with what its settings add (``REELFLOW_LOCAL_PARAMS``), a problem in a setting's value named
by the setting (its location a :class:`Setting`), not by the production.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media.tts import check_voice

Found = list[tuple[tuple, str]]


class Unresolvable(ValueError):
    """A path that names no file: a symlink loop, a name longer than the system allows."""


FOOTAGE_IGNORES = {
    "audio": "plays its own sound (mix a voice-over into the footage file, or make it a generated scene)",
    "engine": "calls no engine",
    "seed": "has no seed",
    "atmosphere": "plays its own sound (no generated ambience)",
    "speaker2": "has no second speaker",
}

def inside(root: Path, rel: str) -> Path | None:
    """Resolve ``rel`` inside ``root`` (symlinks followed); None if absolute or outside;
    :class:`Unresolvable` if it cannot be resolved at all."""
    if not rel or Path(rel).is_absolute() or "\x00" in rel:
        return None
    try:
        target = (root / rel).resolve()
        target.is_file()                     # a component too long fails here, not in resolve()
    except RuntimeError:                     # Python's word for a symlink loop
        raise Unresolvable("a symlink loop") from None
    except OSError as exc:
        raise Unresolvable(exc.strerror or type(exc).__name__) from None
    return target if target.is_relative_to(root.resolve()) else None


@dataclass(frozen=True)
class Setting:
    """First part of a problem's location when the value is a setting's (an environment variable),
    with the production's engine it was checked for."""

    variable: str
    checked_for: tuple


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _file(found: Found, root: Path, loc: tuple, rel: Any, kind: str) -> None:
    """A file the production names: inside the folder, present, and media of ``kind``."""
    from media.whitelist import check_image, check_media

    if not isinstance(rel, str):
        return
    try:
        target = inside(root, rel)
    except Unresolvable as exc:
        found.append((loc, f"{rel[:80]!r} cannot be resolved ({exc})"))
        return
    if target is None:
        found.append((loc, f"{rel!r} is outside the project folder; use a path inside it"))
    elif not target.is_file():
        found.append((loc, f"file {rel!r} not found in the project folder"))
    elif kind == "image":
        if message := check_image(target):
            found.append((loc, f"{rel!r}: {message}"))
    elif kind in ("audio", "video"):
        if message := check_media(target, kind):
            found.append((loc, f"{rel!r}: {message}"))


def _engine(found: Found, loc: tuple, spec: Any) -> None:
    from engines import registry
    from engines.params import check_params, suggest

    spec = _dict(spec)
    known = registry.names()
    name = spec.get("name", "animatic")
    if isinstance(name, str) and name not in known:
        found.append(((*loc, "name"), suggest(name, known)))
    fallback = spec.get("fallback")
    for i, other in enumerate(fallback if isinstance(fallback, list) else []):
        if isinstance(other, str) and other not in known:
            found.append(((*loc, "fallback", i), suggest(other, known)))
    params = spec.get("params", {}) if spec.get("params") is not None else {}   # no params: the checks still run
    if isinstance(params, dict) and isinstance(name, str):
        settings = _settings_params(name)       # what the engine's settings add under the production's params
        source = {key: variable for variable, extra in settings.items() for key in extra if key not in params}
        merged = {key: value for extra in settings.values() for key, value in extra.items()}
        model = spec.get("model") if isinstance(spec.get("model"), str) else None
        for key, message in check_params(name, {**merged, **params}, model):
            path = tuple(key.split("."))
            if key == "model":                  # the model itself
                found.append(((*loc, "model"), message))
            elif path[0] in source:
                found.append(((Setting(source[path[0]], loc), *path), message))
            else:
                found.append(((*loc, "params", *path), message))


def _settings_params(name: str) -> dict[str, dict]:
    """{variable: params} the engine's settings add ({} when they cannot be read: that error is
    the settings' own, said before any work)."""
    from engines import registry
    from reelflow.errors import InputError

    try:
        return registry.settings_params(name)
    except InputError:
        return {}


def semantic_problems(data: dict, root: Path) -> Found:
    """(location, message) for every semantic problem found in raw spec data."""
    found: Found = []
    if isinstance(data.get("template"), str):
        _file(found, root, ("template",), data["template"], "template")
    music = data.get("music")
    if isinstance(music, dict):
        _file(found, root, ("music", "file"), music.get("file"), "audio")
    for which in ("title_card", "end_card"):
        card = data.get(which)
        if isinstance(card, dict):
            _file(found, root, (which, "image"), card.get("image"), "image")
    characters = _dict(data.get("characters"))
    for slug, character in characters.items():
        character = _dict(character)
        _file(found, root, ("characters", slug, "image"), character.get("image"), "image")
        if isinstance(character.get("voice"), str) and (message := check_voice(character["voice"])):
            found.append((("characters", slug, "voice"), message))
    if "engine" in data:
        _engine(found, ("engine",), data["engine"])
    scenes = data.get("scenes")
    seen: set[str] = set()
    for i, scene in enumerate(scenes if isinstance(scenes, list) else []):
        scene = _dict(scene)
        sid = scene.get("id")
        if isinstance(sid, str):
            if sid in seen:
                found.append((("scenes", i, "id"), f"duplicate scene id {sid!r}"))
            seen.add(sid)
        for field in ("character",):
            who = scene.get(field)
            if isinstance(who, str) and who not in characters:
                known = ", ".join(sorted(map(str, characters))) or "none defined"
                found.append((("scenes", i, field), f"unknown character {who!r} (known: {known})"))
        partner = _dict(scene.get("speaker2")).get("character")
        if isinstance(partner, str) and partner not in characters:
            found.append((("scenes", i, "speaker2", "character"), f"unknown character {partner!r}"))
        speech = scene.get("speech")
        if scene.get("speaker2") is not None and not (isinstance(speech, str) and speech.strip()):
            found.append((("scenes", i, "speaker2"), "a second speaker replies to the first: give the scene "
                                                     "its own speech line too"))
        if scene.get("footage") is None and not (scene.get("action") or scene.get("character")):
            found.append((("scenes", i), "a scene needs an action or a character (or footage)"))
        _file(found, root, ("scenes", i, "audio"), scene.get("audio"), "audio")
        _file(found, root, ("scenes", i, "footage"), scene.get("footage"), "video")
        if scene.get("footage") is not None and scene.get("takes") not in (None, 1):
            found.append((("scenes", i, "takes"), "a footage scene has one take"))
        if scene.get("footage") is not None:
            # What only a generated clip uses: on footage it was dropped without a word (a
            # voice-over `audio` was silent in the video).
            for name, why in FOOTAGE_IGNORES.items():
                if scene.get(name) not in (None, "", {}):
                    found.append((("scenes", i, name), f"a footage scene {why}"))
        if "engine" in scene and scene["engine"] is not None:
            _engine(found, ("scenes", i, "engine"), scene["engine"])
    first = _dict(scenes[0]) if isinstance(scenes, list) and scenes else {}
    if first.get("transition") is not None and data.get("title_card") is None:
        found.append((("scenes", 0, "transition"),
                      "the first scene has no join before it, so its transition would do nothing; remove it, "
                      "or add a title_card (the transition is then the join from the card into this scene)"))
    reference = data.get("color_match")
    if isinstance(reference, str) and seen and reference not in seen:
        found.append((("color_match",), f"unknown scene {reference!r} (scenes: {', '.join(sorted(seen))})"))
    return found
