"""Produce one scene's raw clip: reuse it from the store, or call its engine, probe, publish."""

from __future__ import annotations

import hashlib
import random
import shutil
from contextlib import nullcontext
from typing import Callable, ContextManager
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from engines import EngineError, EngineInputError, InvalidClip, QuotaExceeded, get_engine, is_retryable, registry, stop
from media.karaoke import words_key, write_words
from media.probe import MediaInfo, ProbeError, probe
from reelflow.scratch import scratch_dir
from reelflow.secrets import redact_exception
from reelflow.settings import get_settings
from storage import ClipStore, open_store
from tasks import events, inputs, intact
from tasks.catalog import AttemptLog, render_catalog
from tasks.limits import engine_slot
from tasks.models import ClipPlan, ClipRef
from tasks.step import in_prefect_run, step


MIN_DURATION_RATIO = 0.5   # shorter than this share of the request: a broken clip, not a short one


def validate_clip(path: str | Path, requested: float | None, spoken: bool = False) -> MediaInfo:
    """Probe a clip and raise InvalidClip if it is unreadable, empty, truncated or far too short,
    or, for a scene with speech (``spoken``), has no sound at all: the line would be lost."""
    try:
        info = probe(path, count_frames=True)
    except ProbeError as exc:
        raise InvalidClip(str(exc)) from exc
    if not info.has_video or not info.video_frames:
        raise InvalidClip(f"{path}: no video frames")
    if info.declared_frames and info.video_frames < info.declared_frames and not _reaches_its_end(info):
        raise InvalidClip(f"{path}: truncated, {info.video_frames} of {info.declared_frames} frames readable")
    length = info.video_end
    if requested and length < requested * MIN_DURATION_RATIO:
        raise InvalidClip(f"{path}: {length:.2f} s long, {requested:g} s was asked for")
    if spoken and not info.has_audio:
        raise InvalidClip(f"{path}: no audio stream, and the scene has speech")
    return info


def _reaches_its_end(info: MediaInfo) -> bool:
    """Do the readable packets of a clip with fewer than its header counts still cover all the
    frames it counts (and its stream's length)? Then the header counted empty chunks (an AVI
    counts one for a frame its MPEG-4 writer did not code), and nothing is cut off."""
    if info.readable_video is None or not info.fps:
        return False
    expected = max(info.video_duration or 0.0, info.declared_frames / info.fps)
    return info.readable_video >= expected - 0.5 / info.fps


def _damaged(store: ClipStore, plan: ClipPlan) -> bool:
    """True (after saying so, and removing it) when the stored clip of ``plan`` cannot be used:
    it is then made again like a missing one (``tasks.intact``)."""
    problem = intact.problem(store, plan.key)
    if problem is None:
        return False
    said = f"scene {plan.scene_id!r}: the stored clip {plan.key} is damaged ({problem}); it is made again"
    events.warn(said)
    store.delete(plan.key)
    return True


