"""The finished-render index: an unchanged production is found before any work starts.

A finished render is keyed by a digest of exactly what the stitch consumes: the picked
clips' keys in order (with each scene's id, length and subtitle text), the whole output
profile, every finishing option of the spec (any top-level section or scene field that does
not only feed a clip's content key, so transitions, music and cards count once they exist),
the take each scene's cut uses (what ``picks.yaml`` picks, or a redo or review picked; the
clip keys alone say it too), and the content of every project file those options name.
Its entry, ``renders/index/<digest>.json`` in the clip store, points at the final files.

Pure (no Prefect): the CLI looks renders up here without importing Prefect.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from engines.base import file_digest
from projects.schema import Project
from storage import ClipStore
from storage.file_memo import identity
from tasks.models import ClipPlan, ClipRef, RenderResult

INDEX_PREFIX = "renders/index"
STITCH_VERSION = 4        # bump when the stitch makes different output from the same inputs (cards, subtitles,
                          # normalisation: media.stitch.NORMALIZE_VERSION, lower thirds ...)
# Spec parts that only decide a clip's content key (and so reach the digest through the key).
CLIP_ONLY = {"characters", "engine", "template", "scenes"}
SCENE_CLIP_ONLY = {"id", "character", "action", "speech", "speaker2", "atmosphere", "duration", "engine", "seed", "takes",
                   "audio", "footage"}


def _named_files(value, root: Path, found: dict[str, Path]) -> None:
    """Every project file named by a string inside ``value`` (music, card images, ...)."""
    if isinstance(value, dict):
        for v in value.values():
            _named_files(v, root, found)
    elif isinstance(value, list):
        for v in value:
            _named_files(v, root, found)
    elif isinstance(value, str) and value and len(value) < 1024 and "\n" not in value:
        try:
            path = (root / value).resolve()
            if path.is_relative_to(root) and path.is_file():
                found[value] = path
        except (OSError, ValueError):
            pass


def _options(spec: Project) -> tuple[dict, dict]:
    """The spec's finishing options: its top-level sections and each scene's own, beyond the clips."""
    top = spec.model_dump(mode="json", exclude=CLIP_ONLY)
    scenes = {s.id: extra for s in spec.scenes if (extra := s.model_dump(mode="json", exclude=SCENE_CLIP_ONLY))}
    return top, scenes


def _files(spec: Project) -> dict[str, Path]:
    root = Path(spec.root).resolve() if spec.root else Path.cwd()
    found: dict[str, Path] = {}
    _named_files(list(_options(spec)), root, found)
    return found


def file_states(spec: Project) -> dict[str, list]:
    """The identity (``storage.file_memo.identity``: path, inode, size, mtime, ctime) of every
    project file the finishing options name. Taken when a render starts, before anything reads
    them, and compared when the render is indexed (:func:`changed_files`)."""
    return {name: list(identity(path) or ()) for name, path in _files(spec).items()}


def changed_files(spec: Project, before: dict[str, list]) -> list[str]:
    """The files named by the finishing options that were written, replaced, added or removed
    since ``before`` (:func:`file_states`): the stitch may have read other bytes than they hold."""
    now = file_states(spec)
    return sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))


def finishing(spec: Project, takes: dict[str, int]) -> dict:
    """Everything in the spec the stitch and finishing read beyond the clips themselves.
    ``takes``: scene id -> the take its cut uses (the cut's own, not the spec's picks: a redo's
    render records the take it made, which picks.yaml names only after it)."""
    top, scenes = _options(spec)
    files = {name: file_digest(path) for name, path in _files(spec).items()}
    # The takes, not picks.yaml's bytes: a comment or an explicit take 1 is not a new cut.
    picks = {scene: take for scene, take in sorted(takes.items()) if take != 1}
    out = {"spec": top, "scenes": scenes, "files": files, "picks": picks or None}
    if spec.lower_third:
        # The names lower thirds draw come from `characters`, which otherwise only feeds the
        # clips' keys (and a prompt need not print a name: a renamed character is a new video).
        out["speakers"] = spec.speaker_names()
    return out


def render_digest(spec: Project, clips: list[tuple[str, str, float | None, str | None]],
                  takes: dict[str, int]) -> str:
    """Digest of a render's inputs: ``clips`` are (scene id, clip key, seconds, subtitle) in order,
    ``takes`` the take of each scene's clip."""
    payload = {"version": STITCH_VERSION, "slug": spec.slug, "clips": [list(c) for c in clips],
               "finishing": finishing(spec, takes)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cut_plans(chains: list[list[ClipPlan]], picked: dict[str, int]) -> list[ClipPlan]:
    """The plan each scene's cut uses: its picked take, stored engine first (as the render would)."""
    cut = [c[0] for c in chains if c[0].take == picked.get(c[0].scene_id, 1)]
    return sorted(cut, key=lambda p: p.index)


def digest_of_plans(spec: Project, chains: list[list[ClipPlan]], picked: dict[str, int]) -> str:
    """The digest a render of these chains would be stored under."""
    cut = cut_plans(chains, picked)
    return render_digest(spec, [(p.scene_id, p.key, p.duration, p.subtitle) for p in cut],
                         {p.scene_id: p.take for p in cut})


def digest_of_result(spec: Project, clips: list[ClipRef]) -> str:
    """The digest of a finished render, from the clips its cut actually used (fallbacks included)."""
    ordered = sorted(clips, key=lambda c: c.index)
    return render_digest(spec, [(c.scene_id, c.key, c.duration, c.speech) for c in ordered],
                         {c.scene_id: c.take for c in ordered})


def index_key(digest: str) -> str:
    return f"{INDEX_PREFIX}/{digest}.json"


def record(store: ClipStore, digest: str, result: RenderResult) -> str:
    """Index a finished render: its manifest (the whole RenderResult) and every file it made."""
    base = result.video_key.rsplit("/", 1)[0]
    entry = {"render_id": result.render_id, "manifest": result.manifest_key, "files": store.list(base)}
    with tempfile.TemporaryDirectory(prefix="render-index-") as tmp:
        path = Path(tmp) / "entry.json"
        path.write_text(json.dumps(entry, sort_keys=True))
        return store.put_file(index_key(digest), path, {"render": result.render_id})


def _read_json(store: ClipStore, key: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="render-index-") as tmp:
        return json.loads(store.fetch(key, tmp).read_text(encoding="utf-8"))


def lookup(store: ClipStore, digest: str) -> RenderResult | None:
    """The finished render stored under ``digest``, if its files are all still there (links fresh)."""
    key = index_key(digest)
    if not store.exists(key):
        return None
    try:
        entry = _read_json(store, key)
        files = list(entry["files"])
        if not files or not all(store.exists(k) for k in files):
            return None                          # incomplete: render again (the entry is rewritten)
        result = RenderResult.model_validate(_read_json(store, entry["manifest"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None                              # unreadable entry or manifest: render again
    if _damaged_video(store, result.video_key):
        return None                              # stitched again from the stored clips
    by_name = {k.rsplit("/", 1)[-1].rsplit(".", 1)[-1]: k for k in files}
    clips = [c.model_copy(update={"cached": True, "seconds": 0.0, "attempts": [f"{c.engine or 'footage'}: reused"]})
             for c in result.clips]
    return result.model_copy(update={
        "video": store.url(result.video_key),
        "subtitles": store.url(by_name.get("vtt") or by_name["srt"]) if result.subtitles else None,
        "contact_sheet": store.url(by_name["png"]) if "png" in by_name else None,
        "generated": 0, "reused": len(clips), "clips": clips,
        "links": {c.scene_id: store.url(c.key) for c in clips},
    })


def _damaged_video(store: ClipStore, key: str) -> bool:
    """True (after saying so) when the finished video in a local store was cut short or replaced
    behind reelflow's back (``tasks.intact``: probed once per file identity, and reelflow's own
    videos are vouched for as they are published)."""
    from tasks import events, intact

    problem = intact.problem(store, key)
    if problem is None:
        return False
    said = f"the finished video {key} is damaged ({problem}); the render is stitched again"
    events.warn(said)
    return True


def find_in_index(store: ClipStore, spec: Project, chains: list[list[ClipPlan]], picked: dict[str, int],
                  redone: dict[str, int] | None = None) -> RenderResult | None:
    """The finished render of these planned chains: nothing left to make, same cut and finishing."""
    if redone or not all(store.exists(chain[0].key) for chain in chains):
        return None
    found = lookup(store, digest_of_plans(spec, chains, picked))
    if found is not None:
        found.warnings = list(dict.fromkeys(w for chain in chains for w in chain[0].warnings))
        found.reused = len(chains)               # every take the render would make is already stored
    return found


def find_finished(spec: Project, engine: str | None, scenes: list[str] | None, store: ClipStore,
                  max_wps: float, takes: int | None = None) -> RenderResult | None:
    """Plan the render as the flow would (prompts, speech audio, takes, stored clips first), without
    Prefect, and return its finished render if there is one."""
    from tasks.plan import plan_project, prefer_stored
    from tasks.spoken import speech_folder, with_speech
    from tasks.takes import book_takes

    chains = plan_project(spec, engine, scenes, max_wps)
    folder = speech_folder()
    chains = [[with_speech(plan, folder) for plan in chain] for chain in chains]
    book = book_takes(chains, spec, store.exists, takes)
    return find_in_index(store, spec, prefer_stored(book.chains, store.exists), book.picked)
