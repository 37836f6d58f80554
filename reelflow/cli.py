"""The ``reelflow`` command line: render, validate, prompts, history, cost.

Every command's ``ReelflowError`` reaches the user the same way (``_Commands.invoke``): one
line on stderr, ``hint: ...`` when the error carries one, and the error's exit code
(2 bad input, 1 failed render, 3 infrastructure unreachable); a traceback only with ``-v``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from reelflow.errors import InputError, ReelflowError, RenderError, one_line
from reelflow.out_folder import check_out, copy_out

out = Console(soft_wrap=True, emoji=False)      # ":a:" in a message is text (an ffmpeg map), not an emoji
err = Console(stderr=True, soft_wrap=True, emoji=False)
VERBOSE = "reelflow.verbose"


def report(exc: BaseException, verbose: bool = False) -> None:
    """Print ``exc`` for the user: one line (+ hint); the traceback too with ``verbose``.

    An error outside reelflow's tree (a bug, or a library's failure nothing foresaw) is one line
    too, named as the internal error it is, with how to get its traceback for a report."""
    import traceback

    from reelflow.secrets import redact

    if verbose:
        err.print(redact("".join(traceback.format_exception(exc))).rstrip(), markup=False, highlight=False)
    line = one_line(redact(exc))
    if not isinstance(exc, ReelflowError):
        line = f"internal error: {type(exc).__name__}: {line}"
        hint = None if verbose else "this is a reelflow bug; run the command again with -v for the traceback to report"
    else:
        line = f"render failed: {line}" if isinstance(exc, RenderError) else line
        hint = exc.hint and one_line(redact(exc.hint))
    err.print(line, markup=False, highlight=False)
    if hint:
        err.print(f"hint: {hint}", markup=False, highlight=False)


class _Commands(TyperGroup):
    """Runs a command; its ReelflowError becomes one line and the error's exit code. Any other
    error is one line too (exit 1), its traceback only with ``-v``."""

    def invoke(self, ctx):
        from typer.exceptions import TyperException

        try:
            return super().invoke(ctx)
        except ReelflowError as exc:
            report(exc, ctx.meta.get(VERBOSE, False))
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except Exception as exc:  # noqa: BLE001 - the documented promise: no traceback without -v
            report(exc, ctx.meta.get(VERBOSE, False))
            raise typer.Exit(1) from None
        except BaseException as exc:     # Ctrl-C, SIGTERM (Prefect's TerminationSignal in a flow run)
            import signal

            from reelflow.process import stop_signal

            signum = stop_signal(exc)
            if signum is None:
                raise
            how = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
            err.print(f"interrupted{how}: clips that landed are stored (the next render reuses them); "
                      "`reelflow history` shows what was made", highlight=False)
            raise typer.Exit(128 + signum) from None


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True,
                  help="Render written productions into stitched videos.")


@app.callback()
def _options(ctx: typer.Context,
             verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Tracebacks and the render's logs (Prefect's too in a flow run).")] = False) -> None:
    """Render written productions into stitched videos."""
    ctx.meta[VERBOSE] = verbose

ProjectArg = Annotated[Path, typer.Argument(help="Production folder (projects/<slug>) or its project.yaml.")]


def _quiet_prefect(verbose: bool) -> None:
    """Keep Prefect's own console logs out of the CLI's output unless asked for."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")


def _check_engine(engine: str | None) -> None:
    """``--engine`` must name a registered engine (bad input, before any work)."""
    import engines

    if engine is not None and engine not in engines.names():
        raise InputError(f"--engine: unknown engine {engine!r}; known engines: {', '.join(engines.names())}")


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
    from engines.settings import engine_settings
    from tasks.plan import plan_project

    spec = _load_or_exit(project)
    engine_settings()                    # the engines' REELFLOW_* settings too (one line, exit 2)
    chains = plan_project(spec)
    for chain in chains:
        for warning in chain[0].warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False)
    out.print(f"{spec.slug}: {len(spec.scenes)} scenes OK", highlight=False)


@app.command()
def prompts(project: ProjectArg, engine: Annotated[Optional[str], typer.Option(help="Render for this engine.")] = None) -> None:
    """Print every scene's rendered prompt."""
    from tasks.plan import plan_project

    _check_engine(engine)
    spec = _load_or_exit(project)
    chains = plan_project(spec, engine)
    for chain in chains:
        plan = chain[0]
        text = plan.request.prompt if plan.request else f"(footage: {plan.footage})"
        out.print(f"[bold]{plan.scene_id}[/bold] [dim]({plan.engine or 'footage'})[/dim]")
        out.print(text, markup=False, highlight=False)
        for warning in plan.warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False)


def _finished_render(spec, engine: str | None, scenes: list[str] | None):
    """The finished render of this exact production, found without importing Prefect (or None)."""
    from reelflow.errors import ReelflowError
    from reelflow.settings import get_settings
    from storage import open_store
    from tasks.render_index import find_finished

    settings = get_settings()
    store = open_store(settings.storage)     # a store that cannot be opened is the render's error too, said once
    try:
        found = find_finished(spec, engine, scenes, store, settings.max_words_per_second)
    except ReelflowError:
        return None          # the full render reports it, with the right exit code
    return found


def _report(result, out_dir: Path | None, generated: str | None = None, said: list[str] | None = None) -> None:
    for warning in [*(said or []), *result.warnings]:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    err.print(f"{result.slug}: {result.duration:.2f} s, {result.generated} clip(s) generated, "
              f"{result.reused} reused; render {result.render_id}", highlight=False)
    if generated:
        err.print(generated, highlight=False)
    final = copy_out(result, out_dir) if out_dir else result.video
    print(final)


