"""The production spec (``project.yaml``) and its loader; one folder per production."""

from projects.loader import Problem, ProjectError, check_project, load_project, project_dir_of
from projects.schema import Character, EngineSpec, Output, Project, Scene

__all__ = [
    "Character",
    "EngineSpec",
    "Output",
    "Problem",
    "Project",
    "ProjectError",
    "Scene",
    "check_project",
    "load_project",
    "project_dir_of",
]
