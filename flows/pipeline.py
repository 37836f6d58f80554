"""One render, orchestrated the same way with Prefect or without it.

:func:`render` is the whole render: load and plan, takes, the finished-render shortcut, the
clips (fanned out, each failed scene moved down its engine chain in waves), the review, the
normalisation, the stitch, the catalog and the render index. A :class:`Runner` is what differs:

- ``flows.render.PrefectRunner`` (the ``render_project`` flow: the UI, deployments, schedules,
  and the CLI when a Prefect API is configured): every clip is a task run with Prefect's
  retries, progress and tables are artifacts, the review pauses the run.
- ``flows.local.LocalRunner`` (the CLI's default): a thread pool sized from the engines'
  limits, the same retry policy, progress on the terminal; Prefect is never imported.

Steps (``tasks.step``) are task runs under the first and plain calls under the second.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Protocol

from engines import EngineInputError, falls_back, stop
from engines.settings import engine_settings
from projects import Project
from projects.picks import check_writable
from reelflow.errors import DISK_HINT, InfrastructureError, ReelflowError, RenderError, disk_cause, disk_error, one_line
from reelflow.heap import freeze_heap, return_large_buffers
from reelflow.scratch import scratch_dir, sweep_scratch
from reelflow.secrets import install_log_redaction, redact
from reelflow.settings import get_settings
from storage import open_store
from storage.catalog_errors import CatalogError
from tasks import events, render_index
from tasks.board import plan_rows, scene_table
from tasks.catalog import catalog_ready, close_render, drain_render, open_render, render_catalog
from tasks.clip import produce_clip
from tasks.finished import find_finished_render, remember_render
from tasks.manifest import publish_manifest, scene_cuts
from tasks.models import ClipPlan, ClipRef, RenderResult
from tasks.project import load_spec, plan_clips, reuse_stored
from tasks.publish import publish_artifacts, publish_storyboard
from tasks.review import ask, publish_review, scenes_for_review
from tasks.speech import synthesize_speech
from tasks.ahead import NormalizeAhead
from tasks.stitch import colour_reference, normalize_clips, stitch_clips
from tasks.take_steps import plan_takes, record_picks
from tasks.takes import TakeBook, apply_review, changed_picks, cut_of, picked_from_store, take_refs


class RenderFailed(RenderError):
    """Some scenes got no clip from any engine in their chain."""


class Runner(Protocol):
    """How a render's clips are run and its progress shown."""

    logger: Any

    def submit_clips(self, plans: list[ClipPlan], render_id: str) -> list: ...
    def as_completed(self, futures: list) -> Iterable: ...
    def outcome(self, future) -> ClipRef | BaseException: ...
    def progress(self, slug: str, done: int, total: int) -> None: ...
    def ensure_limits(self, engines: list[str]) -> None: ...
    def aside(self, fn, *args) -> None: ...


