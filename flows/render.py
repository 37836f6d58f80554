"""``render_project``: one production -> one stitched video. ``render_batch``: all of them."""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run

from pydantic import WithJsonSchema

from engines import EngineInputError, falls_back
from engines.registry import names as engine_names
from projects import project_dir_of
from reelflow.secrets import install_log_redaction, redact
from reelflow.settings import get_settings
from storage import open_store
from tasks import events
from tasks.board import plan_rows, scene_table
from tasks.catalog import close_render, open_render
from tasks.clip import submit_clips
from tasks.finished import find_finished_render, remember_render
from tasks.limits import EngineSizedTaskRunner, ensure_engine_limits
from tasks.manifest import publish_manifest, scene_cuts
from tasks.models import ClipPlan, ClipRef, RenderResult
from tasks.project import find_projects, load_spec, plan_clips, reuse_stored
from tasks.publish import publish_artifacts, publish_storyboard
from tasks.speech import synthesize_speech
from tasks.stitch import colour_reference, normalize_clip, stitch_clips
from tasks.review import ask, publish_review, scenes_for_review
from tasks.take_steps import plan_takes, record_picks
from tasks.takes import TakeBook, apply_review, changed_picks, cut_of, take_refs
from reelflow.errors import RenderError, one_line


# The deployment form offers the registered engines as a dropdown; the value stays a plain
# string so an engine registered at run time (a plugin) still works and an unknown name gets
# the registry's own message.
EngineChoice = Annotated[str | None, WithJsonSchema({"enum": [None, *engine_names()]})]


class RenderFailed(RenderError):
    """Some scenes got no clip from any engine in their chain."""


def _run_name() -> str:
    project = flow_run.parameters.get("project", "project")
    return f"render-{project_dir_of(project)[0].resolve().name}"


def new_render_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _produce_all(chains: list[list[ClipPlan]], render_id: str, progress_id) -> list[ClipRef]:
    """Fan out the first engine of every chain; move failed scenes down their chains in waves
    (each clip is taken as it lands, so progress shows clips in the order they are made)."""
    logger = get_run_logger()
    refs: dict[int, ClipRef] = {}
    history: dict[int, list[str]] = {i: [] for i in range(len(chains))}
    errors: dict[int, BaseException] = {}
    wave: dict[int, int] = {i: 0 for i in range(len(chains))}    # chain index -> position in chain
    deadline = time.time() + get_settings().clip_budget             # the budget covers every engine tried
    done = 0
    while wave:
        positions = list(wave.items())
        plans = [chains[i][pos].model_copy(update={"deadline": deadline}) for i, pos in positions]
        futures: list[PrefectFuture] = submit_clips(plans, render_id)
        where = {id(future): position for position, future in zip(positions, futures)}
        next_wave: dict[int, int] = {}
        for future in as_completed(list(futures)):
            i, pos = where[id(future)]
            plan = chains[i][pos]
            outcome = future.result(raise_on_failure=False)
            if isinstance(outcome, ClipRef):
                outcome.attempts = history[i] + outcome.attempts
                refs[i] = outcome
                done += 1
                if progress_id:
                    update_progress_artifact(progress_id, 100 * done / len(chains))
                continue
            history[i].append(f"{plan.engine}: {type(outcome).__name__}")
            errors[i] = outcome
            if falls_back(outcome) and pos + 1 < len(chains[i]):
                logger.warning("scene %s: %s failed (%s); falling back to %s",
                               plan.scene_id, plan.engine, outcome, chains[i][pos + 1].engine)
                events.emit("fallback", scene=plan.scene_id, take=plan.take, render_id=render_id,
                            to=chains[i][pos + 1].engine)
                next_wave[i] = pos + 1
        wave = next_wave
    failed = [i for i in range(len(chains)) if i not in refs]
    if failed:
        lines = []
        for i in failed:
            events.emit("clip_lost", scene=chains[i][0].scene_id, take=chains[i][0].take, render_id=render_id)
            prefix, text = f"scene {chains[i][0].scene_id!r}: ", one_line(redact(errors[i]))
            lines.append(f"{prefix}{text.removeprefix(prefix)} (tried: {', '.join(history[i])})")
        # One line: what the CLI prints and what Prefect puts in the failed state's message.
        message = f"{len(failed)} of {len(chains)} scene(s) got no clip: " + "; ".join(lines)
        if all(isinstance(errors[i], EngineInputError) for i in failed):
            raise EngineInputError(message)
        raise RenderFailed(message)
    return [refs[i] for i in range(len(chains))]


