"""Subtitles from the speech text, one cue per clip, on clip boundaries."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pysubs2


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
