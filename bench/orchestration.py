"""What orchestration costs: the whole render (in-process, as the CLI runs it by default, and as
the Prefect flow, as `reelflow render --prefect` runs it: on PREFECT_API_URL if set, else on the
CLI's temporary server) against a plain thread pool doing the same work, fan-out under an engine
limit, and the orchestrator's peak memory.

    python -m bench.orchestration overhead --clips 200
    python -m bench.orchestration fanout --clips 24 --limit 4 --latency 2
    python -m bench.orchestration memory --scenes 12 48 120
    ... --orchestrator local|prefect|both   (default both)

Clips come from a ``noop`` engine that copies one premade 0.5 s clip (after ``--latency``
seconds), so what is measured is orchestration, normalising and stitching: the same functions
(produce_clip, normalize_stored, stitch_render) run in both arms. Each arm gets its own store.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SIZE = dict(width=64, height=96, fps=12)


def make_source(path: Path) -> Path:
    from media import ffmpeg

    if not path.is_file():
        ffmpeg.run(["-f", "lavfi", "-i", "testsrc2=s=64x96:r=12:d=0.5", "-f", "lavfi", "-i", "sine=r=48000:d=0.5",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(path)])
    return path


class NoopEngine:
    """Hands back a copy of one premade clip after ``latency`` seconds."""

    def __init__(self, source: Path, latency: float = 0.0):
        self.name, self.model, self.source, self.latency = "noop", None, source, latency

    def generate(self, request, out_dir: Path):
        from engines import ClipResult

        if self.latency:
            time.sleep(self.latency)
        out = Path(out_dir) / "clip.mp4"
        shutil.copyfile(self.source, out)
        return ClipResult(path=str(out), engine="noop", seconds=self.latency)


def register_noop(source: Path, latency: float, limit: int | None) -> None:
    from engines import registry

    engine = NoopEngine(source, latency)
    registry.register("noop", lambda model=None, params=None: engine, registry.EngineInfo(concurrency=limit))


def production(folder: Path, scenes: int, tag: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"title": "Orchestration", "output": {**SIZE, "subtitles": "srt"}, "engine": {"name": "noop"},
            "scenes": [{"id": f"s{i:04d}", "action": f"scene {i} {tag}", "speech": f"Line{i}.", "duration": 0.5}
                       for i in range(scenes)]}
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def use_state(state: Path) -> None:
    from reelflow.settings import reload_settings

    os.environ.update(REELFLOW_STORAGE=str(state / "store"), REELFLOW_WORK_DIR=str(state / "work"),
                      REELFLOW_DATABASE_URL=f"sqlite:///{state / 'catalog.db'}")
    reload_settings()


def plain_pool(folder: Path, state: Path) -> tuple[float, float]:
    """The same work in a ThreadPoolExecutor: (whole seconds, stitch seconds)."""
    from projects import load_project
    from storage import open_store
    from tasks.clip import produce_clip
    from tasks.limits import cpu_slot, engine_slot, pool_size
    from tasks.plan import plan_project
    from tasks.stitch import normalize_stored, stitch_render

    use_state(state)
    started = time.perf_counter()
    spec = load_project(folder)
    store, work = open_store(), state / "work"
    plans = [chain[0] for chain in plan_project(spec)]

    def one(plan):
        ref = produce_clip(plan, store, work / "clips", slot=engine_slot)
        with cpu_slot():
            return normalize_stored(ref, spec.output, store, work / "normalize")

    with ThreadPoolExecutor(max_workers=pool_size()) as pool:
        normalized = list(pool.map(one, plans))
    stitch_started = time.perf_counter()
    stitch_render(normalized, spec.output, store, work / "stitch", "renders/pool/1", spec.edit())
    end = time.perf_counter()
    return end - started, end - stitch_started


_SERVER = contextlib.ExitStack()


def prefect_server() -> None:
    """The Prefect API the flow arm talks to, as `reelflow render --prefect` gets it: PREFECT_API_URL
    if set, else the CLI's temporary server (started once, for the whole benchmark)."""
    if not _SERVER._exit_callbacks:
        from reelflow.prefect_api import temporary_server

        _SERVER.enter_context(temporary_server())


def through_prefect(folder: Path, state: Path) -> float:
    from flows.render import render_project

    prefect_server()
    use_state(state)
    started = time.perf_counter()
    render_project(str(folder), force=True)
    return time.perf_counter() - started


def in_process(folder: Path, state: Path) -> float:
    from flows.local import render_local

    use_state(state)
    started = time.perf_counter()
    render_local(str(folder), force=True)
    return time.perf_counter() - started


