"""Word-by-word highlight for burned subtitles: ASS karaoke (``{\\kf}``) timed from the TTS.

An engine that speaks a line with the offline TTS reports when each word starts in its clip
(``media.soundtrack.speak_line``); the clip task keeps that beside the clip in the store
(``<clip key minus extension>.words.json``), so a reused clip keeps its timings. A cue's
words are matched to the spoken words by their place in the spoken text; where a clip has
no timings (its own audio, footage, an engine without TTS) or they do not fit the cue's
text, each word gets a share of the cue proportional to its length.

Each word is one ``{\\kf<centiseconds>}`` syllable (filled left to right while it is
spoken); silence before the first word is one empty syllable, and the last word holds until
the cue ends, so the syllables sum to the cue's length exactly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

WORDS_SUFFIX = ".words.json"
MAX_WORDS = 2000


class WordTiming(BaseModel):
    text: str = Field(max_length=200)
    offset: int = Field(ge=0)          # characters into the spoken text
    start: float = Field(ge=0)         # seconds into the clip
    end: float = Field(ge=0)


class SpokenLine(BaseModel):
    """What the TTS said in a clip, and when each word starts (clip time)."""

    text: str = Field(max_length=20000)
    words: list[WordTiming] = Field(default_factory=list, max_length=MAX_WORDS)


def words_key(clip_key: str) -> str:
    """The store key of a clip's word timings."""
    stem = clip_key.rsplit(".", 1)[0] if "." in clip_key.rsplit("/", 1)[-1] else clip_key
    return stem + WORDS_SUFFIX


def write_words(line: dict, path: Path) -> Path | None:
    """Validate an engine's word timings and write them as JSON (None if they are not usable)."""
    try:
        spoken = SpokenLine.model_validate(line)
    except ValidationError:
        return None
    path.write_text(spoken.model_dump_json())
    return path


def read_words(path: str | Path) -> SpokenLine | None:
    """A stored ``.words.json`` (None if it is unreadable: the cue falls back to proportional timing)."""
    try:
        return SpokenLine.model_validate(json.loads(Path(path).read_text()))
    except (OSError, ValueError):
        return None


def _proportional(tokens: list[str], span: float) -> list[float]:
    weights = [max(1, len(re.sub(r"\W", "", t))) for t in tokens]
    total = sum(weights)
    return [span * w / total for w in weights]


UNSPOKEN_AT_END = 1e6       # seconds: past any cue's end (the highlight clamps to the cue)


def word_starts(tokens: list[str], line: SpokenLine | None, offset: float) -> list[float] | None:
    """When each of the cue's ``tokens`` starts, seconds from the cue's start, from ``line``'s
    word events (``offset``: the clip's start minus the cue's start). None when they do not fit."""
    if line is None or not line.words:
        return None
    text = line.text.lower()
    events = sorted(line.words, key=lambda w: w.offset)
    starts: list[float | None] = []
    cursor, found = 0, 0
    for token in tokens:
        word = token.lower().strip(".,;:!?\"'()[]…—–-")
        at = text.find(word, cursor) if word else -1
        if at < 0:                              # not spoken (a dash, a changed word): no time of its own
            starts.append(None)
            continue
        found += 1
        cursor = at + len(word)
        before = [e for e in events if e.offset <= at] or events[:1]
        starts.append(before[-1].start + offset)
    if found < max(1, len(tokens) // 2):
        return None
    following = UNSPOKEN_AT_END             # an unspoken token lights up with the next spoken word, so
    for i in range(len(starts) - 1, -1, -1):    # the word before it keeps its time (at the end: the cue's end)
        if starts[i] is None:
            starts[i] = following
        following = starts[i]
    out, last = [], 0.0
    for s in starts:                            # monotonic
        last = max(last, s)
        out.append(last)
    return out


def ass_safe(text: str) -> str:
    """``text`` as plain text inside an ASS event: braces (override blocks) and backslashes
    (``\\N``, ``\\h``) become look-alikes, so speech can never restyle or break a cue."""
    return text.replace("{", "(").replace("}", ")").replace("\\", "/")


def karaoke_text(text: str, start: float, end: float, line: SpokenLine | None = None,
                 clip_start: float | None = None, line_chars: int = 42) -> str:
    """The ASS text of one cue with one ``{\\kf}`` per word (plus one empty syllable for a
    silent lead-in), durations in centiseconds summing to the cue's length. ``clip_start``:
    where the clip ``line`` belongs to starts (default: with the cue)."""
    tokens = ass_safe(text).split()
    if not tokens:
        return ""
    total = max(0, round(end * 100) - round(start * 100))     # the event's own length in ASS centiseconds
    starts = word_starts(tokens, line, (clip_start if clip_start is not None else start) - start)
    if starts is None:
        shares = _proportional(tokens, end - start)
        starts = [sum(shares[:i]) for i in range(len(tokens))]
    ticks = [min(total, max(0, round(s * 100))) for s in starts] + [total]
    lead = ticks[0]
    parts = [f"{{\\k{lead}}}"] if lead else []
    width = 0
    for i, token in enumerate(tokens):
        sep = ""
        if i:
            wrap = width + 1 + len(token) > line_chars
            sep = r"\N" if wrap else " "
            width = len(token) if wrap else width + 1 + len(token)
        else:
            width = len(token)
        parts.append(f"{sep}{{\\kf{max(0, ticks[i + 1] - ticks[i])}}}{token}")
    return "".join(parts)
