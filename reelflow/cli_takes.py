"""``reelflow takes``, ``pick`` and ``redo``, and the terminal side of ``render --review``.

Registered on :data:`reelflow.cli.app`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from reelflow.cli import ProjectArg, _load_or_exit, app, err, out


def _chains(spec, scenes: list[str] | None = None):
    """The take-1 chains a render plans (speech audio where a family needs it) and the store."""
    from reelflow.settings import get_settings
    from storage import open_store
    from tasks.plan import plan_project
    from tasks.spoken import speech_folder, with_speech

    folder = speech_folder()
    chains = [[with_speech(p, folder) for p in chain] for chain in plan_project(spec, None, scenes)]
    return chains, open_store(get_settings().storage)


def _book(spec):
    """Every scene's takes as the next render sees them (no engine call; speech audio if a family needs it)."""
    from tasks.takes import book_takes

    chains, store = _chains(spec)
    return book_takes(chains, spec, store.exists), store


@app.command()
def takes(
    project: ProjectArg,
    scene: Annotated[Optional[str], typer.Argument(help="Only this scene id.")] = None,
) -> None:
    """List each scene's takes: number, seed, engine, duration, key, stored or not, picked."""
    from rich.table import Table

    from tasks.takes import stored_plan

    spec = _load_or_exit(project)
    ids = [s.id for s in spec.scenes]
    if scene is not None and scene not in ids:
        err.print(f"unknown scene {scene!r}; scenes are: {', '.join(ids)}", highlight=False)
        raise typer.Exit(2)
    book, store = _book(spec)
    table = Table(title=f"takes of {spec.slug}")
    for column in ("scene", "take", "seed", "engine", "s", "key", "stored", "picked"):
        table.add_column(column, overflow="fold" if column == "key" else None)
    rows = []
    for chain in book.chains:
        plan = chain[0]
        found = stored_plan(chain, plan.take, store.exists) or (plan if store.exists(plan.key) else None)
        rows.append((found or plan, found is not None))
    rows += [(p, True) for p in book.stored]
    for plan, stored in sorted(rows, key=lambda r: (r[0].index, r[0].take)):
        if scene is not None and plan.scene_id != scene:
            continue
        picked = book.picked.get(plan.scene_id, 1) == plan.take
        table.add_row(plan.scene_id, str(plan.take), str(plan.request.seed) if plan.request else "-",
                      plan.engine or "footage", f"{plan.duration:g}" if plan.duration else "-", plan.key,
                      "yes" if stored else "not yet", "*" if picked else "")
    out.print(table)


@app.command()
def pick(
    project: ProjectArg,
    scene: Annotated[str, typer.Argument(help="Scene id.")],
    take: Annotated[int, typer.Argument(help="Take number the cut uses (1 = the first).")],
) -> None:
    """Choose the take a scene uses in the cut (written to picks.yaml beside project.yaml)."""
    from projects.picks import save_picks
    from projects.schema import MAX_TAKE_NUMBER

    spec = _load_or_exit(project)
    found = next((s for s in spec.scenes if s.id == scene), None)
    if found is None:
        err.print(f"unknown scene {scene!r}; scenes are: {', '.join(s.id for s in spec.scenes)}", highlight=False)
        raise typer.Exit(2)
    if not 1 <= take <= MAX_TAKE_NUMBER or (found.footage and take != 1):
        err.print(f"scene {scene!r}: take must be "
                  f"{'1 (footage has one take)' if found.footage else f'from 1 to {MAX_TAKE_NUMBER}'}", highlight=False)
        raise typer.Exit(2)
    path = save_picks(spec.root, {scene: take})
    out.print(f"{path}: {scene}: take {take}{_stored_note(spec, scene, take)}", highlight=False)


def _stored_note(spec, scene: str, take: int) -> str:
    """Whether the picked take is in the store (the next render makes it if not), or "" if the
    store cannot say: the pick is a line in picks.yaml, written either way."""
    from reelflow.errors import ReelflowError
    from tasks.takes import stored_plan

    try:
        [chain], store = _chains(spec, [scene])          # that scene alone: not every scene's takes
        if stored_plan(chain, take, store.exists) is not None:
            return " (stored: the next render makes no engine call for it)"
    except (ReelflowError, OSError):
        return ""
    return " (not stored yet: the next render makes it, one engine call)"


@app.command()
def redo(
    ctx: typer.Context,
    project: ProjectArg,
    scene: Annotated[list[str], typer.Argument(help="Scene id(s) to give a new take.")],
    engine: Annotated[Optional[str], typer.Option(help="Engine for every scene (overrides project.yaml).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Also copy the final files into this folder.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the render's logs.")] = False,
) -> None:
    """Make one new take (a fresh seed) of each scene, pick it, and render the cut."""
    from reelflow.cli import render

    render(ctx, project, engine=engine, scene=None, out_dir=out_dir, force=False, verbose=verbose, takes=None,
           redo=scene, review=False)


def _answer_line(deadline: float) -> str | None:
    """A line typed on stdin; '' when stdin is closed, None when nobody typed one by ``deadline``
    (a stdin that is not a file, as in tests, is read as it is)."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdin.readline()
    import select

    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
        return None
    return sys.stdin.readline()


def terminal_reviewer(scenes) -> object:
    """Ask on stdin, per scene: a take number, ``r`` to redo, or Enter to keep the pick.

    Returns None when stdin is closed before any answer (nobody can answer:
    REELFLOW_REVIEW_ON_TIMEOUT decides); closed later, the answers given stand.
    """
    from tasks.review import Review

    if sys.stdin is None or sys.stdin.closed:
        return None
    from reelflow.settings import get_settings

    deadline = time.monotonic() + get_settings().review_timeout     # a terminal nobody watches
    picks, redo = {}, []
    for s in scenes:
        numbers = [t.take for t in s.takes]
        listing = ", ".join(f"{t.take} (seed {t.seed}, {t.engine})" for t in s.takes)
        err.print(f"[bold]{s.scene_id}[/bold] {s.speech or s.action or ''}", highlight=False)
        while True:
            err.print(f"  takes: {listing}. Take [{s.picked}], or r to redo: ", end="", highlight=False)
            line = _answer_line(deadline)
            if not line:                  # closed, or no answer in time: the answers given so far stand
                err.print("" if line == "" else "(no answer in REELFLOW_REVIEW_TIMEOUT)", highlight=False)
                return Review(picks=picks, redo=redo) if picks or redo else None
            text = line.strip().lower()
            if text in ("", str(s.picked)):
                picks[s.scene_id] = s.picked
            elif text in ("r", "redo"):
                redo.append(s.scene_id)
            elif text.isdigit() and int(text) in numbers:
                picks[s.scene_id] = int(text)
            else:
                err.print(f"  {text!r}: answer one of {', '.join(map(str, numbers))} or r", highlight=False)
                continue
            break
    return Review(picks=picks, redo=redo)
