"""The render manifest: ``renders/<slug>/<render_id>/render.json`` = the RenderResult, with every
scene's place in the final video, its picked take and every take that exists (review pages read it)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tasks.step import step

from media.timeline import Timeline
from projects import Project
from reelflow.scratch import scratch_dir
from reelflow.settings import get_settings
from storage import ClipStore, open_store
from tasks.models import ClipRef, NormalizedRef, RenderResult, SceneCut, TakeRef


def scene_cuts(project: Project, cut: list[ClipRef], normalized: list[NormalizedRef],
               takes: dict[str, list[TakeRef]], timeline: Timeline | None = None) -> list[SceneCut]:
    """Where each scene sits in the final video and its takes.

    From the stitch's ``timeline`` when given (a crossfaded scene starts inside the one before
    it), else clips end to end by their exact frame counts.
    """
    rate = project.output.rate
    frames = {n.scene_id: n.frames for n in normalized}
    placed = {item.scene_id: (item.start, item.end) for item in timeline.items} if timeline else {}
    actions = {s.id: s.action or None for s in project.scenes}
    out, at = [], 0
    for ref in sorted(cut, key=lambda r: r.index):
        at, end = placed.get(ref.scene_id, (at, at + frames[ref.scene_id]))
        out.append(SceneCut(scene_id=ref.scene_id, index=ref.index, start=float(at / rate), end=float(end / rate),
                            speech=ref.speech, action=actions.get(ref.scene_id), engine=ref.engine,
                            picked=ref.take, takes=takes.get(ref.scene_id, [])))
        at = end
    return out


def manifest_key(result: RenderResult) -> str:
    return f"renders/{result.slug}/{result.render_id}/render.json"


def write_manifest(result: RenderResult, store: ClipStore, work_dir: Path) -> RenderResult:
    """Publish ``render.json`` (atomically) and return the result that names it."""
    result = result.model_copy(update={"manifest_key": manifest_key(result)})
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        path = Path(tmp) / "render.json"
        path.write_text(result.model_dump_json(indent=1), encoding="utf-8")
        store.put_file(result.manifest_key, path, {"project": result.slug, "kind": "manifest"})
    return result


@step(task_run_name="manifest-{result.render_id}")
def publish_manifest(result: RenderResult) -> RenderResult:
    """Write the render's manifest (scenes, picks, takes) into the store beside its video."""
    settings = get_settings()
    return write_manifest(result, open_store(settings.storage), scratch_dir("manifest"))
