"""Turn a project into clip plans: render prompts, pick engine chains, compute content keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engines.base import ClipRequest, file_digest
from engines import registry
from engines.registry import default_model
from tasks.models import ClipPlan
from projects.schema import MAX_TAKE_NUMBER, EngineSpec, Project, Scene
from prompts import render_scene_prompt, template_for
from reelflow.errors import InputError
from storage.file_memo import FileMemo, finite


class PlanError(InputError):
    """The project cannot be planned as asked (unknown scene id, bad template)."""


def default_seed(scene_id: str) -> int:
    """A scene's seed when project.yaml gives none: from its id, not its position, so adding,
    removing or reordering scenes changes no other scene's clips, and a pick (a take number)
    keeps naming the clip it picked. Below 2**31 less the most takes, for engines that take
    a signed 32-bit seed."""
    digest = hashlib.sha256(scene_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - MAX_TAKE_NUMBER)


def engine_chain(project: Project, scene: Scene, override: str | None) -> list[EngineSpec]:
    """The scene's engine, then its fallbacks; ``override`` replaces the first engine's name."""
    spec = scene.engine or project.engine
    first = spec if override in (None, spec.name) else EngineSpec(name=override)
    chain = [first] + [EngineSpec(name=name) for name in spec.fallback if name != first.name]
    return chain


def scene_context(project: Project, scene: Scene) -> dict:
    character = project.characters.get(scene.character) if scene.character else None
    partner = project.characters.get(scene.speaker2.character) if scene.speaker2 else None
    return {
        "project": {"title": project.title, "slug": project.slug},
        "scene": scene.model_dump(exclude={"engine"}),
        "character": character.model_dump() if character else None,
        "partner": partner.model_dump() if partner else None,
    }


def clip_key(request: ClipRequest, engine: str, model: str | None, digest=file_digest) -> str:
    declared = registry.info(engine)
    return f"clips/{request.content_key(engine, model, declared.version, declared.speaks, digest)}.mp4"


def _who(character) -> str:
    """A character as the templates introduce one: "Max, a driver" (or "")."""
    if character is None:
        return ""
    return f"{character.name}, {character.description}" if character.description else character.name


def _plan_generate(project: Project, scene: Scene, index: int, spec: EngineSpec, max_wps: float,
                   shown: list[str]) -> ClipPlan:
    root = Path(project.root)
    duration = project.scene_duration(scene)
    model = spec.model or default_model(spec.name)      # the model that really makes the clip is in its key
    params = registry.effective_params(spec.name, spec.params)   # and so are the settings that make it
    template, sandboxed = template_for(spec.model, project.template, root)
    rendered = render_scene_prompt(
        scene_id=scene.id, template=template, sandboxed=sandboxed, model=spec.model,
        context=scene_context(project, scene), speech=spoken_text(scene), duration=duration,
        max_words_per_second=max_wps, root=root,
    )
    character = project.characters.get(scene.character) if scene.character else None
    voice2 = project.characters[scene.speaker2.character].voice if scene.speaker2 else None
    out = project.output
    request = ClipRequest(
        scene_id=scene.id,
        prompt=rendered.prompt,
        caption=scene.action or _who(character),     # no action: who is on screen, not the prompt's remains
        caption_at="top" if project.output.subtitles == "burn" else "bottom",   # the bottom is the subtitles'
        image=str(root / character.image) if character and character.image else None,
        audio=str(root / scene.audio) if scene.audio else None,
        voice=character.voice if character else "en-us",
        voice2=voice2,
        width=out.width, height=out.height, fps=out.fps, duration=duration,
        seed=scene.seed if scene.seed is not None else default_seed(scene.id),
        params=params,
    )
    return ClipPlan(
        scene_id=scene.id, index=index, project=project.slug, kind="generate",
        key=clip_key(request, spec.name, model),
        engine=spec.name, model=model, engine_params=params, request=request,
        duration=duration, speech=scene.speech, warnings=[*rendered.warnings, *_audio_fit(scene, request.audio, duration), *shown,
                  *_boxes(f"scene {scene.id!r}: the {spec.name} engine's caption",
                          scene.action if registry.info(spec.name).captions else "")],
        speech2=scene.speaker2.speech if scene.speaker2 else None,
        voice2=voice2,
    )


def spoken_text(scene: Scene) -> str | None:
    """Everything said in the scene: its line, and a second speaker's (the pace counts both)."""
    return " ".join(t for t in (scene.speech, scene.speaker2.speech if scene.speaker2 else None) if t) or None


# A scene's audio is probed once, not at every plan (a kept answer that is no duration: probed again).
_AUDIO_SECONDS = FileMemo("audio-seconds", check=lambda kept: finite(kept, 0.0))


def _audio_fit(scene: Scene, audio: str | None, duration: float) -> list[str]:
    """A warning when the scene's own audio is longer than the scene (its end is not heard)."""
    if not audio:
        return []
    from media.probe import ProbeError, probe

    try:
        seconds = float(_AUDIO_SECONDS.answer(audio, lambda: repr(probe(audio).audio_duration or 0.0)))
    except (ProbeError, OSError, ValueError):
        return []                      # validate names an unreadable file
    if seconds <= duration + 0.05:
        return []
    return [f"scene {scene.id!r}: audio {scene.audio} is {seconds:.1f} s, the scene {duration:g} s: "
            f"its last {seconds - duration:.1f} s are not heard"]


