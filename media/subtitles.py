"""Subtitles from the speech text, one cue per clip, on clip boundaries."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pysubs2

from media.karaoke import SpokenLine, ass_safe, karaoke_text

HIGHLIGHT = pysubs2.Color(255, 214, 0)      # a word being / already spoken (karaoke primary colour)
UNSPOKEN = pysubs2.Color(255, 255, 255)     # words still to come (secondary colour)
_TAG_START = re.compile(r"<(?=[/A-Za-z])")


def build_subtitles(cues: list[tuple[float, float, str]], *, line_chars: int = 42) -> pysubs2.SSAFile:
    """``cues`` are (start s, end s, text); text wraps to two-ish lines of ``line_chars``."""
    subs = pysubs2.SSAFile()
    for start, end, text in cues:
        if not text.strip():
            continue
        # The cues are ASS inside pysubs2 (SRT and VTT are written from them): speech stays text.
        body = r"\N".join(textwrap.wrap(ass_safe(" ".join(text.split())), width=line_chars))
        subs.append(pysubs2.SSAEvent(start=round(start * 1000), end=round(end * 1000), text=body))
    return subs


def write_subtitles(subs: pysubs2.SSAFile, path: str | Path, fmt: str) -> Path:
    """Write ``subs`` as ``srt`` or ``vtt``. The speech is text, not markup: in WebVTT ``&``,
    ``<`` and ``>`` are written as entities (``a<b`` opened a bold tag, and a line with ``-->``
    started a new cue); in SRT ``-->`` becomes an arrow (lenient players take it for a timing) and
    ``<`` cannot open a tag (:func:`_srt_text`)."""
    plain = {"vtt": _vtt_text, "srt": _srt_text}.get(fmt)
    if plain is not None:
        copy = pysubs2.SSAFile()
        copy.info, copy.styles = dict(subs.info), dict(subs.styles)
        for event in subs:
            copy.append(event.copy())
            copy[-1].text = plain(event.text)
        subs = copy
    subs.save(str(path), format_=fmt)
    return Path(path)


def _srt_text(text: str) -> str:
    """SRT has no escapes, yet players and ffmpeg's SRT decoder (which burns the subtitles) read
    ``<b>``, ``<i>``, ``<font ...>`` as styling: a zero-width space after a ``<`` that would open
    a tag keeps it text, seen as written."""
    return _TAG_START.sub("<\u200b", text.replace("-->", "\u2192"))


def _vtt_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_karaoke(cues: list[tuple[float, float, str, SpokenLine | None]], *, line_chars: int = 42) -> pysubs2.SSAFile:
    """ASS subtitles whose words light up as they are spoken (one ``{\\kf}`` per word).

    ``cues`` are (start s, end s, text, the clip's spoken words or None); the clip starts with
    its cue. Times are whole centiseconds (ASS), so the syllables sum to each event exactly.
    The script is 384x288 like the one ffmpeg makes from SRT, so ``burn_style`` fits both.
    """
    subs = pysubs2.SSAFile()
    subs.info.update({"PlayResX": "384", "PlayResY": "288", "ScaledBorderAndShadow": "yes"})
    style = subs.styles["Default"]
    style.primarycolor, style.secondarycolor = HIGHLIGHT, UNSPOKEN
    for start, end, text, line in cues:
        if not text.strip():
            continue
        a, b = round(start * 100) / 100, round(end * 100) / 100
        body = karaoke_text(text, a, b, line, clip_start=start, line_chars=line_chars)
        subs.append(pysubs2.SSAEvent(start=round(a * 1000), end=round(b * 1000), text=body))
    return subs
