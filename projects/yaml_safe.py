"""Read ``project.yaml`` under budgets: size, encoding, nesting, alias expansion, duplicates.

A production may come from someone else, so the YAML is hostile until proven otherwise:

* at most ``MAX_BYTES`` bytes, UTF-8 only (a UTF-8 BOM is fine; UTF-16/32 and other bytes
  are refused naming the file and line);
* one document; collections nested at most ``MAX_DEPTH`` deep, checked while the parser's
  events stream in, so 3000 ``[`` never reach a recursive composer;
* at most ``MAX_VALUES`` values with every alias expanded (a billion laughs is refused
  before anything is built from it);
* duplicate keys in a mapping are problems naming both lines (YAML's "last wins" would
  silently drop the first).

The node tree (with line marks) is composed here without recursion; Python values are
then built by PyYAML's SafeConstructor from that bounded tree.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import yaml

MAX_BYTES = 1 << 20
MAX_DEPTH = 48
MAX_VALUES = 100_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


class YamlProblem(Exception):
    """A YAML file that cannot be read at all; ``line`` is 1-based or None."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message, self.line = message, line


def read_text(path: Path, max_bytes: int = MAX_BYTES) -> str:
    """The file as text: size-checked, UTF-8 only."""
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlProblem(f"the file is {size} bytes, over the limit of {max_bytes} bytes for a production spec")
    data = path.read_bytes()[: max_bytes + 1]
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise YamlProblem(f"the file is {name} encoded; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlProblem(f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8", line) from None


def _line(event) -> int | None:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def compose(text: str, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> tuple[yaml.Node | None, list[tuple[int, str]]]:
    """(root node, [(line, duplicate-key message)]) of a single-document YAML text, within budgets."""
    anchors: dict[str, yaml.Node] = {}
    sizes: dict[int, int] = {}
    stack: list[yaml.Node] = []
    duplicates: list[tuple[int, str]] = []
    root: yaml.Node | None = None
    documents = 0

    def add(node: yaml.Node, size: int) -> None:
        nonlocal root
        sizes[id(node)] = size
        if stack:
            stack[-1].value.append(node)
        else:
            root = node

    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise YamlProblem("more than one YAML document; a production spec is one document", _line(event))
            elif isinstance(event, yaml.AliasEvent):
                node = anchors.get(event.anchor)
                if node is None:
                    raise YamlProblem(f"unknown alias *{event.anchor}", _line(event))
                if id(node) not in sizes:
                    raise YamlProblem(f"alias *{event.anchor} refers to itself", _line(event))
                add(node, sizes[id(node)])
            elif isinstance(event, yaml.ScalarEvent):
                tag = event.tag if event.tag not in (None, "!") else _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
                if event.anchor:
                    anchors[event.anchor] = node
                add(node, 1)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) >= max_depth:
                    raise YamlProblem(f"nested more than {max_depth} levels deep", _line(event))
                kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
                tag = event.tag if event.tag not in (None, "!") else _RESOLVER.resolve(kind, None, event.implicit)
                node = kind(tag, [], event.start_mark, event.end_mark, flow_style=event.flow_style)
                if event.anchor:
                    anchors[event.anchor] = node
                stack.append(node)
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                node = stack.pop()
                items = node.value
                size = 1 + sum(sizes[id(child)] for child in items)
                if size > max_values:
                    raise YamlProblem(f"the YAML expands to more than {max_values} values "
                                      f"(aliases counted each time they are used)", _line(node))
                if isinstance(node, yaml.MappingNode):
                    node.value = list(zip(items[0::2], items[1::2]))
                    duplicates += _duplicates(node)
                add(node, size)
    except yaml.reader.ReaderError as exc:      # a character YAML refuses: its line, not a position
        raise YamlProblem(f"invalid YAML: character U+{exc.character:04X} is not allowed ({exc.reason})",
                          text.count("\n", 0, exc.position) + 1) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        raise YamlProblem(f"invalid YAML: {reason}", mark.line + 1 if mark else None) from None
    except RecursionError:  # pragma: no cover - depth is bounded above; belt and braces
        raise YamlProblem(f"nested more than {max_depth} levels deep") from None
    return root, duplicates


def _duplicates(node: yaml.MappingNode) -> list[tuple[int, str]]:
    seen: dict[str, int] = {}
    found = []
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
            continue
        line = key.start_mark.line + 1
        if key.value in seen:
            found.append((line, f"duplicate key {key.value!r} (lines {seen[key.value]} and {line}); "
                                f"YAML would silently keep only the last"))
        else:
            seen[key.value] = line
    return found


def construct(node: yaml.Node | None) -> object:
    """Python values from a composed (bounded) node tree, with PyYAML's safe constructor."""
    if node is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        raise YamlProblem(f"invalid YAML: {reason}", mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()


def load(path: Path) -> tuple[yaml.Node | None, object, list[tuple[int, str]]]:
    """(node tree, data, duplicate-key problems) of a YAML file; YamlProblem if unreadable."""
    node, duplicates = compose(read_text(path))
    return node, construct(node), duplicates
