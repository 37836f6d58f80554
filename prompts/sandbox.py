"""The Jinja environment for templates that come inside a production folder.

A project's template is untrusted code. On top of Jinja's sandbox (no private attributes,
no unsafe methods) every render here runs under budgets, each ending in one PromptError line:

* **files**: ``{% include %}``/``{% import %}``/``{% extends %}`` resolve inside the project
  folder, symlinks followed; anything that lands outside is "not found";
* **arithmetic**: ``**``, ``*``, ``+``, ``%`` and calls are intercepted; a power, repetition
  or number whose result would exceed the limits is refused before it is computed
  (``10**(10**9)``, ``'ab'*10**9``, ``'a'.center(10**9)``); Jinja does not constant-fold
  intercepted operators, so this holds at compile time too;
* **loops and time**: ``range`` yields at most ``MAX_RANGE`` items and every item, call,
  attribute lookup and filter checks a deadline (``TIME_LIMIT`` seconds per render), so
  nested loops and runaway macro recursion stop; ``lipsum`` and ``random`` are gone (a prompt is
  a function of the production: the same scene, the same prompt, the same clip key);
* **growth**: the sandbox is immutable (no ``list.append``), ``~`` joins, filters and
  ``{{ ... }}`` refuse inputs over ``MAX_OUTPUT`` characters, ``str.format`` and the
  ``format`` filter are refused (a width of 10**9 is one call); string methods and filters
  whose result is the product of their text's and their arguments' sizes (``translate``,
  ``replace``, ``join``, ``expandtabs``, the ``indent``/``wordwrap``/``tojson``/``urlize``
  filters...) are refused from a bound computed from the arguments, before the one C call;
* **output**: rendering streams and stops past ``MAX_OUTPUT`` characters.

The checks are cooperative (they run in the rendering thread, which cannot be killed), so
every way a template can spend time goes through one of them: loops only iterate what the
sandbox produced (bounded ranges and strings) or the scene's small context.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import jinja2
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment

from prompts.budget import (MAX_INT_BITS, MAX_OUTPUT, MAX_TEMPLATE_BYTES, TIME_LIMIT, TemplateBudget, _STATE,
                            _check_args, _check_time, _check_value, _sized, limited_range)
from prompts.growth import _FILTER_BOUNDS, _bind, _method_args


def _refuse(*_args, **_kwargs):
    raise TemplateBudget("this filter is not allowed in project templates")


def _guard(fn, bound_check=None):
    """``fn`` with its inputs, its result and (``bound_check``) the size of its result checked;
    ``bound_check`` refuses from the arguments alone, before ``fn`` runs."""
    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        _check_time()
        if sum(_sized(a) for a in args) > MAX_OUTPUT:
            raise TemplateBudget(f"a filter's input is over {MAX_OUTPUT} characters")
        _check_args(args[1:], kwargs)
        if bound_check is not None and (bound := _bind(fn, args, kwargs)) is not None:
            bound_check(fn, bound.arguments)
            args, kwargs = bound.args, bound.kwargs
        return _check_value(fn(*args, **kwargs))
    return guarded


def finalize_size(value: Any) -> None:
    """Before ``{{ value }}`` is turned into text: refuse what would print too much."""
    if _sized(value) > MAX_OUTPUT:
        raise TemplateBudget(f"an expression would print over {MAX_OUTPUT} characters")


class ProjectLoader(jinja2.FileSystemLoader):
    """Templates from ``folder``; every name must resolve (symlinks followed) inside ``root``."""

    def __init__(self, folder: Path, root: Path):
        super().__init__(str(folder), followlinks=False)
        self.root = root.resolve()

    def get_source(self, environment, template):
        pieces = jinja2.loaders.split_template_path(template)
        for base in self.searchpath:
            try:
                path = Path(base, *pieces).resolve()
                found = path.is_file()
            except (OSError, RuntimeError):  # a name too long, a symlink loop
                raise jinja2.TemplateNotFound(f"{template[:80]} (cannot be resolved)") from None
            if not path.is_relative_to(self.root):
                raise jinja2.TemplateNotFound(f"{template[:80]} (resolves outside the project folder)")
            if found:
                if path.stat().st_size > MAX_TEMPLATE_BYTES:
                    raise TemplateBudget(f"template {template} is over {MAX_TEMPLATE_BYTES} bytes")
                text = path.read_text(encoding="utf-8")
                mtime = path.stat().st_mtime
                return text, str(path), lambda: path.is_file() and path.stat().st_mtime == mtime
        raise jinja2.TemplateNotFound(template)

    def list_templates(self):   # pragma: no cover - never used with project templates
        return []


class _GuardedConcat(CodeGenerator):
    """``a ~ b`` goes through ``environment.guarded_concat`` (Jinja joins it directly otherwise)."""

    def visit_Concat(self, node, frame) -> None:
        self.write("environment.guarded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox (no list.append/dict.update to grow data) with every budget above."""

    intercepted_binops = frozenset({"**", "*", "+", "%", "//"})
    code_generator_class = _GuardedConcat

    def __init__(self, **options):
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        self.globals["range"] = limited_range

    def wrap_filters(self) -> None:
        self.filters = {name: _guard(fn, _FILTER_BOUNDS.get(name)) for name, fn in self.filters.items()}
        self.filters["format"] = _refuse
        # random would make another prompt at each render: a clip's key would change with nothing
        # changed (paid for again), and the prompt validated would not be the prompt sent.
        self.filters.pop("random", None)

    def wrap_str_format(self, value):
        if super().wrap_str_format(value) is None:
            return None

        def refused(*_args, **_kwargs):
            raise TemplateBudget("str.format is not allowed in project templates; use ~ to join text")
        return refused

    def guarded_concat(self, parts: tuple) -> str:
        _check_time()
        if sum(_sized(p) for p in parts) > MAX_OUTPUT:
            raise TemplateBudget(f"the joined text is over the limit of {MAX_OUTPUT} characters")
        return _check_value("".join(map(str, parts)))

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        numbers = all(isinstance(v, (int, float)) for v in (left, right))
        if operator == "**" and numbers:
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if abs(left).bit_length() * right > MAX_INT_BITS:
                    raise TemplateBudget(f"{left} ** {right} is too large for a template")
            elif isinstance(right, (int, float)) and abs(right) > 1024:
                raise TemplateBudget("the exponent is too large for a template")
        elif operator == "*":
            seq, count = (left, right) if isinstance(left, (str, bytes, list, tuple)) else (right, left)
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int):
                if len(seq) * count > MAX_OUTPUT:
                    raise TemplateBudget(f"repeating {len(seq)} items {count} times is over the limit of {MAX_OUTPUT}")
            elif numbers and isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise TemplateBudget("the product is too large for a template")
        elif operator == "+" and _sized(left) + _sized(right) > MAX_OUTPUT:
            raise TemplateBudget(f"the joined text is over the limit of {MAX_OUTPUT} characters")
        elif operator == "%" and isinstance(left, str):
            raise TemplateBudget("'%' string formatting is not allowed in project templates; use the format filters")
        return _check_value(super().call_binop(context, operator, left, right))

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own signature
        _check_time()
        _check_args(args, kwargs)
        args, kwargs = _method_args(__obj, args, kwargs)
        return _check_value(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj, attribute):
        _check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _check_time()
        return super().getitem(obj, argument)


def render_limited(tmpl: jinja2.Template, context: dict) -> str:
    """Render a project template under the time and output budgets."""
    _STATE.deadline = time.monotonic() + TIME_LIMIT
    out: list[str] = []
    size = 0
    try:
        for chunk in tmpl.generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateBudget(f"the template's output is over {MAX_OUTPUT} characters")
            out.append(chunk)
            _check_time()
    except RecursionError:
        raise TemplateBudget("the template recursed too deeply") from None
    except (OverflowError, MemoryError) as exc:
        raise TemplateBudget(f"the template went over a limit ({type(exc).__name__})") from None
    finally:
        _STATE.deadline = None
    return "".join(out)
