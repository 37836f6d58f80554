"""The ``reelflow`` command line: render, validate, prompts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Render written productions into stitched videos.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ProjectArg = Annotated[Path, typer.Argument(help="Production folder (projects/<slug>) or its project.yaml.")]


def _quiet_prefect(verbose: bool) -> None:
    """Keep Prefect's own console logs out of the CLI's output unless asked for."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")


def _load_or_exit(project: Path):
    from projects import check_project

    spec, problems = check_project(project)
    if problems:
        for problem in problems:
            err.print(str(problem), markup=False, highlight=False)
        raise typer.Exit(2)
    return spec


@app.command()
def validate(project: ProjectArg) -> None:
    """Check a production; print every problem (file:line: field: message) and exit 2 if any."""
    from prompts import PromptError
    from tasks.plan import PlanError, plan_project

    spec = _load_or_exit(project)
    try:
        chains = plan_project(spec)
    except (PromptError, PlanError) as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    for chain in chains:
        for warning in chain[0].warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False)
    out.print(f"{spec.slug}: {len(spec.scenes)} scenes OK", highlight=False)


@app.command()
def prompts(project: ProjectArg, engine: Annotated[Optional[str], typer.Option(help="Render for this engine.")] = None) -> None:
    """Print every scene's rendered prompt."""
    from prompts import PromptError
    from tasks.plan import PlanError, plan_project

    spec = _load_or_exit(project)
    try:
        chains = plan_project(spec, engine)
    except (PromptError, PlanError) as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    for chain in chains:
        plan = chain[0]
        text = plan.request.prompt if plan.request else f"(footage: {plan.footage})"
        out.print(f"[bold]{plan.scene_id}[/bold] [dim]({plan.engine or 'footage'})[/dim]")
        out.print(text, markup=False, highlight=False)
        for warning in plan.warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False)


def _copy_out(result, dest: Path) -> Path:
    from storage import open_store
    from reelflow.settings import get_settings

    store = open_store(get_settings().storage)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / "final.mp4"
    keys = [result.video_key]
    base = result.video_key.rsplit("/", 1)[0]
    keys += [k for k in store.list(base) if k != result.video_key]
    for key in keys:
        target = dest / key.rsplit("/", 1)[-1]
        tmp = target.with_name(f".{target.name}.part")
        shutil.copyfile(store.fetch(key, dest), tmp)
        os.replace(tmp, target)
    return final


@app.command()
def render(
    project: ProjectArg,
    engine: Annotated[Optional[str], typer.Option(help="Engine for every scene (overrides project.yaml).")] = None,
    scene: Annotated[Optional[list[str]], typer.Option("--scene", help="Render only this scene id (repeatable).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Also copy the final files into this folder.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Render a production; the last line printed is the final video's path or URL."""
    _quiet_prefect(verbose)
    _load_or_exit(project)
    from engines import EngineError
    from flows.render import RenderFailed, render_project
    from prompts import PromptError
    from tasks import events
    from tasks.plan import PlanError

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=False)
    bars: dict[str, int] = {}

    def on_event(kind: str, data: dict) -> None:
        if kind == "plan":
            bars["clips"] = progress.add_task("clips", total=data["total"])
            bars["normalize"] = progress.add_task("normalize", total=data["total"])
        elif kind == "clip" and "clips" in bars:
            progress.advance(bars["clips"])
        elif kind == "normalized" and "normalize" in bars:
            progress.advance(bars["normalize"])
        elif kind == "stitch":
            progress.console.print(f"stitching: {data['stage']}", highlight=False)

    unsubscribe = events.subscribe(on_event)
    try:
        with progress:
            result = render_project(str(project), engine=engine, scenes=scene or None)
    except (EngineError, RenderFailed, PromptError, PlanError) as exc:
        err.print(f"render failed: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    finally:
        unsubscribe()
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    err.print(f"{result.slug}: {result.duration:.2f} s, {result.generated} clip(s) generated, "
              f"{result.reused} reused; render {result.render_id}", highlight=False)
    final = _copy_out(result, out_dir) if out_dir else result.video
    print(final)


def main() -> None:  # pragma: no cover
    app()
