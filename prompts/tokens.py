"""Ovi's prompt tokens: wrapping, scrubbing user text, validating and parsing.

Two dialects:
  * ``audcap`` (Ovi 1.0, the 720x720 model, the HF Space): ``<S>speech<E>`` and
    ``<AUDCAP>sound<ENDAUDCAP>``.
  * ``audio-suffix`` (Ovi 1.1's 960x960 models): ``<S>speech<E>`` inline and one trailing
    ``Audio: sound`` that must come last.
"""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel

SPEECH_OPEN, SPEECH_CLOSE = "<S>", "<E>"
AUDCAP_OPEN, AUDCAP_CLOSE = "<AUDCAP>", "<ENDAUDCAP>"
AUDIO_SUFFIX = "Audio:"

_TOKEN_RE = re.compile(r"<\s*/?\s*(S|E|AUDCAP|ENDAUDCAP)\s*>", re.IGNORECASE)
_AUDIO_LABEL_RE = re.compile(r"\baudio\s*:", re.IGNORECASE)
_PAIRS = {SPEECH_OPEN: SPEECH_CLOSE, AUDCAP_OPEN: AUDCAP_CLOSE}
_CLOSERS = {v: k for k, v in _PAIRS.items()}
_EXACT_RE = re.compile("|".join(re.escape(t) for t in (*_PAIRS, *_CLOSERS)))


class TokenText(str):
    """A string produced by a token filter: trusted, not scrubbed again."""


def normalize(text: str) -> str:
    """NFKC: look-alikes (``＜S＞``, ``﹤S﹥``, ``Audio：``) become what a tokenizer would see."""
    return unicodedata.normalize("NFKC", text)


def find_tokens(text: str) -> list[str]:
    """Token-like fragments in user text (``<S>``, ``</AUDCAP >``, ``Audio:``), after NFKC."""
    value = normalize(text or "")
    found = [m.group(0) for m in _TOKEN_RE.finditer(value)]
    return found + [m.group(0) for m in _AUDIO_LABEL_RE.finditer(value)]


def scrub(text: object) -> str:
    """Make user text inert: no token can be opened or closed, no ``Audio:`` label forged."""
    value = normalize("" if text is None else str(text))
    value = _TOKEN_RE.sub(" ", value)
    value = _AUDIO_LABEL_RE.sub("audio -", value)
    value = value.replace("<", "‹").replace(">", "›")
    return re.sub(r"\s+", " ", value).strip()


def speech(text: object) -> TokenText:
    return TokenText(f"{SPEECH_OPEN}{scrub(text)}{SPEECH_CLOSE}") if scrub(text) else TokenText("")


def audcap(text: object) -> TokenText:
    return TokenText(f"{AUDCAP_OPEN}{scrub(text)}{AUDCAP_CLOSE}") if scrub(text) else TokenText("")


def audio_suffix(text: object) -> TokenText:
    return TokenText(f"{AUDIO_SUFFIX} {scrub(text)}") if scrub(text) else TokenText("")


def validate_prompt(prompt: str, dialect: str, max_chars: int) -> list[str]:
    """Problems with a rendered prompt: unbalanced or nested tokens, misplaced ``Audio:``, length."""
    problems: list[str] = []
    stack: list[str] = []
    for match in _EXACT_RE.finditer(prompt):
        tok = match.group(0)
        if tok in _PAIRS:
            if stack:
                problems.append(f"token {tok} opened inside {stack[-1]} (tokens cannot nest)")
            stack.append(tok)
        else:
            if not stack or _PAIRS[stack[-1]] != tok:
                problems.append(f"token {tok} closes nothing")
            else:
                stack.pop()
    if stack:
        problems.append(f"token {stack[-1]} is never closed")
    labels = list(_AUDIO_LABEL_RE.finditer(prompt))
    if dialect == "audio-suffix":
        if AUDCAP_OPEN in prompt:
            problems.append("the audio-suffix dialect uses a trailing 'Audio:' not <AUDCAP>")
        if len(labels) > 1:
            problems.append("'Audio:' appears more than once")
        if labels and _EXACT_RE.search(prompt, labels[-1].end()):
            problems.append("'Audio:' must come last, after every <S>...<E>")
    elif labels:
        problems.append("'Audio:' belongs to the audio-suffix dialect; use <AUDCAP>...<ENDAUDCAP>")
    if len(prompt) > max_chars:
        problems.append(f"prompt is {len(prompt)} characters, over the limit of {max_chars}")
    return problems


class ParsedPrompt(BaseModel):
    """A rendered prompt taken apart: what to show, what to say, what to hear."""

    visual: str
    speech: list[str]
    ambience: list[str]


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Split a rendered prompt (either dialect) into visual text, speech lines and ambience."""
    speech_lines = re.findall(r"<S>(.*?)<E>", prompt, flags=re.DOTALL)
    ambience = re.findall(r"<AUDCAP>(.*?)<ENDAUDCAP>", prompt, flags=re.DOTALL)
    rest = re.sub(r"<S>.*?<E>|<AUDCAP>.*?<ENDAUDCAP>", " ", prompt, flags=re.DOTALL)
    label = None
    for label in _AUDIO_LABEL_RE.finditer(rest):
        pass
    if label is not None:
        ambience.append(rest[label.end():])
        rest = rest[: label.start()]
    clean = lambda s: re.sub(r"\s+", " ", s).strip(" .")  # noqa: E731
    return ParsedPrompt(
        visual=clean(rest),
        speech=[clean(s) for s in speech_lines if clean(s)],
        ambience=[clean(a) for a in ambience if clean(a)],
    )
