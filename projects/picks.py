"""``projects/<slug>/picks.yaml``: which take each scene uses in the cut (``scene_id: take``).

It lives beside ``project.yaml`` so it is versioned and diffed with the production. A scene
without an entry uses take 1. A pick beyond the scene's ``takes`` is valid (``reelflow redo``
makes such takes); if that take is not in the store, the next render makes it (its seed is
fixed by its number, so it is the same take). Problems are one line each:
``picks.yaml:<line>: <scene>: <message>``. Writing keeps the file's comments and order.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import yaml

from projects import yaml_safe

from projects.loader import Problem
from reelflow.errors import InputError

PICKS_NAME = "picks.yaml"
MAX_BYTES = 256 * 1024


class PicksError(InputError):
    """picks.yaml has problems; ``problems`` holds one line each."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def picks_path(root: str | Path) -> Path:
    return Path(root) / PICKS_NAME


def check_picks(root: str | Path, scenes: dict[str, bool]) -> tuple[dict[str, int], list[Problem]]:
    """Read ``picks.yaml`` of the project at ``root``; ``scenes`` maps scene id -> is footage.

    Returns (scene -> take, problems). A missing or empty file is no picks.
    """
    path = picks_path(root)
    name = str(path)
    if not path.exists():
        return {}, []
    if not path.is_file() or not path.resolve().is_relative_to(Path(root).resolve()):
        return {}, [Problem(file=name, line=None, field="", message="must be a file inside the project folder")]
    try:
        node, _ = yaml_safe.compose(yaml_safe.read_text(path, MAX_BYTES))
    except yaml_safe.YamlProblem as exc:
        return {}, [Problem(file=name, line=exc.line, field="", message=exc.message)]
    if node is None:
        return {}, []
    if not isinstance(node, yaml.MappingNode):
        return {}, [Problem(file=name, line=node.start_mark.line + 1, field="",
                            message="must be a mapping of scene id to take number, e.g. `intro: 2`")]
    picks: dict[str, int] = {}
    problems: list[Problem] = []
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        scene = str(key_node.value)

        def bad(message: str) -> None:
            problems.append(Problem(file=name, line=line, field=scene, message=message))

        if not isinstance(key_node, yaml.ScalarNode):
            problems.append(Problem(file=name, line=line, field="", message="a key must be a scene id"))
            continue
        if scene not in scenes:
            bad(f"unknown scene (scenes are: {', '.join(scenes)})")
            continue
        if scene in picks:
            bad("picked twice")
            continue
        take = _as_take(value_node)
        if take is None:
            bad(f"the take must be a whole number >= 1, not {getattr(value_node, 'value', '...')!r}")
        elif scenes[scene] and take != 1:
            bad("a footage scene has one take (1)")
        else:
            picks[scene] = take
    return (picks if not problems else {}), problems


def _as_take(node: yaml.Node) -> int | None:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int":
        return None
    try:
        value = int(yaml.safe_load(yaml.serialize(node)))
    except (ValueError, TypeError, yaml.YAMLError):
        return None
    return value if value >= 1 else None


def load_picks(root: str | Path, scenes: dict[str, bool]) -> dict[str, int]:
    picks, problems = check_picks(root, scenes)
    if problems:
        raise PicksError(problems)
    return picks


def save_picks(root: str | Path, updates: dict[str, int]) -> Path:
    """Set ``scene: take`` for each update, keeping the file's comments and order; atomic."""
    path = picks_path(root)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [
        "# Which take each scene uses in the cut (default 1). Written by `reelflow pick`."]
    for scene, take in updates.items():
        pattern = re.compile(rf"^({re.escape(scene)}|'{re.escape(scene)}'|\"{re.escape(scene)}\")\s*:[^#]*(#.*)?$")
        for i, line in enumerate(lines):
            found = pattern.match(line)
            if found:
                comment = f"  {found.group(2)}" if found.group(2) else ""
                lines[i] = f"{scene}: {int(take)}{comment}"
                break
        else:
            lines.append(f"{scene}: {int(take)}")
    fd, tmp = tempfile.mkstemp(prefix=".picks.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
