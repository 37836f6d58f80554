"""Render a scene's prompt from a Jinja template and check it.

Shipped templates (``prompts/templates``) render in a strict environment; templates that
come inside a project folder render in a sandbox. In both, every ``{{ expression }}`` is
scrubbed (``finalize``) unless a token filter produced it, so user text can never open,
close or forge a token.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import jinja2
from pydantic import BaseModel

from prompts import tokens
from prompts.sandbox import LimitedSandbox, ProjectLoader, TemplateBudget, finalize_size, render_limited
from reelflow.errors import InputError

TEMPLATE_DIR = Path(__file__).parent / "templates"
MAX_PROMPT_CHARS = 2000


class PromptError(InputError):
    """A template failed to render or rendered an invalid prompt.

    ``kind``: "template" (the template itself is at fault: every scene would repeat it),
    "prompt" (the rendered prompt breaks the token rules) or "length" (too long).
    """

    def __init__(self, message: str, kind: str = "template", excess: int = 0):
        super().__init__(message)
        self.kind = kind
        self.excess = excess          # "length": characters over the limit


class RenderedPrompt(BaseModel):
    scene_id: str
    template: str
    dialect: str
    prompt: str
    words: int
    words_per_second: float
    warnings: list[str] = []


def _finalize(value: object) -> object:
    if isinstance(value, tokens.TokenText):
        return value
    finalize_size(value)
    return tokens.scrub(value)


def _configure(env: jinja2.Environment) -> jinja2.Environment:
    env.filters.update(speech=tokens.speech, audcap=tokens.audcap, audio_suffix=tokens.audio_suffix)
    return env


@lru_cache
def _env(folder: str, sandboxed: bool, root: str) -> jinja2.Environment:
    options = dict(undefined=jinja2.StrictUndefined, finalize=_finalize, autoescape=False, keep_trailing_newline=False)
    if not sandboxed:
        return _configure(jinja2.Environment(loader=jinja2.FileSystemLoader(folder), **options))
    env = _configure(LimitedSandbox(loader=ProjectLoader(Path(folder), Path(root)), **options))
    env.wrap_filters()
    return env


def dialect_for(model: str | None) -> str:
    """Ovi 1.1's 960x960 models take a trailing ``Audio:``; everything else the AUDCAP tokens."""
    return "audio-suffix" if model and "960" in model else "audcap"


def template_for(model: str | None, project_template: str | None, project_dir: Path) -> tuple[Path, bool]:
    """(template path, sandboxed?) for a scene: the project's own template wins."""
    if project_template:
        return (project_dir / project_template).resolve(), True
    name = "ovi-960.j2" if dialect_for(model) == "audio-suffix" else "ovi.j2"
    return TEMPLATE_DIR / name, False


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")   # written without spaces


def spoken_words(text: str | None) -> int:
    """About how many words a voice says for ``text``: words between spaces, but Chinese and
    Japanese characters two to a word, and a long number (5 digits or more) two digits to one."""
    words = 0
    for token in (text or "").split():
        cjk = len(_CJK.findall(token))
        digits = sum(c.isdigit() for c in token)
        rest = _CJK.sub("", token)
        said = any(unicodedata.category(c)[0] in "LNS" for c in rest)     # letters, digits, symbols (emoji are read)
        words += -(-cjk // 2) + (-(-digits // 2) if digits >= 5 else int(said))
    return words


def speech_rate(text: str | None, duration: float) -> tuple[int, float]:
    words = spoken_words(text)
    return words, (words / duration if duration > 0 else float("inf"))


def render_scene_prompt(
    *,
    scene_id: str,
    template: Path,
    sandboxed: bool,
    model: str | None,
    context: dict,
    speech: str | None,
    duration: float,
    max_words_per_second: float = 3.0,
    max_chars: int = MAX_PROMPT_CHARS,
    root: Path | None = None,
) -> RenderedPrompt:
    """Render ``template`` with ``context`` (plain dicts), validate it, check the speech pace.

    A sandboxed (project) template may only read files inside ``root`` (default: its folder).
    """
    dialect = dialect_for(model)
    try:
        env = _env(str(template.parent), sandboxed, str(root or template.parent))
        tmpl = env.get_template(template.name)
        text = render_limited(tmpl, context) if sandboxed else tmpl.render(**context)
        prompt = " ".join(text.split())
    except jinja2.TemplateNotFound as exc:
        raise PromptError(f"{template}: template {exc.name or template.name} not found") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{exc.filename or template}:{exc.lineno}: template syntax error: {exc.message}") from exc
    except TemplateBudget as exc:
        raise PromptError(f"{template}: scene {scene_id!r}: {exc}") from exc
    except (jinja2.UndefinedError, jinja2.exceptions.SecurityError) as exc:
        raise PromptError(f"{template}: scene {scene_id!r}: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, UnicodeError, jinja2.TemplateError) as exc:
        raise PromptError(f"{template}: scene {scene_id!r}: the template failed: {type(exc).__name__}: {exc}"[:300]) from exc
    except (SyntaxError, RecursionError, MemoryError) as exc:   # compiling it: blocks nested past Python's limits
        raise PromptError(f"{template}: the template is nested too deeply to compile ({type(exc).__name__})") from None
    if not prompt:
        raise PromptError(f"{template}: scene {scene_id!r}: the template made an empty prompt")
    problems = tokens.validate_prompt(prompt, dialect, max_chars)
    if problems:
        kind = "length" if all(p.startswith("prompt is ") for p in problems) else "prompt"
        raise PromptError(f"{template}: scene {scene_id!r}: " + "; ".join(problems), kind=kind,
                          excess=max(0, len(prompt) - max_chars))
    words, rate = speech_rate(speech, duration)
    warnings = []
    if speech and "<S>" not in prompt:       # (speech of only spaces is None by now; "..." is a line too)
        warnings.append(f"scene {scene_id!r}: the prompt carries no <S>speech<E>: the template leaves the line out, "
                        f"so no engine speaks it (use {{{{ scene.speech | speech }}}})")
    if rate > max_words_per_second:
        warnings.append(
            f"scene {scene_id!r}: {words} words in {duration:g} s is {rate:.1f} words/s, "
            f"above the ~{max_words_per_second:g} words/s lip sync can follow; "
            f"shorten the line or make the scene at least {words / max_words_per_second:.1f} s"
        )
    return RenderedPrompt(
        scene_id=scene_id,
        template=str(template),
        dialect=dialect,
        prompt=prompt,
        words=words,
        words_per_second=round(rate, 2),
        warnings=warnings,
    )
