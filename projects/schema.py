"""Pydantic models of ``project.yaml``. Unknown keys are rejected everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, ValidationInfo

from media.profile import OutputProfile
from media.cards import MAX_CARD_CHARS, Card, LowerThird
from media.music import Music
from media.timeline import Edit, Transition
from prompts.tokens import find_tokens, normalize

MAX_LINE_CHARS = 1000   # one field of text; the rendered prompt has its own limit (2000)


def _no_tokens(value: str | None) -> str | None:
    """NFKC-normalise user text, then refuse anything a tokenizer would read as a token."""
    if not value:
        return value
    value = normalize(value)
    if not value.strip():
        return ""                 # only spaces: no text (a template's `if` must not see words there)
    if found := find_tokens(value):
        raise ValueError(
            f"contains the prompt token {found[0]!r} (after Unicode normalisation); "
            "write plain text, templates add the tokens"
        )
    return value


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty or only spaces: write the text")
    return text


PlainText = Annotated[str, Field(max_length=MAX_LINE_CHARS), AfterValidator(_no_tokens)]
# A card's text: its own limit in the annotation (a ``Field`` default beside ``PlainText`` lost
# to PlainText's, so 1000 characters passed here and failed in the render's ``Card``).
CardText = Annotated[str, Field(min_length=1, max_length=MAX_CARD_CHARS), AfterValidator(_no_tokens),
                     AfterValidator(_not_blank)]
SomeText = Annotated[PlainText, AfterValidator(_not_blank)]     # required text: a name, a second line
MAX_TAKES = 16
MAX_TAKE_NUMBER = 100     # the highest take number a pick or a redo may name: takes are looked up one by one
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]


class Strict(BaseModel):
    """No unknown keys and no coercion (``duration: true`` is not 1 s, ``title: 12`` not text)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Output(OutputProfile):
    model_config = ConfigDict(extra="forbid", strict=True)

    subtitles: Literal["none", "srt", "vtt", "burn"] = "srt"
    highlight: Literal["none", "word"] = Field(
        "none", description="word: burned subtitles light up each word as it is spoken (needs subtitles: burn).")
    chapters: bool = Field(False, description="Write one chapter per scene (or per chapter: label) into the MP4.")


    @field_validator("highlight")
    @classmethod
    def _highlight_needs_burn(cls, value: str, info: ValidationInfo) -> str:
        subtitles = info.data.get("subtitles", "srt")      # declared first: validated already
        if value != "none" and subtitles != "burn":
            raise ValueError(f"highlight: {value} needs subtitles: burn (the highlight is drawn into "
                             f"the picture; subtitles is {subtitles})")
        return value


class CardSpec(Card):
    """A title or end card: text over a colour or an image in the project folder."""

    text: CardText


class EngineSpec(Strict):
    name: str = "animatic"
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    fallback: list[str] = Field(default_factory=list, description="Engines to try next, in order.")


class Character(Strict):
    name: SomeText
    image: str | None = None
    description: PlainText | None = None
    voice: str = Field("en-us", pattern=r"^[A-Za-z0-9_+-]+$", description="espeak-ng voice for TTS.")


class Speaker(Strict):
    """A second speaker in a scene (MultiTalk-style two-person dialogue)."""

    character: str
    speech: SomeText


class Scene(Strict):
    id: Slug
    character: str | None = None
    action: PlainText = ""
    speech: PlainText | None = None
    speaker2: Speaker | None = None
    atmosphere: PlainText | None = None
    duration: float | None = Field(None, gt=0, le=600)
    engine: EngineSpec | None = None
    seed: int | None = Field(None, ge=0, lt=2**32)
    takes: int | None = Field(None, ge=1, le=MAX_TAKES, description="Clips to make (seeds seed, seed+1, ...).")
    audio: str | None = None
    footage: str | None = None
    transition: Transition | None = Field(None, description="The join into this scene (default: the production's).")
    chapter: PlainText | None = Field(None, max_length=200, description="Chapter label; scenes in a row with one label share a chapter.")


class Project(Strict):
    title: PlainText
    output: Output = Field(default_factory=Output)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    template: str | None = None
    characters: dict[Slug, Character] = Field(default_factory=dict)
    scenes: list[Scene] = Field(min_length=1)
    transition: Transition = Field(default_factory=Transition, description="Every join, unless a scene sets its own.")
    music: Music | None = Field(None, description="A bed under the whole video, ducked under speech.")
    title_card: CardSpec | None = Field(None, description="A card before the first scene.")
    color_match: Slug | None = Field(None, description="Match every clip's colour to this scene's.")
    lower_third: LowerThird | None = Field(None, description="The speaking character's name over each scene's start.")

    @field_validator("lower_third", mode="before")
    @classmethod
    def _lower_third_switch(cls, value: Any) -> Any:
        """``lower_third: true`` is the default style; ``false`` is none."""
        if value is True:
            return {}
        return None if value is False else value
    end_card: CardSpec | None = Field(None, description="A card after the last scene.")

    # Set by the loader, not by the YAML.
    slug: str = Field("", exclude=True)
    root: str = Field("", exclude=True)
    picks: dict[str, int] = Field(default_factory=dict, exclude=True)   # picks.yaml: scene -> take

    def speaker_names(self) -> dict[str, str]:
        """Scene id -> the name(s) of who speaks in it (for lower thirds)."""
        out = {}
        for scene in self.scenes:
            names = [self.characters[c].name for c in (scene.character if scene.speech else None,
                                                       scene.speaker2.character if scene.speaker2 else None)
                     if c in self.characters]
            if names:
                out[scene.id] = " & ".join(dict.fromkeys(names))
        return out

    def edit(self) -> Edit:
        """The editing choices the stitch's timeline is built from."""
        return Edit(
            transition=self.transition,
            transitions={s.id: s.transition for s in self.scenes if s.transition is not None},
            chapters={s.id: s.chapter for s in self.scenes if s.chapter},
            music=self.music.model_copy(update={"file": str(Path(self.root) / self.music.file)}) if self.music else None,
            title_card=self._card(self.title_card),
            end_card=self._card(self.end_card),
        )

    def _card(self, card: CardSpec | None) -> Card | None:
        if card is None:
            return None
        image = str(Path(self.root) / card.image) if card.image else None
        return Card(**card.model_dump(exclude={"image"}), image=image)

    def scene_duration(self, scene: Scene) -> float:
        return scene.duration if scene.duration is not None else 5.0
