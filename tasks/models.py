"""Small models that travel between tasks: plans and references, never media bytes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from engines.base import ClipRequest
from media.karaoke import SpokenLine


class ClipPlan(BaseModel):
    """How one scene gets its clip from one engine (a scene has one plan per engine in its chain)."""

    scene_id: str
    index: int
    project: str = ""
    kind: Literal["generate", "footage"]
    key: str                              # store key of the raw clip
    engine: str | None = None
    model: str | None = None
    engine_params: dict = Field(default_factory=dict)
    request: ClipRequest | None = None
    footage: str | None = None            # absolute path of a footage file
    duration: float | None = None         # target seconds; None: the clip's own length
    speech: str | None = None             # subtitle text
    speech2: str | None = None            # a second speaker's line, and voice
    voice2: str | None = None
    deadline: float | None = None         # time.time() by which the clip must exist (budget)
    take: int = 1                         # take t is made with seed + (t - 1)
    warnings: list[str] = Field(default_factory=list)

    @property
    def subtitle(self) -> str | None:
        return " — ".join(t for t in (self.speech, self.speech2) if t) or None


class ClipRef(BaseModel):
    """A raw clip in the store."""

    scene_id: str
    index: int
    key: str
    engine: str | None
    model: str | None = None
    cached: bool
    seconds: float = 0.0
    duration: float | None = None
    speech: str | None = None
    attempts: list[str] = Field(default_factory=list)   # "engine: outcome" per engine tried
    take: int = 1
    seed: int | None = None


class NormalizedRef(BaseModel):
    """A clip normalised to the output profile: exact frame and sample counts."""

    scene_id: str
    index: int
    key: str
    frames: int
    speech: str | None = None
    words: SpokenLine | None = None       # the TTS's word timings (clip time), for the word highlight
    true_peak: float | None = None        # dBTP of its audio, measured when it was normalised


class TakeRef(BaseModel):
    """One take of a scene that exists in the store."""

    take: int
    seed: int | None                      # None: footage, which has no seed
    key: str
    engine: str | None
    model: str | None
    cached: bool                          # True: it was already stored before this render


class SceneCut(BaseModel):
    """One scene in the final video: where it sits, which take is used, every take that exists."""

    scene_id: str
    index: int
    start: float                          # seconds in the final video
    end: float
    speech: str | None
    action: str | None
    engine: str | None
    picked: int                           # the take number used in the cut
    takes: list[TakeRef]


class RenderResult(BaseModel):
    slug: str
    render_id: str
    video: str
    video_key: str
    subtitles: str | None = None
    otio: str | None = None               # final.otio: the cut for an editor
    edl: str | None = None                # final.edl (CMX 3600), when the fps has a timecode
    contact_sheet: str | None = None
    duration: float
    generated: int
    reused: int
    clips: list[ClipRef]
    warnings: list[str] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)   # scene id -> where its clip can be opened
    scenes: list[SceneCut] = Field(default_factory=list)
    manifest_key: str | None = None       # renders/<slug>/<render_id>/render.json