def _on_screen(project: Project, scene: Scene, index: int, names: dict[str, str]) -> list[str]:
    """Warnings for text this scene puts on screen in a glyph the bundled font lacks (a box).
    ``names``: scene id -> the lower third's name, at the first scene to show each name."""
    texts = []
    if index == 0 and project.title_card:
        texts.append(("title_card.text", project.title_card.text))
    if index == len(project.scenes) - 1 and project.end_card:
        texts.append(("end_card.text", project.end_card.text))
    if scene.id in names:
        texts.append((f"scene {scene.id!r}: the lower third", names[scene.id]))
    if project.output.subtitles == "burn":
        texts.append((f"scene {scene.id!r}: the burned subtitles", spoken_text(scene) or ""))
    return [w for where, text in texts for w in _boxes(where, text)]


def _boxes(where: str, text: str) -> list[str]:
    from media.images import undrawable

    missing = undrawable(text)
    return [f"{where}: the font (Roboto) has no glyph for {missing}: drawn as boxes"] if missing else []


def _plan_footage(project: Project, scene: Scene, index: int, shown: list[str]) -> ClipPlan:
    path = Path(project.root) / scene.footage
    return ClipPlan(
        scene_id=scene.id, index=index, project=project.slug, kind="footage",
        key=f"footage/{file_digest(path)}{path.suffix.lower()}",
        footage=str(path), duration=scene.duration, speech=scene.speech,
        warnings=[*_footage_fit(project, scene, path), *shown],
    )


# Footage's picture and sound ends, probed once (a kept answer that is not two numbers: probed again).
_FOOTAGE_SECONDS = FileMemo("footage-seconds", check=lambda kept: len(kept.split()) == 2
                            and all(finite(n, 0.0) for n in kept.split()))


def _footage_fit(project: Project, scene: Scene, path: Path) -> list[str]:
    """A warning when the scene's ``duration`` is longer than its footage: the rest is the last
    frame held (in silence, unless the footage's sound runs on). Counted in output frames, as the
    clip is cut, so footage of the scene's length to the frame does not warn."""
    if scene.duration is None:
        return []                      # the scene is the footage's own length
    from media.probe import ProbeError, probe

    def ends() -> str:
        info = probe(path)
        return f"{info.video_end!r} {info.audio_duration or 0.0!r}"

    try:
        picture, sound = map(float, _FOOTAGE_SECONDS.answer(path, ends).split())
    except (ProbeError, OSError, ValueError):
        return []                      # validate names an unreadable file
    out = project.output
    held = out.frames_for(scene.duration) - out.frames_for(picture)
    if held <= 0:
        return []
    seconds = float(held / out.rate)
    silent = ", in silence" if sound <= picture + 0.05 else ""
    return [f"scene {scene.id!r}: footage {scene.footage} is {picture:.1f} s, the scene {scene.duration:g} s: "
            f"its last {seconds:.1f} s are its last frame held{silent}"]


def prefer_stored(chains: list[list[ClipPlan]], exists) -> list[list[ClipPlan]]:
    """Put a plan whose clip is already stored first in its chain.

    After a fallback the scene's clip was made by a later engine; an unchanged re-render
    must reuse it rather than ask the first engine again.
    """
    out = []
    for chain in chains:
        stored = next((i for i, plan in enumerate(chain) if exists(plan.key)), 0)
        out.append([chain[stored], *chain[:stored], *chain[stored + 1:]])
    return out


def plan_project(
    project: Project, engine: str | None = None, scene_ids: list[str] | None = None, max_wps: float | None = None
) -> list[list[ClipPlan]]:
    """One chain of plans per scene to render (all scenes, or ``scene_ids`` in project order).
    ``max_wps``: the pace above which speech gets a warning (default REELFLOW_MAX_WORDS_PER_SECOND,
    so validate, prompts and render say the same)."""
    if max_wps is None:
        from reelflow.settings import get_settings

        max_wps = get_settings().max_words_per_second
    known = {s.id for s in project.scenes}
    unknown = [s for s in scene_ids or [] if s not in known]
    if unknown:
        raise PlanError(f"unknown scene id(s) {', '.join(map(repr, unknown))}; scenes are: {', '.join(s.id for s in project.scenes)}")
    chains = []
    first: dict[str, str] = {}                      # a lower third's name -> the first scene to show it
    for scene_id, name in (project.speaker_names() if project.lower_third else {}).items():
        first.setdefault(name, scene_id)
    names = {scene_id: name for name, scene_id in first.items()}
    for index, scene in enumerate(project.scenes):
        if scene_ids and scene.id not in scene_ids:
            continue
        shown = _on_screen(project, scene, index, names)
        if scene.footage:
            chains.append([_plan_footage(project, scene, index, shown)])
        else:
            chains.append([_plan_generate(project, scene, index, spec, max_wps, shown)
                           for spec in engine_chain(project, scene, engine)])
    return chains
