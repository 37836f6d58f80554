"""Subtitles from the speech text, one cue per clip, on clip boundaries."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pysubs2

from media.karaoke import SpokenLine, karaoke_text

HIGHLIGHT = pysubs2.Color(255, 214, 0)      # a word being / already spoken (karaoke primary colour)
UNSPOKEN = pysubs2.Color(255, 255, 255)     # words still to come (secondary colour)


def build_subtitles(cues: list[tuple[float, float, str]], *, line_chars: int = 42) -> pysubs2.SSAFile:
    """``cues`` are (start s, end s, text); text wraps to two-ish lines of ``line_chars``."""
    subs = pysubs2.SSAFile()
    for start, end, text in cues:
        if not text.strip():
            continue
        body = r"\N".join(textwrap.wrap(" ".join(text.split()), width=line_chars))
        subs.append(pysubs2.SSAEvent(start=round(start * 1000), end=round(end * 1000), text=body))
    return subs


def write_subtitles(subs: pysubs2.SSAFile, path: str | Path, fmt: str) -> Path:
    """Write ``subs`` as ``srt`` or ``vtt``."""
    subs.save(str(path), format_=fmt)
    return Path(path)


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
