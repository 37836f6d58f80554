"""The render's progress in a terminal: one line per scene (and take) with its state, and an ETA
learned from the catalog (engine-seconds per clip-second of past attempts)."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tasks import events
from tasks.board import Board

STYLES = {"planned": "dim", "reused": "cyan", "generating": "yellow", "done": "green", "failed": "bold red"}
SHOWN = {"planned": "queued"}


def engine_speeds(engines: set[str]) -> dict[str, float]:
    """Engine-seconds per clip-second: the catalog's history, else the ``speed`` setting."""
    from reelflow.settings import get_settings
    from storage.catalog import open_catalog

    settings = get_settings()
    if not engines:
        return {}
    try:
        catalog = open_catalog(settings.database_url)
    except Exception:  # noqa: BLE001 - no catalog: settings only
        catalog = None
    return {e: (catalog.engine_speed(e) if catalog else None) or settings.speed.get(e, 1.0) for e in engines}


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class RenderProgress:
    """A live per-scene view fed by render events; ``stop``/``start`` around terminal prompts.

    Off a terminal (a pipe, a log file, a test) nothing is drawn unless ``always`` is set: a
    failed render's stderr is then its one error line, and the closing summary still names
    the scenes that were generated.
    """

    def __init__(self, console: Console, always: bool = False):
        self.console = console
        self.board = Board()
        self.speeds: dict[str, float] = {}
        self.stage = ""
        self.normalized: set = set()      # scenes (and cards) normalised: a clip normalised ahead is found again at the cut
        self.warnings: list[str] = []        # said during the render (``events.emit("warning", text=...)``)
        self.shown = always or console.is_terminal
        self.live = Live(console=console, refresh_per_second=4, transient=False, get_renderable=self.render)
        self.unsubscribe = lambda: None

    def on_event(self, kind: str, data: dict) -> None:
        if kind == "plan":
            self.board = Board(data.get("render_id"))
            if self.shown:                       # for the time left; nothing reads it off screen
                self.speeds = engine_speeds({s["engine"] for s in data.get("scenes", []) if s.get("engine")})
        elif kind == "normalized":
            self.normalized.add(data.get("scene"))
        elif kind == "stitch":
            self.stage = f"stitching: {data.get('stage')}"
        elif kind == "warning":
            self.warnings.append(str(data.get("text")))
        elif kind == "waiting_for_worker":       # said even off a terminal: a render that seems stuck
            self.console.print(str(data.get("message")), markup=False, highlight=False)
        self.board.apply(kind, data)

    def render(self):
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("scene", "take", "state", "engine", "tries", "s"):
            table.add_column(column)
        rows = self.board.table()
        for r in rows:
            state = r["state"]
            style = STYLES.get(state, "magenta" if state.startswith(("retry", "falling")) else "")
            shown = SHOWN.get(state, state.replace("falling back to ", "fallback → "))
            table.add_row(r["scene"], str(r["take"]), Text(shown, style=style), r["engine"], str(r["attempts"] or ""),
                          f"{r['seconds']:.1f}" if r["attempts"] else "")
        finished = sum(r["state"] in ("done", "reused", "failed") for r in rows)
        line = f"clips {finished}/{len(rows)}"
        if rows and finished < len(rows):
            eta = self.board.eta(self.speeds)
            line += f" · ETA ~{clock(eta)}" if eta else ""
        if self.normalized:
            line += f" · normalised {len(self.normalized)}"
        if self.stage:
            line += f" · {self.stage}"
        line += f" · {clock(time.monotonic() - self.board.started)} elapsed"
        return Group(table, Text(line, style="bold"))

    def start(self) -> None:
        if self.shown:
            self.live.start()

    def stop(self) -> None:
        if not self.shown:
            return
        self.live.stop()
        if not self.live.console.is_terminal:   # rich ends the last frame with a newline only on a terminal
            self.live.console.line()

    def __enter__(self) -> "RenderProgress":
        self.unsubscribe = events.subscribe(self.on_event)
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.unsubscribe()

    def summary(self) -> str | None:
        """``generated: s1 (take 2), s3`` — the scenes an engine made clips for; None if none."""
        made = [r for r in self.board.table() if r["state"] == "done" and r["attempts"]]
        if not made:
            return None
        return "generated: " + ", ".join(f"{r['scene']} (take {r['take']})" if r["take"] > 1 else r["scene"] for r in made)
