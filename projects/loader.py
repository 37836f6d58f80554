"""Load and validate ``projects/<slug>/project.yaml``.

Every problem is reported as one line ``<file>:<line>: <field.path>: <message>``; the
loader collects all of them before failing so a user fixes a spec in one pass.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from media.tts import check_voice
from projects.schema import Project
from reelflow.errors import InputError

SPEC_NAME = "project.yaml"
_LOADER_FIELDS = {"slug", "root", "picks"}


class Problem(BaseModel):
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ProjectError(InputError):
    """The spec has problems; ``problems`` holds one line each."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def project_dir_of(path: str | Path) -> tuple[Path, Path]:
    """(project folder, spec file) for a folder or a ``project.yaml`` path."""
    p = Path(path)
    if p.is_dir():
        return p, p / SPEC_NAME
    return p.parent, p


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Line of the deepest YAML node on ``loc`` (the parent's line for a missing key)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _inside(root: Path, rel: str) -> Path | None:
    """Resolve ``rel`` inside ``root``; None if it is absolute or escapes the folder."""
    if Path(rel).is_absolute():
        return None
    target = (root / rel).resolve()
    return target if target.is_relative_to(root.resolve()) else None


def _file_checks(project: Project, root: Path) -> list[tuple[tuple, str]]:
    found: list[tuple[tuple, str]] = []

    def need(loc: tuple, rel: str | None) -> None:
        if rel is None:
            return
        target = _inside(root, rel)
        if target is None:
            found.append((loc, f"{rel!r} is outside the project folder; use a path inside {root}"))
        elif not target.is_file():
            found.append((loc, f"file {rel!r} not found in {root}"))

    need(("template",), project.template)
    if project.music is not None:
        need(("music", "file"), project.music.file)
    for slug, character in project.characters.items():
        need(("characters", slug, "image"), character.image)
        if message := check_voice(character.voice):
            found.append((("characters", slug, "voice"), message))
    seen: set[str] = set()
    for i, scene in enumerate(project.scenes):
        if scene.id in seen:
            found.append((("scenes", i, "id"), f"duplicate scene id {scene.id!r}"))
        seen.add(scene.id)
        if scene.character is not None and scene.character not in project.characters:
            known = ", ".join(sorted(project.characters)) or "none defined"
            found.append((("scenes", i, "character"), f"unknown character {scene.character!r} (known: {known})"))
        if scene.speaker2 is not None and scene.speaker2.character not in project.characters:
            found.append((("scenes", i, "speaker2", "character"), f"unknown character {scene.speaker2.character!r}"))
        if scene.footage is None and not (scene.action or scene.character):
            found.append((("scenes", i), "a scene needs an action or a character (or footage)"))
        need(("scenes", i, "audio"), scene.audio)
        need(("scenes", i, "footage"), scene.footage)
        if scene.footage is not None and scene.takes not in (None, 1):
            found.append((("scenes", i, "takes"), "a footage scene has one take"))
    return found


def check_project(path: str | Path) -> tuple[Project | None, list[Problem]]:
    """Load a spec; return (project or None, every problem found)."""
    root, spec = project_dir_of(path)
    name = str(spec)
    if not spec.is_file():
        return None, [Problem(file=name, line=None, field="", message="no such file; a project is a folder with project.yaml")]
    text = spec.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(file=name, line=mark.line + 1 if mark else None, field="", message=f"invalid YAML: {reason}")]
    if not isinstance(data, dict):
        return None, [Problem(file=name, line=1, field="", message="the top level must be a mapping (title, output, scenes, ...)")]

    problems = [
        Problem(file=name, line=_line_of(node, (key,)), field=key, message="unknown key")
        for key in _LOADER_FIELDS & data.keys()
    ]
    try:
        project = Project.model_validate({k: v for k, v in data.items() if k not in _LOADER_FIELDS})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            message = message.removeprefix("Value error, ")
            problems.append(Problem(file=name, line=_line_of(node, loc), field=_field(loc), message=message))
        return None, problems
    problems += [
        Problem(file=name, line=_line_of(node, loc), field=_field(loc), message=msg)
        for loc, msg in _file_checks(project, root)
    ]
    if problems:
        return None, problems
    from projects.picks import check_picks

    picks, pick_problems = check_picks(root, {s.id: s.footage is not None for s in project.scenes})
    if pick_problems:
        return None, pick_problems
    project.slug = root.resolve().name
    project.root = str(root.resolve())
    project.picks = picks
    return project, []


def load_project(path: str | Path) -> Project:
    """Load a valid spec or raise ProjectError listing every problem."""
    project, problems = check_project(path)
    if problems:
        raise ProjectError(problems)
    assert project is not None
    return project