def new_render_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def render(runner: Runner, project: str, engine: str | None = None, scenes: list[str] | None = None,
           takes: int | None = None, redo: list[str] | None = None, force: bool = False,
           review: bool = False, spec: Project | None = None) -> RenderResult:
    """Render a production folder into one stitched video (see ``flows.render.render_project``).
    ``spec``: the production already loaded and checked from ``project`` (the CLI's)."""
    install_log_redaction()
    return_large_buffers()
    freeze_heap()
    stop.resume()                        # an earlier render in this process may have been stopped
    logger = runner.logger
    spec = spec if spec is not None else load_spec(project)
    files = render_index.file_states(spec)     # before anything reads them: the index must describe what the cut read
    book = plan_takes(synthesize_speech(plan_clips(spec, engine, scenes)), spec, takes, redo)
    chains = reuse_stored(book.chains)
    if not (force or review) and (finished := find_finished_render(spec, chains, book)) is not None:
        logger.info("unchanged since render %s: %s", finished.render_id, finished.video)
        publish_artifacts(finished)      # a run in the UI still shows the report, its links open
        events.emit("done", video=finished.video)
        return finished
    engine_settings()                    # a bad REELFLOW_<engine setting> is bad input now, not each clip's failure
    if redo or review:
        check_writable(spec.root)        # the picks they make are recorded: not takes paid for and then lost
    runner.ensure_limits(sorted({p.engine for chain in chains for p in chain if p.engine}))
    render_id = new_render_id()
    open_render(spec, render_id, engine, len(book.picked))
    runner.aside(publish_storyboard, spec, chains, book.picked, render_id)
    runner.aside(sweep_scratch)          # what renders killed on this host left in the work folder
    table = scene_table(spec.slug, render_id)
    events.emit("plan", total=len(chains), slug=spec.slug, render_id=render_id, scenes=plan_rows(chains))
    runner.progress(spec.slug, 0, len(chains))
    try:
        result = _render(runner, spec, chains, book, render_id, review)
    except Exception as exc:
        close_render(render_id, error=f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, ReelflowError) and (full := disk_error(exc)) is not None:
            raise full from exc          # a full or read-only disk: infrastructure, one line
        raise
    except BaseException:                # interrupted or cancelled: keep its attempts
        stop.stop()                      # clips that have not reached their engine give up
        try:
            if settle := getattr(runner, "settle", None):
                settle()                 # clips already being paid for land, and their rows are written
        finally:
            stop.resume()                # this render's clips are settled; the process may go on
            drain_render(render_id)
        raise
    finally:
        table.close()
    try:
        close_render(render_id, result)
    except CatalogError as exc:          # the video is published: say where, and that its record is not
        unrecorded = (f"the catalog could not record this render's end ({one_line(exc)}); its video is "
                      f"published, but `reelflow history` may show render {render_id} as crashed")
        logger.warning("%s", unrecorded)
    else:
        unrecorded = None
    remember_render(spec, result, files)
    publish_artifacts(result)
    if unrecorded:
        result = result.model_copy(update={"warnings": [*result.warnings, unrecorded]})
    logger.info("render %s: %s (%d generated, %d reused)", render_id, result.video, result.generated, result.reused)
    events.emit("done", video=result.video)
    return result


def _render(runner: Runner, spec, chains: list[list[ClipPlan]], book: TakeBook, render_id: str,
            review: bool = False) -> RenderResult:
    """Clips, normalisation, stitching: the part of a render that can fail after it started."""
    names = spec.speaker_names() if spec.lower_third else {}
    # Normalising (and mixing the audio) can start as clips land when the cut is already known
    # (no review to change the picks) and no clip waits for another (colour matching needs the
    # reference first).
    ahead = None if review or spec.color_match else NormalizeAhead(spec.output, book.picked, names, spec.lower_third)
    try:
        made, book, clips, normalized, outputs = _cut(runner, spec, chains, book, render_id, review, names, ahead)
    finally:
        if ahead is not None:
            ahead.close()
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
        generated=sum(not c.cached and c.engine is not None for c in made),    # footage is stored, not generated
        reused=sum(c.cached for c in made),
        clips=clips,
        warnings=list(dict.fromkeys([*(w for chain in chains for w in chain[0].warnings),
                                     *(outputs["timeline"].warnings if "timeline" in outputs else [])])),
        links={c.scene_id: store.url(c.key) for c in clips},
        scenes=scene_cuts(spec, clips, normalized, take_refs(made, book.stored), outputs.get("timeline")),
    )
    return publish_manifest(result)


def _cut(runner: Runner, spec, chains: list[list[ClipPlan]], book: TakeBook, render_id: str, review: bool,
         names: dict, ahead: NormalizeAhead | None) -> tuple:
    """The clips, the review, the normalisation and the stitch: (every clip made or found, the
    take book after the review, the cut, its normalised clips, the stitch's outputs)."""
    try:
        made = produce_all(runner, chains, render_id, spec.slug, ahead)
        if ahead is not None:
            ahead.mix(cut_of(made, book.picked), spec.edit(), spec.slug)
    finally:
        if ahead is not None:
            ahead.wait()
    actions = {s.id: s.action for s in spec.scenes}
    while review:
        scenes = scenes_for_review(cut_of(made, book.picked), take_refs(made, book.stored), actions)
        publish_review(scenes, spec.slug)
        answer = ask(scenes, spec.slug)
        book, redo_chains = apply_review(book, made, answer.picks, answer.redo)
        if redo_chains:
            made += produce_all(runner, redo_chains, render_id, None)
        review = answer.again and bool(redo_chains)
    if stored := picked_from_store(book, made):
        made += produce_all(runner, stored, render_id, None)
    clips = cut_of(made, book.picked)
    if missing := sorted({c[0].scene_id for c in chains} - {c.scene_id for c in clips}):
        raise RenderFailed(f"{', '.join(missing)}: the picked take was neither made nor found in the store "
                           f"(picks: {', '.join(f'{s} {book.picked.get(s, 1)}' for s in missing)})")
    if picks := changed_picks(book, spec):
        record_picks(spec, picks)
    match = colour_reference(clips, spec.color_match) if spec.color_match else None
    normalized = normalize_clips(clips, spec.output, match, [names.get(c.scene_id) for c in clips], spec.lower_third)
    return made, book, clips, normalized, stitch_clips(normalized, spec.output, spec.slug, render_id, spec.edit())