@app.command()
def render(
    ctx: typer.Context,
    project: ProjectArg,
    engine: Annotated[Optional[str], typer.Option(help="Engine for every scene (overrides project.yaml).")] = None,
    scene: Annotated[Optional[list[str]], typer.Option("--scene", help="Render only this scene id (repeatable).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Also copy the final files into this folder.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Render again even if this exact render is finished.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the render's logs (Prefect's in a flow run), and the per-scene view even off a terminal.")] = False,
    takes: Annotated[Optional[int], typer.Option(min=1, max=16, help="Takes per generated scene (overrides project.yaml).")] = None,
    redo: Annotated[Optional[list[str]], typer.Option("--redo", help="Give this scene a new take and pick it (repeatable).")] = None,
    review: Annotated[bool, typer.Option("--review", help="Pick takes (or redo) in the terminal before the cut.")] = False,
    prefect: Annotated[Optional[bool], typer.Option(
        "--prefect/--local", help="Run as a Prefect flow run (the UI shows it) or in this process without "
                                  "Prefect; default: Prefect when PREFECT_API_URL is configured "
                                  "(REELFLOW_ORCHESTRATOR).")] = None,
) -> None:
    """Render a production; the last line printed is the final video's path or URL.

    An unchanged production (same clips, output profile and finishing options) is found in
    the store before anything starts: its finished video is printed at once.
    """
    verbose = ctx.meta[VERBOSE] = verbose or ctx.meta.get(VERBOSE, False)
    _check_engine(engine)
    from reelflow.orchestrator import check_clip_workers, uses_prefect

    use_prefect = prefect if prefect is not None else uses_prefect()
    if use_prefect:
        check_clip_workers()
    spec = _load_or_exit(project)
    check_out(out_dir)
    shortcut = not (force or review or redo or takes)      # takes/redo/review: the flow decides
    if shortcut and (finished := _finished_render(spec, engine, scene or None)) is not None:
        err.print(f"unchanged since render {finished.render_id} (--force renders it again)", highlight=False)
        _report(finished, out_dir)
        return
    from reelflow.cli_progress import RenderProgress

    progress = RenderProgress(err, always=verbose)
    options = dict(engine=engine, scenes=scene or None, force=force, takes=takes, redo=redo or None, review=review)
    if use_prefect:
        _check_plan(spec, engine, scene or None, takes, redo or None)
        _quiet_prefect(verbose)
        from flows.render import render_project
        from reelflow.prefect_api import prefect_boundary, temporary_server

        with prefect_boundary(), temporary_server(), progress:
            result = _render_with_review(render_project, review, progress, str(project), **options)
    else:
        from flows.local import render_local

        _local_logging(verbose)
        with progress:
            result = _render_with_review(render_local, review, progress, str(project), spec=spec, **options)
    _report(result, out_dir, progress.summary(), progress.warnings)


def _check_plan(spec, engine: str | None, scenes: list[str] | None, takes: int | None, redo: list[str] | None) -> None:
    """What the flow's first steps would refuse (a mistyped --scene or --redo), refused before a
    Prefect server is started for it. Pure: the store is not read."""
    from tasks.plan import plan_project
    from tasks.takes import book_takes

    book_takes(plan_project(spec, engine, scenes), spec, lambda key: False, takes, redo)


def _local_logging(verbose: bool) -> None:
    """The in-process render logs to the ``reelflow`` logger: on stderr with -v, else nowhere
    (the per-scene view and the final lines say what happened)."""
    import logging

    logger = logging.getLogger("reelflow")
    logger.propagate = False
    for old in [h for h in logger.handlers if getattr(h, "reelflow_cli", False)]:
        logger.removeHandler(old)              # a second render in this process sets its own
    handler = logging.StreamHandler() if verbose else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler.reelflow_cli = True
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _render_with_review(run, terminal: bool, progress, *args, **kwargs):
    """Run the render; with ``terminal`` the terminal answers the review (the progress display paused)."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        if terminal:
            from reelflow.cli_takes import terminal_reviewer
            from tasks.review import reviewer

            def ask(scenes):
                progress.stop()
                try:
                    return terminal_reviewer(scenes)
                finally:
                    progress.start()

            stack.enter_context(reviewer(ask))
        return run(*args, **kwargs)


from reelflow import cli_review  # noqa: E402,F401  (registers storyboard and serve)
from reelflow import cli_worker  # noqa: E402,F401  (registers worker)
from reelflow import cli_takes  # noqa: E402,F401  (registers takes, pick and redo)
from reelflow import cli_history  # noqa: E402,F401  (registers history and cost)


def main() -> None:
    """The ``reelflow`` command: :data:`app`, then an exit without the interpreter's teardown.

    Tearing down a render's modules (SQLAlchemy, PyAV, Pillow, numpy, ...) and collecting
    their objects took about 0.25 s after the work was done, a tenth of an edit's re-render.
    Everything an exit must do still happens: other threads are waited for, atexit handlers
    (temporary folders, executors) run, logging and the standard streams are flushed; then the
    process ends with the command's exit status."""
    from reelflow.process import stop_on_sigterm

    stop_on_sigterm()             # docker stop, a CI cancel: stopped like Ctrl-C (exit 143)
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    finish_process(0 if code is None else int(code))


def finish_process(code: int) -> None:  # pragma: no cover - ends the process
    import atexit
    import logging
    import threading

    # What the interpreter's own exit does first: the threading exit hooks (idle workers of thread
    # pools a library left open, gradio_client's, are told to stop), then every other thread joined.
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    else:
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