def prefect_floor(clips: int) -> float:
    """Prefect's own cost per task run on this machine, in ms: a flow mapping a task that does
    nothing over ``clips`` items (no cache, no persisted result, as our steps), against a plain
    pool of the same size doing nothing. What the flow's per-clip figure cannot go below."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    from tasks.limits import pool_size

    prefect_server()

    @task(cache_policy=NO_CACHE, persist_result=False)
    def nothing(i: int) -> int:
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=pool_size()))
    def bare(n: int) -> list[int]:
        return [f.result() for f in nothing.map(range(n))]

    bare(2)
    started = time.perf_counter()
    bare(clips)
    took = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=pool_size()) as pool:
        list(pool.map(lambda i: i, range(clips)))
    return (took - (time.perf_counter() - started)) / clips * 1000


ARMS = {"local": ("render_local", in_process), "prefect": ("render_project", through_prefect)}


def arms(args) -> list[str]:
    return ["local", "prefect"] if args.orchestrator == "both" else [args.orchestrator]


def warm_up(root: Path, source: Path, which: list[str]) -> None:
    """Import everything and start Prefect's server once (not measured)."""
    register_noop(source, 0.0, None)
    for arm in which:
        ARMS[arm][1](production(root / f"warm-{arm}", 2, "warm"), root / f"warm-state-{arm}")


def overhead(args, root: Path, source: Path) -> None:
    which = arms(args)
    warm_up(root, source, which)
    register_noop(source, 0.0, None)
    rows: dict[str, list[tuple[float, float]]] = {arm: [] for arm in which}
    for rep in range(args.repeats):
        folder = production(root / f"over-{rep}", args.clips, f"rep{rep}")
        pool, _ = plain_pool(folder, root / f"pool-{rep}")
        for arm in which:
            name, run = ARMS[arm]
            took = run(folder, root / f"{arm}-{rep}")
            rows[arm].append((pool, took))
            print(f"repeat {rep}: plain pool {pool:.2f} s, {name} {took:.2f} s, "
                  f"{(took - pool) / args.clips * 1000:+.1f} ms per clip")
    if "prefect" in which:
        print(f"Prefect's own cost, a flow of {args.clips} tasks that do nothing: "
              f"{prefect_floor(args.clips):+.1f} ms per task run")
    print()
    for arm in which:
        pool, took = min(r[0] for r in rows[arm]), min(r[1] for r in rows[arm])
        print(f"| {args.clips} no-op clips, whole render | plain thread pool {pool:.2f} s | {ARMS[arm][0]} "
              f"{took:.2f} s | {(took - pool) / args.clips * 1000:+.1f} ms per clip (target ≤ 10) |")


def fanout(args, root: Path, source: Path) -> None:
    which = arms(args)
    warm_up(root, source, which)
    register_noop(source, args.latency, args.limit)
    folder = production(root / "fan", args.clips, "fan")
    pool, stitch = plain_pool(folder, root / "fan-pool")
    ideal = math.ceil(args.clips / args.limit) * args.latency
    for arm in which:
        name, run = ARMS[arm]
        took = run(folder, root / f"fan-{arm}")
        print(f"| {args.clips} clips, limit {args.limit}, latency {args.latency:g} s "
              f"({os.environ.get('REELFLOW_ENGINE_LIMITS', 'auto')} limits) | {name} {took:.2f} s "
              f"| ceil(N/C)·L = {ideal:.1f} s + stitch {stitch:.2f} s = {ideal + stitch:.2f} s "
              f"| {took / (ideal + stitch):.2f}× (target ≤ 1.1); plain pool {pool:.2f} s |")


def memory_child(scenes: int, root: Path, source: Path, arm: str) -> None:
    register_noop(source, 0.0, None)
    with _SERVER:
        ARMS[arm][1](production(root / f"mem-{scenes}", scenes, "mem"), root / f"mem-state-{arm}-{scenes}")
    print(f"MAXRSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


def memory(args, root: Path, source: Path) -> None:
    for arm in arms(args):
        peaks = {}
        for scenes in args.scenes:
            proc = subprocess.run([sys.executable, "-m", "bench.orchestration", "_memory_child", str(scenes),
                                   "--root", str(root), "--orchestrator", arm], capture_output=True, text=True,
                                  cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("MAXRSS")]
            if not line:
                raise SystemExit(proc.stderr[-3000:])
            peaks[scenes] = float(line[-1].split()[1])
            print(f"{ARMS[arm][0]}, {scenes} scenes: orchestrator peak RSS {peaks[scenes]:.0f} MB")
        low, high = min(peaks.values()), max(peaks.values())
        print(f"\n| {ARMS[arm][0]}: orchestrator peak RSS, {' / '.join(map(str, peaks))} scenes | "
              f"{' / '.join(f'{v:.0f}' for v in peaks.values())} MB | max/min {high / low:.2f} "
              f"(target ≤ 300 MB, flat ±10%) |\n")


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["overhead", "fanout", "memory", "_memory_child"])
    ap.add_argument("n", nargs="?", type=int)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--latency", type=float, default=2.0)
    ap.add_argument("--scenes", type=int, nargs="+", default=[12, 48, 120])
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--orchestrator", choices=["local", "prefect", "both"], default="both")
    args = ap.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="reelflow-orchestration-"))
    root.mkdir(parents=True, exist_ok=True)
    source = make_source(root / "source.mp4")
    if args.what == "_memory_child":
        memory_child(args.n, root, source, args.orchestrator)
        return
    print(f"cpus={os.cpu_count()}, engine limits: {os.environ.get('REELFLOW_ENGINE_LIMITS', 'auto')}")
    with _SERVER:
        {"overhead": overhead, "fanout": fanout, "memory": memory}[args.what](args, root, source)


if __name__ == "__main__":
    main()
