"""The cut as data: clips with exact frame counts, the join between each pair, chapters.

A ``Timeline`` is built once per render from the normalised clips and the production's
editing choices; the stitch, the subtitles, the chapters and the OTIO export all read it,
so a crossfade changes one place. All times are whole frames of the output rate:

    start[0] = 0,  start[i+1] = start[i] + frames[i] - overlap[i]
    duration = sum(frames) - sum(overlaps)

A ``cut`` overlaps nothing; a ``crossfade`` or a ``dip`` (through black) overlaps the two
clips by its duration in frames, clamped so no clip lends more than half its frames to
each join (the clamp is reported in ``warnings``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from media.cards import Card
from media.karaoke import SpokenLine
from media.music import Music

TransitionType = Literal["cut", "crossfade", "dip"]


class Transition(BaseModel):
    """How one clip hands over to the next (``project.yaml``: ``transition:``)."""

    model_config = ConfigDict(extra="forbid")

    type: TransitionType = "cut"
    duration: float = Field(0.5, gt=0, le=10, description="Seconds the two clips overlap (not for cut).")


class Item(BaseModel):
    """One clip on the timeline."""

    scene_id: str
    key: str                    # store key of the normalised clip
    frames: int = Field(ge=1)
    start: int = 0              # first frame in the final video
    speech: str | None = None
    chapter: str | None = None  # chapter label (default: the scene id)
    kind: Literal["clip", "card"] = "clip"
    words: SpokenLine | None = None   # when the TTS spoke each word (clip time), if it did

    @property
    def end(self) -> int:
        return self.start + self.frames


class Join(BaseModel):
    """The join after item ``index`` (into item ``index + 1``)."""

    index: int
    type: TransitionType = "cut"
    frames: int = Field(0, ge=0)   # overlap; 0 for a cut


class Chapter(BaseModel):
    title: str
    start: int                  # frames
    end: int


class Timeline(BaseModel):
    fps_num: int
    fps_den: int = 1
    audio_rate: int = 48000
    items: list[Item]
    joins: list[Join] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @property
    def rate(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def frames(self) -> int:
        """Length of the final video in frames: sum of clips minus the overlaps."""
        return sum(i.frames for i in self.items) - sum(j.frames for j in self.joins)

    @property
    def duration(self) -> float:
        return float(self.frames / self.rate)

    @property
    def samples(self) -> int:
        return round(self.frames * self.audio_rate / self.rate)

    @property
    def all_cuts(self) -> bool:
        return all(j.frames == 0 for j in self.joins)

    def seconds(self, frame: int) -> float:
        return float(frame / self.rate)

    def samples_at(self, frame: int) -> int:
        return round(frame * self.audio_rate / self.rate)

    def head(self, i: int) -> int:
        """Frames of item ``i`` that overlap the item before it."""
        return self.joins[i - 1].frames if i > 0 else 0

    def tail(self, i: int) -> int:
        """Frames of item ``i`` that overlap the item after it."""
        return self.joins[i].frames if i < len(self.joins) else 0

    def cues(self) -> list[tuple[float, float, str]]:
        """(start s, end s, text) per item with speech; a cue ends where the next item starts."""
        out = []
        for i, item in enumerate(self.items):
            end = self.items[i + 1].start if i + 1 < len(self.items) else item.end
            if item.speech:
                out.append((self.seconds(item.start), self.seconds(end), item.speech))
        return out

    def spoken_cues(self) -> list[tuple[float, float, str, SpokenLine | None]]:
        """``cues`` with each clip's word timings (for the word-by-word highlight)."""
        out = []
        for i, item in enumerate(self.items):
            end = self.items[i + 1].start if i + 1 < len(self.items) else item.end
            if item.speech:
                out.append((self.seconds(item.start), self.seconds(end), item.speech, item.words))
        return out

    def chapters(self) -> list[Chapter]:
        """One chapter per run of items with the same label; each ends where the next begins."""
        out: list[Chapter] = []
        for item in self.items:
            title = item.chapter or item.scene_id
            if out and out[-1].title == title:
                continue
            if out:
                out[-1].end = item.start
            out.append(Chapter(title=title, start=item.start, end=item.end))
        if out:
            out[-1].end = self.frames
        return out


def build_timeline(
    clips: list[dict],
    rate: Fraction,
    audio_rate: int = 48000,
    default: Transition | None = None,
    transitions: dict[str, Transition] | None = None,
) -> Timeline:
    """Lay ``clips`` (dicts with scene_id, key, frames, speech, chapter) end to end.

    ``transitions`` maps a scene id to the transition *into* that scene; every other join
    uses ``default`` (a cut unless given). Nothing joins into the first clip, so its entry is not
    read (``validate`` refuses one on the first scene unless a title card comes first).
    """
    default = default or Transition()
    transitions = transitions or {}
    items = [Item(**c) for c in clips]
    joins: list[Join] = []
    warnings: list[str] = []
    for i in range(len(items) - 1):
        nxt = items[i + 1]
        t = transitions.get(nxt.scene_id, default)
        frames = 0
        if t.type != "cut":
            wanted = max(1, round(t.duration * rate))
            frames = min(wanted, items[i].frames // 2, nxt.frames // 2)
            if frames < wanted:
                warnings.append(
                    f"{t.type} into {nxt.scene_id!r} shortened to {frames} frames "
                    f"(a clip lends at most half its length to a join)"
                )
        joins.append(Join(index=i, type=t.type if frames else "cut", frames=frames))
    start = 0
    for i, item in enumerate(items):
        item.start = start
        start += item.frames - (joins[i].frames if i < len(joins) else 0)
    return Timeline(fps_num=rate.numerator, fps_den=rate.denominator, audio_rate=audio_rate,
                    items=items, joins=joins, warnings=warnings)


class Edit(BaseModel):
    """The production's editing choices the timeline is built from (not the clips themselves)."""

    transition: Transition = Field(default_factory=Transition)          # every join
    transitions: dict[str, Transition] = Field(default_factory=dict)   # scene id -> the join into it
    chapters: dict[str, str] = Field(default_factory=dict)             # scene id -> chapter label
    music: Music | None = None                                         # its file an absolute path
    title_card: Card | None = None                                     # image paths absolute
    end_card: Card | None = None


def timeline_for(clips: list, rate: Fraction, audio_rate: int, edit: Edit | None = None) -> Timeline:
    """The timeline of normalised clips (objects with scene_id, key, frames, speech) under ``edit``."""
    edit = edit or Edit()
    rows = [dict(scene_id=c.scene_id, key=c.key, frames=c.frames, speech=c.speech, words=getattr(c, "words", None),
                 chapter=edit.chapters.get(c.scene_id), kind="card" if c.index < 0 else "clip") for c in clips]
    return build_timeline(rows, rate, audio_rate, edit.transition, edit.transitions)
