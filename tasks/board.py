"""Per-scene state of a render, fed by :mod:`tasks.events`: the Prefect table artifact and the
CLI's progress both read it.

States: planned, reused, generating, retrying (n), falling back to X, done, failed. Each row
also keeps its trail (every state it went through), so the table's last version still shows the
retries and fallbacks that happened.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from tasks import events


@dataclass
class Row:
    scene: str
    take: int
    engine: str | None
    clip_seconds: float = 0.0
    state: str = "planned"
    attempts: int = 0
    started: float | None = None           # time.monotonic() when the current engine call began
    seconds: float = 0.0                   # engine seconds spent so far
    trail: list[str] = field(default_factory=list)

    def move(self, state: str) -> None:
        self.state = state
        if not self.trail or self.trail[-1] != state:
            self.trail.append(state)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "reused", "failed")


class Board:
    """Rows per (scene, take), updated from render events (thread-safe)."""

    def __init__(self, render_id: str | None = None):
        self.render_id = render_id
        self.rows: dict[tuple[str, int], Row] = {}
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def _row(self, data: dict) -> Row:
        key = (data["scene"], int(data.get("take", 1)))
        if key not in self.rows:
            self.rows[key] = Row(scene=key[0], take=key[1], engine=data.get("engine"))
        return self.rows[key]

    def apply(self, kind: str, data: dict) -> bool:
        """Update from one event; True when it is worth showing at once (retry, fallback, failure)."""
        if self.render_id and data.get("render_id", self.render_id) != self.render_id:
            return False
        with self.lock:
            if kind == "plan" and "scenes" in data:
                if self.render_id is None:
                    self.render_id = data.get("render_id")
                for item in data["scenes"]:
                    row = self._row(item)
                    row.clip_seconds = float(item.get("clip_seconds") or 0.0)
                    row.move("planned")
                return False
            if kind not in ("clip_start", "clip_failed", "fallback", "clip", "clip_lost") or "scene" not in data:
                return False
            row = self._row(data)
            now = time.monotonic()
            if kind == "clip_start":
                row.engine, row.attempts, row.started = data.get("engine"), row.attempts + 1, now
                attempt = int(data.get("attempt", 1))
                row.move("generating" if attempt <= 1 else f"retrying ({attempt - 1})")
                return attempt > 1
            if row.started is not None:
                row.seconds += now - row.started
                row.started = None
            if kind == "clip_failed":
                return False
            if kind == "fallback":
                row.move(f"falling back to {data.get('to')}")
                row.engine = data.get("to")
                return True
            if kind == "clip_lost":
                row.move("failed")
                return True
            row.engine = data.get("engine", row.engine)
            row.move("reused" if data.get("cached") else "done")
            return False

    def table(self) -> list[dict]:
        """Rows for a Prefect table artifact."""
        with self.lock:
            rows = list(self.rows.values())
            now = time.monotonic()
            return [{
                "scene": r.scene, "take": r.take, "state": r.state, "engine": r.engine or "footage",
                "attempts": r.attempts,
                "seconds": round(r.seconds + (now - r.started if r.started else 0.0), 1),
                "history": " → ".join(r.trail),
            } for r in rows]

    def eta(self, speeds: dict[str, float], parallel: int = 4) -> float | None:
        """Seconds left, from engine-seconds per clip-second (the catalog's history); None if unknown."""
        with self.lock:
            left, now = 0.0, time.monotonic()
            for r in self.rows.values():
                if r.finished:
                    continue
                expected = r.clip_seconds * speeds.get(r.engine or "", 0.0)
                spent = now - r.started if r.started else 0.0
                left += max(0.0, expected - spent)
        return left / max(1, parallel)

    @property
    def generated(self) -> list[str]:
        with self.lock:
            return list(dict.fromkeys(r.scene for r in self.rows.values() if r.state == "done" and r.attempts))


class TableFeed:
    """Keeps a Prefect table artifact (fixed key: its versions are the history) in step with a Board.

    Updates are throttled to one per ``interval`` seconds, except retries, fallbacks and failures,
    which are published at once; :meth:`close` publishes the last state.
    """

    def __init__(self, key: str, render_id: str, description: str, flow_run_id=None, interval: float = 1.0,
                 publish: Callable[[str, list[dict], str, object], None] | None = None):
        self.board = Board(render_id)
        self.flow_run_id = flow_run_id
        self.key, self.description, self.interval = key, description, interval
        self.publish = publish
        self.last = 0.0
        self.dirty = False
        self._send = threading.Lock()
        self.unsubscribe = events.subscribe(self.on_event)

    def on_event(self, kind: str, data: dict) -> None:
        urgent = self.board.apply(kind, data)
        self.dirty = True
        if urgent or kind == "plan" or time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        with self._send:
            if not self.dirty:
                return
            self.dirty = False
            self.last = time.monotonic()
            try:
                (self.publish or _publish_table)(self.key, self.board.table(), self.description, self.flow_run_id)
            except Exception:  # noqa: BLE001 - the table is a view; a failed update must not fail a render
                self.dirty = True

    def close(self) -> None:
        self.unsubscribe()
        self.dirty = True
        self.flush()


def _publish_table(key: str, rows: list[dict], description: str, flow_run_id) -> None:
    from prefect.artifacts import TableArtifact

    TableArtifact(key=key, table=rows, description=description, flow_run_id=flow_run_id).create()


def plan_rows(chains: list) -> list[dict]:
    """The ``scenes`` of a render's ``plan`` event: one row per (scene, take) to produce."""
    return [{"scene": c[0].scene_id, "take": c[0].take, "engine": c[0].engine, "clip_seconds": c[0].duration or 0.0}
            for c in chains]


class NoTable:
    """What :func:`scene_table` gives outside a Prefect run: nowhere to publish, nothing to keep
    (the CLI's view keeps its own board)."""

    def close(self) -> None:
        pass


def scene_table(slug: str, render_id: str) -> TableFeed | NoTable:
    """Start the render's per-scene table artifact (key ``render-<slug>-scenes``) in a Prefect run."""
    from tasks.step import in_prefect_run

    if not in_prefect_run():
        return NoTable()
    key = f"render-{slug}-scenes".replace("_", "-")
    description = f"Scenes of {slug}, render {render_id}: planned, reused, generating, retrying, falling back, done"
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return TableFeed(key, render_id, description, context.flow_run.id if context and context.flow_run else None)