def produce_all(runner: Runner, chains: list[list[ClipPlan]], render_id: str, slug: str | None,
                landed: Callable[[ClipRef], None] | None = None) -> list[ClipRef]:
    """Every chain's clip: stored ones at once (no task, no thread), the rest fanned out on the
    first engine of their chain; failed scenes move down their chains in waves. Clips are taken
    as they land, so progress shows them in the order they are made (``slug``: report progress)
    and ``landed`` gets each at once."""
    logger = runner.logger
    refs: dict[int, ClipRef] = {}
    history: dict[int, list[str]] = {i: [] for i in range(len(chains))}
    errors: dict[int, BaseException] = {}
    wave: dict[int, int] = {i: 0 for i in range(len(chains))}    # chain index -> position in chain
    deadline = time.time() + get_settings().clip_budget             # the budget covers every engine tried
    for i, ref in _stored_now(chains, render_id):
        refs[i] = ref
        del wave[i]
        if landed:
            landed(ref)
    if slug and refs:
        runner.progress(slug, len(refs), len(chains))
    while wave:
        positions = list(wave.items())
        plans = [chains[i][pos].model_copy(update={"deadline": deadline}) for i, pos in positions]
        if any(plan.engine for plan in plans):
            catalog_ready(render_id)             # no engine is paid for before the catalog can record it
        futures = runner.submit_clips(plans, render_id)
        where = {id(future): position for position, future in zip(positions, futures)}
        next_wave: dict[int, int] = {}
        for future in runner.as_completed(list(futures)):
            i, pos = where[id(future)]
            plan = chains[i][pos]
            outcome = runner.outcome(future)
            if isinstance(outcome, ClipRef):
                outcome.attempts = history[i] + outcome.attempts
                refs[i] = outcome
                if landed:
                    landed(outcome)
                if slug:
                    runner.progress(slug, len(refs), len(chains))
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
        raise _lost(chains, failed, history, errors, render_id)
    return [refs[i] for i in range(len(chains))]


def _stored_now(chains: list[list[ClipPlan]], render_id: str) -> Iterator[tuple[int, ClipRef]]:
    """The chains whose first plan's clip is already stored, reused in place (a catalog row and
    an event each, as a clip task would give, without a task run or a thread per clip)."""
    settings = get_settings()
    store = open_store(settings.storage)
    stored = [i for i, chain in enumerate(chains) if store.exists(chain[0].key)]
    if not stored:
        return
    catalog = render_catalog(render_id)
    work = scratch_dir("clips")
    for i in stored:
        yield i, produce_clip(chains[i][0], store, work, catalog, render_id)


def _lost(chains, failed: list[int], history, errors, render_id: str) -> RenderError:
    lines = []
    for i in failed:
        plan = chains[i][0]
        events.emit("clip_lost", scene=plan.scene_id, take=plan.take, render_id=render_id)
        name = f"{plan.scene_id!r}" + (f" take {plan.take}" if plan.take > 1 else "")
        prefix, text = f"scene {plan.scene_id!r}: ", one_line(redact(errors[i]))
        lines.append(f"scene {name}: {text.removeprefix(prefix)} (tried: {', '.join(history[i])})")
    # One line: what the CLI prints and what Prefect puts in the failed state's message.
    scenes = {chain[0].scene_id for chain in chains}
    counted = "scene(s)" if len(scenes) == len(chains) else f"take(s) of {len(scenes)} scene(s)"
    message = f"{len(failed)} of {len(chains)} {counted} got no clip: " + "; ".join(lines)
    if any(isinstance(errors[i], InfrastructureError) or disk_cause(errors[i]) for i in failed):
        return InfrastructureError(message, hint=DISK_HINT if any(disk_cause(errors[i]) for i in failed) else None)
    if all(isinstance(errors[i], EngineInputError) for i in failed):
        return EngineInputError(message)
    return RenderFailed(message)