def produce_clip(plan: ClipPlan, store: ClipStore, work_dir: Path, catalog: AttemptLog | None = None,
                 render_id: str = "", slot: Callable[[str | None], ContextManager] = lambda engine: nullcontext(),
                 attempt: int = 1) -> ClipRef:
    """Return the plan's clip from the store, making it first if it is not there yet.

    Every engine call is one attempt in the catalog: reused, generated, stored (footage) or
    failed. ``slot(engine)`` is held around the engine call (per-engine concurrency).
    """
    ref = dict(scene_id=plan.scene_id, index=plan.index, key=plan.key, engine=plan.engine,
               model=plan.model, duration=plan.duration, speech=plan.subtitle,
               take=plan.take, seed=plan.request.seed if plan.request else None)
    started = time.monotonic()

    def record(status: str, since: float, exc: BaseException | None = None) -> None:
        if catalog is None:
            return
        seconds = round(time.monotonic() - since, 3)
        finished = datetime.now(timezone.utc)
        catalog.add_attempt(
            render_id=render_id, project=plan.project, scene=plan.scene_id, engine=plan.engine, model=plan.model,
            status=status, started=finished - timedelta(seconds=seconds), finished=finished, seconds=seconds,
            clip_seconds=plan.duration,
            clip_key=plan.key, cost=0.0 if status == "reused" else round(seconds * price_of(plan.engine), 6),
            error_class=type(exc).__name__ if exc else None, error=str(exc) if exc else None,
            worker=worker_id(plan.engine))

    attempt_start = started
    said = dict(scene=plan.scene_id, take=plan.take, render_id=render_id)
    try:
        if store.exists(plan.key) and not _damaged(store, plan):
            record("reused", started)
            events.emit("clip", **said, cached=True, engine=plan.engine)
            return ClipRef(**ref, cached=True, attempts=[f"{plan.engine or 'footage'}: reused"])
        # One engine call per clip, even with two renders at once: hold the key's lease, then
        # look again (a render we waited for may have made it).
        with store.lease(plan.key, wait=_lease_wait(plan.deadline)):
            if store.exists(plan.key) and not _damaged(store, plan):
                record("reused", started)
                events.emit("clip", **said, cached=True, engine=plan.engine)
                return ClipRef(**ref, cached=True, attempts=[f"{plan.engine or 'footage'}: reused (made meanwhile)"])
            if plan.kind == "footage":
                try:
                    validate_clip(plan.footage, None)
                except InvalidClip as exc:
                    raise EngineInputError(f"scene {plan.scene_id!r}: footage is not a usable video: {exc}") from exc
                inputs.store_footage(plan, store, {"project": plan.project, "scene": plan.scene_id, "kind": "footage"})
                intact.vouch(store, plan.key)
                record("stored", started)
                events.emit("clip", **said, cached=False, engine=None)
                return ClipRef(**ref, cached=False, seconds=time.monotonic() - started, attempts=["footage: stored"])

            if plan.deadline is not None and time.time() >= plan.deadline:
                raise EngineError(f"scene {plan.scene_id!r}: the clip's time budget "
                                  f"(REELFLOW_CLIP_BUDGET={get_settings().clip_budget:g} s) is spent")
            request = plan.request.model_copy(update={"deadline": plan.deadline})
            engine = get_engine(plan.engine, plan.model, plan.engine_params)
            work_dir.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f"{plan.scene_id}-", dir=work_dir))
            try:
                with inputs.copied(plan, request, scratch) as request:    # the bytes the key names, copied now
                    if request.image:      # the key is the file's; the engine gets its pixels the right way up
                        from media.images import upright_copy

                        request.image = str(upright_copy(request.image, scratch))
                    events.emit("clip_start", **said, engine=plan.engine, attempt=attempt)
                    with slot(plan.engine):
                        stop.check(f"scene {plan.scene_id!r}'s clip")      # it waited for the slot: still wanted?
                        try:
                            result = engine.generate(request, scratch)
                        except QuotaExceeded as exc:
                            if not _wait_out(exc, plan.deadline):
                                raise
                            record("failed", attempt_start, exc)
                            if stop.pause(exc.wait):
                                stop.check(f"scene {plan.scene_id!r}'s clip after its engine's quota reset")
                            attempt_start = time.monotonic()
                            result = engine.generate(request, scratch)
                    validate_clip(result.path, plan.duration, spoken=bool(plan.speech or request.audio))
                    words = result.meta.get("words") and write_words(result.meta["words"], scratch / "words.json")
                    if words:          # stored before the clip: the clip's presence means complete
                        store.put_file(words_key(plan.key), words,
                                       {"project": plan.project, "scene": plan.scene_id, "kind": "words"})
                    store.put_file(plan.key, result.path, {
                        "project": plan.project, "scene": plan.scene_id, "engine": plan.engine or "",
                        "model": plan.model or "",
                        "prompt-sha256": hashlib.sha256(plan.request.prompt.encode()).hexdigest(),
                    })
                    intact.vouch(store, plan.key)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    except Exception as exc:
        redact_exception(exc)   # an SDK may echo a secret: scrub the whole chain before Prefect logs it
        if not isinstance(exc, stop.Stopped):     # a stopping render's clip that no engine made: no attempt
            record("failed", attempt_start, exc)
        events.emit("clip_failed", **said, engine=plan.engine, error=type(exc).__name__)
        raise
    record("generated", attempt_start)
    events.emit("clip", **said, cached=False, engine=plan.engine)
    return ClipRef(**ref, cached=False, seconds=time.monotonic() - started, attempts=[f"{plan.engine}: generated"])