@flow(flow_run_name=_run_name, task_runner=EngineSizedTaskRunner(), log_prints=True)
def render_project(project: str, engine: EngineChoice = None, scenes: list[str] | None = None,
                   takes: int | None = None, redo: list[str] | None = None,
                   force: bool = False, review: bool = False) -> RenderResult:
    """Render a production folder (``projects/<slug>``) into one stitched video.

    Args:
        project: The production folder holding project.yaml (e.g. projects/demo), relative to
            the worker's working directory, or the path of its project.yaml.
        engine: Engine for every generated scene; empty: each scene's engine from project.yaml.
        scenes: Render only these scene ids (a quick preview); empty: every scene.
        takes: Clips per generated scene (overrides each scene's takes); empty: the scene's own.
        redo: Scenes that get one new take, which is picked (saved to picks.yaml).
        force: Render again even if this exact render is finished (same clips, cut, profile and
            finishing options); otherwise that render is returned at once.
        review: Once every take has landed, pause for a person to pick a take per scene or ask
            for a redo (a form on this run in the Prefect UI), then cut.
    """
    install_log_redaction()
    logger = get_run_logger()
    spec = load_spec(project)
    book = plan_takes(synthesize_speech(plan_clips(spec, engine, scenes)), spec, takes, redo)
    chains = reuse_stored(book.chains)
    if not (force or review) and (finished := find_finished_render(spec, chains, book)) is not None:
        logger.info("unchanged since render %s: %s", finished.render_id, finished.video)
        publish_artifacts(finished)      # a run in the UI still shows the report, its links open
        events.emit("done", video=finished.video)
        return finished
    ensure_engine_limits(sorted({p.engine for chain in chains for p in chain if p.engine}))
    render_id = new_render_id()
    open_render(spec, render_id, engine, len(book.picked))
    publish_storyboard(spec, chains, book.picked, render_id)
    table = scene_table(spec.slug, render_id)
    events.emit("plan", total=len(chains), slug=spec.slug, render_id=render_id, scenes=plan_rows(chains))
    progress_id = create_progress_artifact(0.0, description=f"Clips of {spec.slug} landed")
    try:
        result = _render(spec, chains, book, render_id, progress_id, review)
    except Exception as exc:
        close_render(render_id, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        table.close()
    close_render(render_id, result)
    remember_render(spec, result)
    publish_artifacts(result)
    logger.info("render %s: %s (%d generated, %d reused)", render_id, result.video, result.generated, result.reused)
    events.emit("done", video=result.video)
    return result


def _render(spec, chains: list[list[ClipPlan]], book: TakeBook, render_id: str, progress_id,
            review: bool = False) -> RenderResult:
    """Clips, normalisation, stitching: the part of a render that can fail after it started."""
    made = _produce_all(chains, render_id, progress_id)
    actions = {s.id: s.action for s in spec.scenes}
    while review:
        scenes = scenes_for_review(cut_of(made, book.picked), take_refs(made, book.stored), actions)
        publish_review(scenes, spec.slug)
        answer = ask(scenes, spec.slug)
        book, redo_chains = apply_review(book, made, answer.picks, answer.redo)
        if redo_chains:
            made += _produce_all(redo_chains, render_id, None)
        review = answer.again and bool(redo_chains)
    if picks := changed_picks(book, spec):
        record_picks(spec, picks)
    clips = cut_of(made, book.picked)
    match = colour_reference(clips, spec.color_match) if spec.color_match else None
    names = spec.speaker_names() if spec.lower_third else {}
    normalized = normalize_clip.map(clips, profile=unmapped(spec.output), match=unmapped(match),
                                    lower_third=[names.get(c.scene_id) for c in clips],
                                    lower_style=unmapped(spec.lower_third)).result()
    outputs = stitch_clips(normalized, spec.output, spec.slug, render_id, spec.edit())

    store = open_store(get_settings().storage)
    result = RenderResult(
        slug=spec.slug,
        render_id=render_id,
        video=store.url(outputs["video"]),
        video_key=outputs["video"],
        subtitles=store.url(outputs["subtitles"]) if "subtitles" in outputs else None,
        otio=store.url(outputs["otio"]) if "otio" in outputs else None,
        edl=store.url(outputs["edl"]) if "edl" in outputs else None,
        contact_sheet=store.url(outputs["contact_sheet"]),
        duration=outputs["duration"],
        generated=sum(not c.cached for c in made),
        reused=sum(c.cached for c in made),
        clips=clips,
        warnings=list(dict.fromkeys([*(w for chain in chains for w in chain[0].warnings),
                                     *(outputs["timeline"].warnings if "timeline" in outputs else [])])),
        links={c.scene_id: store.url(c.key) for c in clips},
        scenes=scene_cuts(spec, clips, normalized, take_refs(made, book.stored), outputs.get("timeline")),
    )
    return publish_manifest(result)


@flow(name="render-batch", log_prints=True)
def render_batch(root: str = "projects", engine: str | None = None) -> dict[str, str]:
    """Render every ``<root>/*/project.yaml``; one failing production does not stop the rest."""
    logger = get_run_logger()
    outcomes: dict[str, str] = {}
    for folder in find_projects(root):
        name = Path(folder).name
        state = render_project(folder, engine=engine, return_state=True)
        if state.is_completed():
            outcomes[name] = state.result().video
        else:
            outcomes[name] = f"FAILED: {state.message}"
            logger.error("%s failed: %s", name, state.message)
    return outcomes
