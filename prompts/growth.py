"""Upper bounds of what a string method or filter would build, from its arguments, before it runs.

``'a'.translate({97: 'x' * 20000})`` on 100 000 characters is one C call that built 4 GB before
any size check saw its result. Each method and filter whose result is the product of its
text's and its arguments' sizes gets a bound here, checked before the call.
"""

from __future__ import annotations

import inspect
import itertools
from typing import Any

from jinja2.filters import make_attrgetter

from prompts.budget import MAX_OUTPUT, TemplateBudget, _check_time, _sized

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
