"""Takes: several clips of one scene with seeds seed, seed+1, ...; the cut uses the picked one.

Take ``t`` of a scene is its take-1 plan with seed ``seed + (t - 1)``, content-addressed like
any clip, so a take is never made twice and take 1's key is the key a scene always had.
Which takes exist is read from the store: the takes a render asks for, then every further
take number in a row until one is missing (``reelflow redo`` adds them one at a time).
"""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel, Field

from projects import Project
from projects.schema import MAX_TAKE_NUMBER
from tasks.models import ClipPlan, ClipRef, TakeRef
from tasks.plan import PlanError, clip_key

SEED_SPACE = 2**32


def take_seed(base: int, take: int) -> int:
    return (base + take - 1) % SEED_SPACE


def plan_take(plan: ClipPlan, take: int) -> ClipPlan:
    """``plan`` (a take-1 plan) for take number ``take``."""
    if take == plan.take or plan.kind == "footage":
        return plan
    request = plan.request.model_copy(update={"seed": take_seed(plan.request.seed, take - plan.take + 1)})
    return plan.model_copy(update={"take": take, "request": request,
                                   "key": clip_key(request, plan.engine, plan.model)})


class TakeBook(BaseModel):
    """What a render makes and cuts, per scene."""

    chains: list[list[ClipPlan]]                                # one chain per (scene, take) to produce
    picked: dict[str, int]                                      # scene -> take in the cut
    stored: list[ClipPlan] = Field(default_factory=list)        # other takes found in the store
    redone: dict[str, int] = Field(default_factory=dict)        # scene -> the take redo made


def wanted_takes(project: Project, scene_id: str, override: int | None) -> int:
    scene = next(s for s in project.scenes if s.id == scene_id)
    if scene.footage:
        return 1
    return override or scene.takes or 1


def stored_plan(chain: list[ClipPlan], take: int, exists: Callable[[str], bool]) -> ClipPlan | None:
    """The plan of ``take`` whose clip is in the store (any engine of the chain), or None."""
    return next((p for p in (plan_take(q, take) for q in chain) if exists(p.key)), None)


def book_takes(chains: list[list[ClipPlan]], project: Project, exists: Callable[[str], bool],
               takes: int | None = None, redo: list[str] | None = None,
               picks: dict[str, int] | None = None) -> TakeBook:
    """Expand each scene's chain into its takes: 1..N, the picked one, and a new one for ``redo``."""
    picks = project.picks if picks is None else picks
    redo = list(redo or [])
    planned = {chain[0].scene_id: chain for chain in chains}
    for scene_id in redo:
        if scene_id not in planned:
            raise PlanError(f"cannot redo {scene_id!r}: not a scene of this render "
                            f"(scenes: {', '.join(planned)})")
        if planned[scene_id][0].kind == "footage":
            raise PlanError(f"cannot redo {scene_id!r}: a footage scene has no takes")
    out, picked, stored, redone = [], {}, [], {}
    for chain in chains:
        scene_id = chain[0].scene_id
        pick = picks.get(scene_id, 1)
        # Takes 1..N when N is asked for (--takes, a scene's `takes:`); else the one take a scene
        # has is its pick: a take 1 the cut does not use (a redo was picked) is not made again
        # when it left the store (a retention rule, a cleanup).
        asked = takes is not None or next(s for s in project.scenes if s.id == scene_id).takes is not None
        wanted = set(range(1, wanted_takes(project, scene_id, takes) + 1)) if asked or pick == 1 else set()
        if scene_id not in redo:
            wanted.add(pick)                      # a redo's new take replaces the pick: the old one is not made
        if chain[0].kind == "generate":
            top = max(wanted | {pick})            # picks are at most MAX_TAKE_NUMBER: the walk is bounded
            found = [p for t in range(1, top + 1) if t not in wanted and (p := stored_plan(chain, t, exists))]
            t = top + 1
            while (p := stored_plan(chain, t, exists)) is not None:
                found.append(p)
                t += 1
            stored += found
            if scene_id in redo:
                if t > MAX_TAKE_NUMBER:
                    raise PlanError(f"cannot redo {scene_id!r}: it has takes up to {t - 1}, the most a scene "
                                    f"can have ({MAX_TAKE_NUMBER}); pick one of them")
                redone[scene_id] = t              # the first take number beyond every take that exists
                wanted.add(t)
        picked[scene_id] = redone.get(scene_id, picks.get(scene_id, 1))
        out += [[plan_take(p, t) for p in chain] for t in sorted(wanted)]
    return TakeBook(chains=out, picked=picked, stored=stored, redone=redone)


def apply_review(book: TakeBook, made: list[ClipRef], picks: dict[str, int],
                 redo: list[str]) -> tuple[TakeBook, list[list[ClipPlan]]]:
    """The book after a review: its picks, and one new take (picked) per redo scene, to be made."""
    picked, redone, new = {**book.picked, **picks}, dict(book.redone), []
    for scene_id in redo:
        base = next((c for c in book.chains if c[0].scene_id == scene_id and c[0].take == 1), None)
        if base is None or base[0].kind == "footage":
            continue
        have = {r.take for r in made if r.scene_id == scene_id} | {p.take for p in book.stored if p.scene_id == scene_id}
        take = max(have | {0}) + 1
        new.append([plan_take(p, take) for p in base])
        picked[scene_id] = redone[scene_id] = take
    return book.model_copy(update={"picked": picked, "redone": redone, "chains": book.chains + new}), new


def picked_from_store(book: TakeBook, made: list[ClipRef]) -> list[list[ClipPlan]]:
    """A chain for each picked take this render did not make but the store holds (a review may
    pick any stored take): produced, each is reused at once, with no engine call."""
    have = {(r.scene_id, r.take) for r in made}
    return [[p] for p in book.stored if book.picked.get(p.scene_id, 1) == p.take and (p.scene_id, p.take) not in have]


def changed_picks(book: TakeBook, project: Project) -> dict[str, int]:
    """Picks that differ from picks.yaml (a missing entry is take 1)."""
    return {s: t for s, t in book.picked.items() if t != project.picks.get(s, 1)}


def cut_of(refs: list[ClipRef], picked: dict[str, int]) -> list[ClipRef]:
    """The picked take of every scene, in scene order."""
    cut = [r for r in refs if r.take == picked.get(r.scene_id, 1)]
    return sorted(cut, key=lambda r: r.index)


def take_refs(refs: list[ClipRef], stored: list[ClipPlan]) -> dict[str, list[TakeRef]]:
    """Every take of every scene that exists after the render (made or found), by take number."""
    out: dict[str, list[TakeRef]] = {}
    for r in refs:
        out.setdefault(r.scene_id, []).append(TakeRef(take=r.take, seed=r.seed, key=r.key, engine=r.engine,
                                                       model=r.model, cached=r.cached))
    for p in stored:
        out.setdefault(p.scene_id, []).append(TakeRef(take=p.take, seed=p.request.seed, key=p.key, engine=p.engine,
                                                       model=p.model, cached=True))
    return {scene: sorted(takes, key=lambda t: t.take) for scene, takes in out.items()}
