"""Load a production and plan its clips."""

from __future__ import annotations

from pathlib import Path

from tasks.step import run_logger, step

from projects import Project, load_project, project_dir_of
from reelflow.errors import InputError
from reelflow.settings import get_settings
from tasks.models import ClipPlan
from storage import open_store
from tasks.plan import plan_project, prefer_stored


@step(task_run_name="find-projects")
def find_projects(root: str) -> list[str]:
    """Every production folder under ``root`` (folders holding a project.yaml), sorted."""
    return [str(p.parent) for p in sorted(Path(root).glob("*/project.yaml"))]


class ProjectNotFound(InputError):
    """The project path names no folder (a typo, or a worker started elsewhere)."""


def check_project_path(project: str) -> None:
    if not Path(project).exists() or not project_dir_of(project)[0].is_dir():
        raise ProjectNotFound(f"project {project!r}: no such folder (looked in {Path.cwd()}); "
                              f"give a production folder holding project.yaml, e.g. projects/demo")


@step(task_run_name="load-{project}")
def load_spec(project: str) -> Project:
    """Load and validate ``project.yaml`` (every problem in one error)."""
    check_project_path(project)
    return load_project(project)


@step(task_run_name="plan-{spec.slug}")
def plan_clips(spec: Project, engine: str | None, scenes: list[str] | None) -> list[list[ClipPlan]]:
    """Render every scene's prompt and compute its clip keys, one plan per engine in its chain."""
    chains = plan_project(spec, engine, scenes, get_settings().max_words_per_second)
    logger = run_logger()
    for chain in chains:
        for warning in chain[0].warnings:
            logger.warning(warning)
    return chains


@step(task_run_name="reuse-stored")
def reuse_stored(chains: list[list[ClipPlan]]) -> list[list[ClipPlan]]:
    """Put first in each chain a plan whose clip is already stored (e.g. from a fallback)."""
    return prefer_stored(chains, open_store(get_settings().storage).exists)
