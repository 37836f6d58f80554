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
import inspect
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import jinja2
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RANGE = 10_000
MAX_OUTPUT = 100_000          # characters of rendered text (and of any string a template builds)
MAX_INT_BITS = 256
MAX_TEMPLATE_BYTES = 64 * 1024
TIME_LIMIT = 2.0


class TemplateBudget(SecurityError):
    """A project template went over a time, size or arithmetic limit."""


_STATE = threading.local()


def _check_time() -> None:
    deadline = getattr(_STATE, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateBudget(f"the template ran longer than {TIME_LIMIT:g} s")


def _sized(value: Any, depth: int = 0) -> int:
    """Characters and items ``value`` stands for, nested values included (stops past the limit)."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, (list, tuple, dict, set, frozenset)) and depth < 8:
        items = value.values() if isinstance(value, dict) else value
        total = len(value)
        for item in items:
            total += _sized(item, depth + 1)
            if total > MAX_OUTPUT:
                break
        return total
    return 0


def _check_value(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateBudget(f"a number in the template is larger than {MAX_INT_BITS} bits")
    if _sized(value) > MAX_OUTPUT:
        raise TemplateBudget(f"a value in the template is longer than {MAX_OUTPUT} items")
    return value


def _check_args(args: tuple, kwargs: dict) -> None:
    if sum(_sized(a) for a in (*args, *kwargs.values())) > MAX_OUTPUT:
        raise TemplateBudget(f"the values given to a template call are over {MAX_OUTPUT} characters")
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_OUTPUT:
            raise TemplateBudget(f"the number {arg if abs(arg) < 10**12 else 'given'} is too large for a template call")
        _check_value(arg)


def limited_range(*args: int):
    """``range`` with at most MAX_RANGE items, checking the deadline at every item."""
    _check_args(args, {})
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise TemplateBudget(f"range() of {len(items)} items; templates may loop at most {MAX_RANGE} times")
    for item in items:
        _check_time()
        yield item


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


def _too_big(what: str, size: int) -> None:
    if size > MAX_OUTPUT:
        raise TemplateBudget(f"{what} would make over {MAX_OUTPUT} characters")


def _items(iterable: Any) -> list:
    """``iterable`` as a list, refused past MAX_OUTPUT items (a generator is read once, here)."""
    if isinstance(iterable, (str, bytes, list, tuple)):
        return list(iterable)
    items = []
    for item in itertools.islice(iter(iterable), MAX_OUTPUT + 1):
        _check_time()
        items.append(item)
    _too_big("joining so many items", len(items))
    return items


def _text_size(items: list, sep: Any, what: str) -> None:
    """Refuse joining ``items`` with ``sep`` when the text would be over the limit (before joining)."""
    size = len(sep) * max(len(items) - 1, 0)
    _too_big(what, size)
    for item in items:
        if not isinstance(item, (str, bytes)):
            if _sized(item) > MAX_OUTPUT:
                raise TemplateBudget(f"{what} would make over {MAX_OUTPUT} characters")
            item = str(item)
        size += len(item)
        _too_big(what, size)


def _longest(table: Any) -> int:
    """The longest replacement in a ``translate`` table (refused if it is not plain data)."""
    if table is None or isinstance(table, (str, bytes)):
        return 1
    if isinstance(table, (dict, list, tuple)):
        values = table.values() if isinstance(table, dict) else table
        return max([len(v) for v in values if isinstance(v, (str, bytes))], default=1)
    raise TemplateBudget("translate() takes a dict (or str.maketrans) in project templates")


def _method_args(fn: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Before a ``str``/``bytes`` method whose result can grow with its data: refuse a result
    over MAX_OUTPUT from a bound computed from the arguments (never from the result)."""
    text = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", "")
    if not isinstance(text, (str, bytes)) or name not in _GROWING_METHODS:
        return args, kwargs
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return args, kwargs         # the call itself refuses its arguments before doing any work
    bound.apply_defaults()
    a = bound.arguments
    n = len(text)
    what = f"{type(text).__name__}.{name}()"
    if name == "translate":
        _too_big(what, n * _longest(a["table"]))
    elif name == "expandtabs":
        tabsize = a["tabsize"]
        if isinstance(tabsize, int):
            _too_big(what, n + text.count("\t" if isinstance(text, str) else b"\t") * max(tabsize, 0))
    elif name == "replace":
        old, new, count = a["old"], a["new"], a["count"]
        if isinstance(old, type(text)) and isinstance(new, type(text)) and isinstance(count, int):
            times = n + 1 if not old else text.count(old)
            times = min(times, count) if count >= 0 else times
            _too_big(what, n + times * max(len(new) - len(old), 0))
    elif name == "join":
        items = _items(a["iterable"] if "iterable" in a else a["iterable_of_bytes"])
        _text_size(items, text, what)
        return (items,), {}
    else:                           # center, ljust, rjust, zfill: the width
        width = a["width"]
        if isinstance(width, int):
            _too_big(what, max(n, width))
    return args, kwargs


_GROWING_METHODS = frozenset({"translate", "expandtabs", "replace", "join", "center", "ljust", "rjust", "zfill"})


def _bind(fn: Any, args: tuple, kwargs: dict) -> inspect.BoundArguments | None:
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return None                 # the filter refuses its arguments itself
    bound.apply_defaults()
    return bound


def _filter_replace(fn, a) -> None:
    count = a["count"] if isinstance(a["count"], int) else -1
    text, old, new = str(a["s"]), str(a["old"]), str(a["new"])
    times = len(text) + 1 if not old else text.count(old)
    times = min(times, count) if count >= 0 else times
    _too_big("the replace filter", len(text) + times * max(len(new) - len(old), 0))


def _filter_indent(fn, a) -> None:
    text, width = str(a["s"]), a["width"]
    per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _too_big("the indent filter", len(text) + (text.count("\n") + 2) * max(per_line, 0))


def _filter_wordwrap(fn, a) -> None:
    text, width = str(a["s"]), a["width"]
    wrap = a["wrapstring"] if a["wrapstring"] is not None else a["environment"].newline_sequence
    width = width if isinstance(width, int) and width > 0 else 1
    # every line holds a word, a hyphenated piece or a width's worth of a long word
    lines = min(len(text), len(text.split()) + text.count("-") + text.count("\n") + len(text) // width) + 1
    _too_big("the wordwrap filter", len(text) + lines * len(str(wrap)))


def _filter_join(fn, a) -> None:
    items = _items(a["value"])
    if a["attribute"] is not None:
        getter = make_attrgetter(a["eval_ctx"].environment, a["attribute"])
        shown = [getter(item) for item in items]
    else:
        shown = items
    _text_size(shown, str(a["d"]), "the join filter")
    a["value"] = items


def _filter_tojson(fn, a) -> None:
    indent = a["indent"]
    if indent is None:
        return
    step = len(indent) if isinstance(indent, str) else max(indent, 0) if isinstance(indent, int) else 0
    size = len(fn(a["eval_ctx"], a["value"], None))
    stack = [(a["value"], 0)]
    while stack:                    # each item of a list or dict goes on a line of its own, indented
        node, depth = stack.pop()
        if isinstance(node, (dict, list, tuple)) and node:
            children = node.values() if isinstance(node, dict) else node
            size += len(node) * ((depth + 1) * step + 1) + depth * step + 1
            _too_big("the tojson filter", size)
            stack.extend((child, depth + 1) for child in children)


def _filter_urlize(fn, a) -> None:
    text = str(a["value"])
    extra = sum(len(str(a[k])) for k in ("target", "rel") if a[k] is not None)
    # a word becomes <a href="WORD" rel=.. target=..>WORD</a>, every character escaped at most 5 times
    _too_big("the urlize filter", 10 * len(text) + (len(text.split()) + 1) * (5 * extra + 64))


_FILTER_BOUNDS = {"replace": _filter_replace, "indent": _filter_indent, "wordwrap": _filter_wordwrap,
                  "join": _filter_join, "tojson": _filter_tojson, "urlize": _filter_urlize}


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
