"""Load and validate ``projects/<slug>/project.yaml``.

Every problem is reported as one line ``<file>:<line>: <field.path>: <message>``; the
loader collects all of them before failing so a user fixes a spec in one pass.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from projects import yaml_safe
from projects.checks import Setting, semantic_problems
from projects.schema import Project
from projects.text import text_problems
from reelflow.errors import InputError
from reelflow.secrets import redact

SPEC_NAME = "project.yaml"
_LOADER_FIELDS = {"slug", "root", "picks"}


class Problem(BaseModel):
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return redact(text)   # a value quoted back from the spec may be a pasted secret


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


SLUG_LENGTH = 48


def safe_slug(name: str) -> str:
    """A folder name as a storage-key-safe slug: itself when it is one (``my-film``); else made
    from it with a digest of the whole name, ``My Film`` -> ``my-film-1f7c0e2b``, so two folders
    (``My Film``, ``my-film``) never share a history or a renders folder."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9_-]+", "-", ascii_name.lower()).strip("-_")
    if slug == name and len(slug) <= SLUG_LENGTH:
        return slug
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug[:SLUG_LENGTH - 9].rstrip('-_')}-{digest}" if slug else f"project-{digest}"


def _problems(name: str, node, found: list[tuple[tuple, str]], taken: set[str]) -> list[Problem]:
    out = []
    for loc, message in found:
        if loc and isinstance(loc[0], Setting):
            out += _setting_problem(name, node, loc, message, taken)
            continue
        field = _field(loc)
        if field in taken:
            continue
        taken.add(field)
        out.append(Problem(file=name, line=_line_of(node, loc), field=field, message=message))
    return out


def _setting_problem(name: str, node, loc: tuple, message: str, taken: set[str]) -> list[Problem]:
    """A problem in a setting's value: named by the variable, once, with the engine it was checked for."""
    setting, field = loc[0], _field(loc[1:])
    if f"{setting.variable}: {field}" in taken:
        return []
    taken.add(f"{setting.variable}: {field}")
    line = _line_of(node, setting.checked_for)
    spec = f"{name}:{line}" if line else name
    return [Problem(file=setting.variable, line=None, field=field,
                    message=f"{message} (checked for {spec}: {_field(setting.checked_for)})")]


def check_project(path: str | Path) -> tuple[Project | None, list[Problem]]:
    """Load a spec; return (project or None, every problem found, schema and semantic together)."""
    root, spec = project_dir_of(path)
    name = str(spec)
    if not spec.is_file():
        return None, [Problem(file=name, line=None, field="", message="no such file; a project is a folder with project.yaml")]
    if not spec.resolve().is_relative_to(root.resolve()):     # a link out: nothing is read outside the folder
        return None, [Problem(file=name, line=None, field="", message="must be a file inside the project folder "
                              "(it is a link to a file outside it)")]
    try:
        node, data, duplicates = yaml_safe.load(spec)
    except yaml_safe.YamlProblem as exc:
        return None, [Problem(file=name, line=exc.line, field="", message=exc.message)]
    except OSError as exc:
        return None, [Problem(file=name, line=None, field="", message=f"cannot read the file ({exc.strerror})")]
    if duplicates:   # the data is ambiguous: report only that, every duplicate with both lines
        return None, [Problem(file=name, line=line, field="", message=message) for line, message in duplicates]
    problems: list[Problem] = []
    if not isinstance(data, dict):
        return None, problems + [Problem(file=name, line=1, field="", message="the top level must be a mapping (title, output, scenes, ...)")]

    taken: set[str] = set()
    problems += _problems(name, node, text_problems(data), taken)
    problems += _problems(name, node, [((key,), "unknown key") for key in sorted(_LOADER_FIELDS & data.keys())], taken)
    project = None
    try:
        project = Project.model_validate({k: v for k, v in data.items() if k not in _LOADER_FIELDS}, strict=True)
    except ValidationError as exc:
        schema = []
        for err in exc.errors():
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            schema.append((tuple(err["loc"]), message.removeprefix("Value error, ")))
        problems += _problems(name, node, schema, taken)
    problems += _problems(name, node, semantic_problems(data, root), taken)
    if problems or project is None:
        return None, problems
    from projects.picks import check_picks

    picks, pick_problems = check_picks(root, {s.id: s.footage is not None for s in project.scenes})
    if pick_problems:
        return None, pick_problems
    project.slug = safe_slug(root.resolve().name)
    project.root = str(root.resolve())
    project.picks = picks
    problems = _problems(name, node, prompt_problems(project), taken)
    return (None, problems) if problems else (project, [])


def prompt_problems(project: Project) -> list[tuple[tuple, str]]:
    """Render every scene's prompt for every engine in its chain; name the scene field at fault."""
    from prompts import PromptError
    from tasks.plan import plan_project

    try:
        plan_project(project)               # all at once; scene by scene only to name a scene at fault
        return []
    except PromptError:
        pass
    found = []
    for i, scene in enumerate(project.scenes):
        if scene.footage:
            continue
        try:
            plan_project(project, scene_ids=[scene.id])
        except PromptError as exc:
            if exc.kind == "length":
                found.append(_too_long(i, scene, exc, project.template))
                if found[-1][0] == ("template",):
                    break                   # the template's own text: every scene would repeat it
                continue
            found.append((("scenes", i), str(exc)))
            if exc.kind == "template":   # the template itself is at fault: every scene would repeat it
                break
    return found


def _too_long(i: int, scene, exc, template: str | None) -> tuple[tuple, str]:
    """Name the scene's longest text as the field to shorten, or the project's template when
    no text of the scene could make up the excess (the template writes most of the prompt)."""
    texts = {("speech",): scene.speech, ("action",): scene.action, ("atmosphere",): scene.atmosphere,
             ("speaker2", "speech"): scene.speaker2.speech if scene.speaker2 else None}
    field, text = max(texts.items(), key=lambda kv: len(kv[1] or ""))
    reason = str(exc).rsplit(": ", 1)[-1].removeprefix("prompt ")
    if template and len(text or "") < exc.excess:
        return ("template",), f"too long: the prompt it makes {reason}, more than any scene's text accounts for"
    return ("scenes", i, *field), f"too long: the scene's prompt {reason}; shorten this text ({len(text or '')} characters)"


def load_project(path: str | Path) -> Project:
    """Load a valid spec or raise ProjectError listing every problem."""
    project, problems = check_project(path)
    if problems:
        raise ProjectError(problems)
    assert project is not None
    return project
