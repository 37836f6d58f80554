"""Shared by the cut tests: a small output profile, timeline rows and a stitch of test clips."""

from __future__ import annotations

from pathlib import Path

from media.timeline import Edit
from projects.schema import Output
from storage import LocalStore
from tasks.models import ClipRef
from tasks.stitch import normalize_stored, stitch_render

FPS = 12
SMALL = Output(width=160, height=240, fps=FPS, subtitles="srt")


def _rows(*frames: int) -> list[dict]:
    return [dict(scene_id=f"s{i}", key=f"k{i}", frames=n, speech=f"line {i}") for i, n in enumerate(frames)]



def _stitch(paths: list[Path], root: Path, edit: Edit | None, profile: Output = SMALL, speech=None):
    store = LocalStore(root / "store")
    refs = []
    for i, path in enumerate(paths):
        key = store.put_file(f"footage/c{i}{path.suffix}", path)
        refs.append(ClipRef(scene_id=f"s{i}", index=i, key=key, engine=None, cached=False, duration=None,
                            speech=speech[i] if speech else None))
    normalized = [normalize_stored(r, profile, store, root / "work") for r in refs]
    keys = stitch_render(normalized, profile, store, root / "work", "renders/t/1", edit)
    return store, normalized, keys
