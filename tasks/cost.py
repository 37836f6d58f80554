"""Estimate what a render will cost before it runs: engine-seconds and money per scene."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel

from engines import registry
from projects import Project
from reelflow.settings import Settings
from storage import ClipStore
from tasks.plan import plan_project, prefer_stored
from tasks.models import ClipPlan
from tasks.spoken import speech_folder, with_speech

if TYPE_CHECKING:
    from storage.catalog import Catalog


class SceneCost(BaseModel):
    scene_id: str
    take: int = 1
    engine: str
    cached: bool
    clip_seconds: float
    engine_seconds: float
    dollars: float


def estimate(project: Project, store: ClipStore, catalog: Catalog | Callable[[], Catalog | None] | None,
             settings: Settings,
             engine: str | None = None, scenes: list[str] | None = None) -> list[SceneCost]:
    """Per scene and take (every take a render would make, the picked one included): a clip
    already stored costs 0; otherwise the engine's measured speed (from the
    catalog's history, else the engine's declared speed or the ``speed`` setting) times its price per second."""
    from tasks.takes import book_takes

    chains = plan_project(project, engine, scenes, settings.max_words_per_second)
    folder = speech_folder()
    book = book_takes([[with_speech(p, folder) for p in chain] for chain in chains], project, store.exists)
    return estimate_chains(prefer_stored(book.chains, store.exists), store, catalog, settings)   # every take, the pick too


def estimate_chains(chains: list[list[ClipPlan]], store: ClipStore,
                    catalog: Catalog | Callable[[], Catalog | None] | None, settings: Settings) -> list[SceneCost]:
    """The estimate of chains already planned (speech given, stored plans first). ``catalog`` may
    be a function that opens it: it is then opened only if some clip is still to be made (opening
    it imports SQLAlchemy, 0.4 s of CPU a render of stored clips does not need to spend). No
    catalog (None, or a function giving None) means no history: the declared speeds are used."""
    rows = []
    speeds: dict[str, float] = {}
    for chain in chains:
        plan = chain[0]
        name = plan.engine or "footage"
        seconds = plan.duration or 0.0
        if plan.kind == "footage" or store.exists(plan.key):
            rows.append(SceneCost(scene_id=plan.scene_id, take=plan.take, engine=name, cached=True, clip_seconds=seconds,
                                  engine_seconds=0.0, dollars=0.0))
            continue
        if name not in speeds:
            if callable(catalog):
                catalog = catalog()
            speeds[name] = (catalog.engine_speed(name) if catalog is not None else None) or registry.speed(name)
        engine_seconds = seconds * speeds[name]
        rows.append(SceneCost(scene_id=plan.scene_id, take=plan.take, engine=name, cached=False, clip_seconds=seconds,
                              engine_seconds=round(engine_seconds, 1),
                              dollars=round(engine_seconds * registry.price(name), 4)))
    return rows
