"""Produce one scene's raw clip: reuse it from the store, or call its engine, probe, publish."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from prefect import task
from prefect.tasks import exponential_backoff

from engines import EngineError, EngineInputError, InvalidClip, get_engine, is_retryable
from media.probe import MediaInfo, ProbeError, probe
from reelflow.settings import get_settings
from storage import ClipStore, open_store
from tasks import events
from tasks.models import ClipPlan, ClipRef

MIN_DURATION_RATIO = 0.5   # shorter than this share of the request: a broken clip, not a short one


def validate_clip(path: str | Path, requested: float | None) -> MediaInfo:
    """Probe a clip and raise InvalidClip if it is unreadable, empty, truncated or far too short."""
    try:
        info = probe(path, count_frames=True)
    except ProbeError as exc:
        raise InvalidClip(str(exc)) from exc
    if not info.has_video or not info.video_frames:
        raise InvalidClip(f"{path}: no video frames")
    if info.declared_frames and info.video_frames < info.declared_frames:
        raise InvalidClip(f"{path}: truncated, {info.video_frames} of {info.declared_frames} frames readable")
    length = info.video_duration or info.duration
    if requested and length < requested * MIN_DURATION_RATIO:
        raise InvalidClip(f"{path}: {length:.2f} s long, {requested:g} s was asked for")
    return info


def produce_clip(plan: ClipPlan, store: ClipStore, work_dir: Path) -> ClipRef:
    """Return the plan's clip from the store, making it first if it is not there yet."""
    ref = dict(scene_id=plan.scene_id, index=plan.index, key=plan.key, engine=plan.engine,
               model=plan.model, duration=plan.duration, speech=plan.speech)
    if store.exists(plan.key):
        events.emit("clip", scene=plan.scene_id, cached=True, engine=plan.engine)
        return ClipRef(**ref, cached=True, attempts=[f"{plan.engine or 'footage'}: reused"])
    started = time.monotonic()
    if plan.kind == "footage":
        try:
            validate_clip(plan.footage, None)
        except InvalidClip as exc:
            raise EngineInputError(f"scene {plan.scene_id!r}: footage is not a usable video: {exc}") from exc
        store.put_file(plan.key, plan.footage, {"scene": plan.scene_id, "kind": "footage"})
        events.emit("clip", scene=plan.scene_id, cached=False, engine=None)
        return ClipRef(**ref, cached=False, seconds=time.monotonic() - started, attempts=["footage: stored"])

    engine = get_engine(plan.engine, plan.model, plan.engine_params)
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{plan.scene_id}-", dir=work_dir))
    try:
        result = engine.generate(plan.request, scratch)
        validate_clip(result.path, plan.duration)
        store.put_file(plan.key, result.path, {
            "scene": plan.scene_id, "engine": plan.engine or "", "model": plan.model or "",
            "prompt-sha256": plan.key.split("/")[-1].split(".")[0],
        })
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.monotonic() - started
    events.emit("clip", scene=plan.scene_id, cached=False, engine=plan.engine)
    return ClipRef(**ref, cached=False, seconds=seconds, attempts=[f"{plan.engine}: generated"])


def only_transient(task, task_run, state) -> bool:
    """Retry only what can recover: transient engine errors and invalid clips."""
    try:
        state.result()
    except EngineError as exc:
        return is_retryable(exc)
    except Exception:  # noqa: BLE001 - anything else is a bug or bad input
        return False
    return False


_settings = get_settings()


@task(
    task_run_name="clip-{plan.scene_id}-{plan.engine}",
    retries=_settings.clip_retries,
    retry_delay_seconds=exponential_backoff(backoff_factor=_settings.retry_backoff),
    retry_jitter_factor=0.5,
    retry_condition_fn=only_transient,
)
def generate_clip(plan: ClipPlan) -> ClipRef:
    """Reuse or generate one scene's clip and publish it to the store."""
    settings = get_settings()
    return produce_clip(plan, open_store(settings.storage), Path(settings.work_dir) / "clips")
