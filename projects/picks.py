"""``projects/<slug>/picks.yaml``: which take each scene uses in the cut (``scene_id: take``).

It lives beside ``project.yaml`` so it is versioned and diffed with the production. A scene
without an entry uses take 1. A pick beyond the scene's ``takes`` is valid (``reelflow redo``
makes such takes); if that take is not in the store, the next render makes it (its seed is
fixed by its number, so it is the same take). Problems are one line each:
``picks.yaml:<line>: <scene>: <message>``. Writing keeps the file's comments and order.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path

import yaml

from projects import yaml_safe

from projects.loader import Problem
from projects.schema import MAX_TAKE_NUMBER
from reelflow.errors import DISK_ERRNOS, DISK_HINT, InfrastructureError, InputError, ReelflowError

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
            bad(f"the take must be a whole number >= 1, not {_shown(value_node)}")
        elif take > MAX_TAKE_NUMBER:
            bad(f"take {take} is past the last take number a scene can have ({MAX_TAKE_NUMBER})")
        elif scenes[scene] and take != 1:
            bad("a footage scene has one take (1)")
        else:
            picks[scene] = take
    return (picks if not problems else {}), problems


def _as_take(node: yaml.Node) -> int | None:
    """A take number written as plain decimal digits (not 0x2, 1_0 or +2, which YAML 1.1 also
    reads as numbers: a pick says which take in the way a person counts)."""
    if not isinstance(node, yaml.ScalarNode) or node.style not in (None, "") or not node.value.isascii() \
            or not node.value.isdigit():
        return None
    value = int(node.value, 10)
    return value if value >= 1 else None


def _shown(node: yaml.Node) -> str:
    """A value as written in the file (not a parser's node repr)."""
    if isinstance(node, yaml.ScalarNode):
        return repr(node.value)
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def load_picks(root: str | Path, scenes: dict[str, bool]) -> dict[str, int]:
    picks, problems = check_picks(root, scenes)
    if problems:
        raise PicksError(problems)
    return picks


HEADER = "# Which take each scene uses in the cut (default 1). Written by `reelflow pick`."


def save_picks(root: str | Path, updates: dict[str, int]) -> Path:
    """Set ``scene: take`` for each update, atomically and under a lock on the project folder
    (two picks at once both land). The file's comments, order and style are kept where a value
    can be replaced in place; the result is read back, and if it does not say exactly the picks
    meant (a flow mapping, anchors, keys written oddly) the file is written plainly instead."""
    path = picks_path(root)
    try:
        with _folder_lock(Path(root)):
            text = path.read_text(encoding="utf-8-sig") if path.is_file() else ""
            meant = {**_picks_in(text), **{scene: int(take) for scene, take in updates.items()}}
            edited = _edited(text, updates)
            if not _says(edited, meant):
                edited = "\n".join([HEADER, *(f"{_yaml_key(s)}: {t}" for s, t in meant.items())]) + "\n"
            _write(path, edited)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    return path


def check_writable(root: str | Path) -> None:
    """picks.yaml can be written in the production folder: checked before a redo or a review pays
    for takes it would then fail to record."""
    path = picks_path(root)
    folder = Path(root)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _unwritable(path, PermissionError(errno.EACCES, "the production folder is not writable", str(folder)))
    if path.exists() and not os.access(path, os.W_OK):
        raise _unwritable(path, PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path)))


def _unwritable(path: Path, exc: OSError) -> ReelflowError:
    """A picks.yaml that cannot be written: the disk's fault (exit 3) or the folder's (exit 2)."""
    message = f"{path}: cannot write the picks ({exc.strerror or exc})"
    if exc.errno in DISK_ERRNOS:
        return InfrastructureError(message, hint=DISK_HINT)
    return InputError(message, hint="make the production folder writable (picks.yaml is written beside project.yaml)")


def _picks_in(text: str) -> dict[str, object]:
    """scene -> take (or the value's text where it is not a take) of a picks.yaml text; PicksError
    if it is not one mapping without repeated keys."""
    try:
        node, duplicates = yaml_safe.compose(text)
    except yaml_safe.YamlProblem as exc:
        raise PicksError([Problem(file=PICKS_NAME, line=exc.line, field="", message=exc.message)]) from None
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode) or duplicates:
        raise PicksError([Problem(file=PICKS_NAME, line=node.start_mark.line + 1, field="",
                                  message="must be a mapping of scene id to take number, each scene once")])
    return {str(k.value): (_as_take(v) or getattr(v, "value", None)) for k, v in node.value}


def _says(text: str, picks: dict[str, object]) -> bool:
    try:
        return _picks_in(text) == picks
    except PicksError:
        return False


def _edited(text: str, updates: dict[str, int]) -> str:
    """``text`` with each update's value replaced where it stands, or its line added at the end."""
    try:
        node, _ = yaml_safe.compose(text)
    except yaml_safe.YamlProblem:
        return text
    spans: list[tuple[int, int, str]] = []
    added: list[str] = []
    values = {str(k.value): v for k, v in node.value} if isinstance(node, yaml.MappingNode) else {}
    for scene, take in updates.items():
        value = values.get(scene)
        if isinstance(value, yaml.ScalarNode):
            spans.append((value.start_mark.index, value.end_mark.index, str(int(take))))
        else:
            added.append(f"{_yaml_key(scene)}: {int(take)}")
    for start, end, replacement in sorted(spans, reverse=True):
        text = text[:start] + replacement + text[end:]
    if added:
        text = (text if not text or text.endswith("\n") else text + "\n") or HEADER + "\n"
        text += "\n".join(added) + "\n"
    return text


def _yaml_key(scene: str) -> str:
    """A scene id as a YAML key that reads back as that string (``yes``, ``01`` and ``null`` quoted)."""
    return yaml.safe_dump({scene: 1}, default_flow_style=False).split(":", 1)[0]


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically, keeping its permissions (a new file gets the umask's)."""
    part = path.with_name(f".{PICKS_NAME}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        with open(part, "x", encoding="utf-8") as f:
            f.write(text)
        if path.is_file():
            os.chmod(part, stat.S_IMODE(path.stat().st_mode))
        os.replace(part, path)
    except OSError:
        part.unlink(missing_ok=True)
        raise


@contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on the project folder itself (no lock file left in the production)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