def _lease_wait(deadline: float | None) -> float:
    """How long to wait for another render's lease on a clip: what is left of the clip's budget."""
    if deadline is None:
        return get_settings().clip_budget
    return max(1.0, deadline - time.time())


def _wait_out(exc: QuotaExceeded, deadline: float | None) -> bool:
    """Is the quota reset short enough (REELFLOW_QUOTA_WAIT_MAX, and within the budget) to wait for?"""
    if exc.wait is None or exc.wait > get_settings().quota_wait_max:
        return False
    return deadline is None or time.time() + exc.wait < deadline


def worker_id(engine: str | None) -> str:
    """Which process made a clip: ``host:pid``, and ``gpu:<index>`` for engines that hold a GPU slot."""
    import os
    import socket

    gpu = engine and engine in registry.names() and registry.info(engine).slot == "gpu"
    return f"{socket.gethostname()}:{os.getpid()}" + (f" gpu:{get_settings().gpu}" if gpu else "")


def price_of(engine: str | None) -> float:
    """Dollars per engine-second (the engine's declaration, or settings ``prices``)."""
    return registry.price(engine)


def only_transient(task, task_run, state) -> bool:
    """Retry only what can recover: transient engine errors and invalid clips (Prefect's retry condition)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - anything but a transient engine error is a bug or bad input
        return retryable(exc)
    return False


def retryable(exc: BaseException) -> bool:
    """Retry it? A transient engine failure, unless the render is stopping (``engines.stop``)."""
    return isinstance(exc, EngineError) and is_retryable(exc) and not stop.stopping()


def retry_delays(retries: int, backoff: float) -> list[float]:
    """Seconds before each retry: ``backoff`` × 2^n (Prefect's ``exponential_backoff``)."""
    return [backoff * 2 ** n for n in range(retries)]


JITTER = 0.5      # each delay is drawn from ±50 % around its value, so retries of many clips spread out


def _task_options() -> dict:
    from prefect.tasks import exponential_backoff

    settings = get_settings()
    return dict(task_run_name="clip-{plan.scene_id}-{plan.engine}", retries=settings.clip_retries,
                retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_backoff),
                retry_jitter_factor=JITTER, retry_condition_fn=only_transient)


@step(_task_options)
def generate_clip(plan: ClipPlan, render_id: str, attempt: int | None = None) -> ClipRef:
    """Reuse or generate one scene's clip and publish it to the store."""
    settings = get_settings()
    if attempt is None:
        attempt = _task_run_count()
    return produce_clip(plan, open_store(settings.storage), scratch_dir("clips"),
                        render_catalog(render_id), render_id, slot=engine_slot, attempt=attempt)


def _task_run_count() -> int:
    if not in_prefect_run():
        return 1
    from prefect.runtime import task_run

    return task_run.run_count


def generate_with_retries(plan: ClipPlan, render_id: str, sleep: Callable[[float], object] = stop.pause) -> ClipRef:
    """``generate_clip`` outside Prefect, with the same retry policy as its Prefect task."""
    settings = get_settings()
    delays = retry_delays(settings.clip_retries, settings.retry_backoff)
    attempt = 1
    while True:
        try:
            return generate_clip.fn(plan, render_id, attempt=attempt)
        except Exception as exc:
            if attempt > len(delays) or not retryable(exc):
                raise
            delay = delays[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)
            if plan.deadline is not None and time.time() + delay >= plan.deadline:
                raise
            sleep(delay)
            if stop.stopping():           # the render stopped during the backoff: no next try
                raise
            attempt += 1
