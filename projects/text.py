"""Checks on every string of a production: no control or bidi characters anywhere.

ESC, NUL and the other C0/C1 controls (tab and newline excepted) would reach the prompt,
the SRT and terminals; bidi overrides (U+202A-202E, U+2066-2069, U+200E/F, U+061C) and the
Unicode line/paragraph separators make text read differently from what it is.
"""

from __future__ import annotations

import unicodedata
from typing import Iterator

_BIDI = {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)), "\u200e", "\u200f", "\u061c"}
_SEPARATORS = {"\u2028", "\u2029", "\x85"}
_ALLOWED = {"\n", "\t"}


def bad_character(text: str) -> str | None:
    """A description of the first forbidden character in ``text``, or None."""
    for i, ch in enumerate(text):
        if ch in _ALLOWED:
            continue
        if ch in _BIDI:
            return f"contains the bidi control U+{ord(ch):04X} at character {i + 1}; remove it"
        if ch in _SEPARATORS or unicodedata.category(ch) == "Cc":
            return f"contains the control character U+{ord(ch):04X} at character {i + 1}; remove it"
    return None


def walk_strings(data: object, loc: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(location, string) for every key and string value in YAML data (already depth-bounded)."""
    if isinstance(data, str):
        yield loc, data
    elif isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str):
                yield (*loc, key), key
            yield from walk_strings(value, (*loc, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from walk_strings(value, (*loc, i))


def text_problems(data: object) -> list[tuple[tuple, str]]:
    """(location, message) for each string holding a control or bidi character."""
    found = []
    for loc, text in walk_strings(data):
        if message := bad_character(text):
            found.append((loc, message))
    return found
