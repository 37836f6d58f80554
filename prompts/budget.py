"""The budgets every project-template render runs under: sizes, numbers, loops and time.

Shared by the sandbox (``prompts.sandbox``) and the bounds on what growing string calls would
build (``prompts.growth``); each overrun is a :class:`TemplateBudget`, one PromptError line.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from jinja2.exceptions import SecurityError

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


def _sized(value: Any) -> int:
    """Characters and items ``value`` stands for, nested values included at any depth (a
    namespace's too); stops counting past the limit, so a shared list repeated is cheap."""
    from jinja2.utils import Namespace

    total, todo = 0, [value]
    while todo and total <= MAX_OUTPUT:
        item = todo.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, (list, tuple, dict, set, frozenset)):
            total += len(item)
            todo.extend(item.values() if isinstance(item, dict) else item)
        elif isinstance(item, Namespace):
            todo.append(dict(item._Namespace__attrs))
    return total


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
