"""Turnaround of a footage production, against a hand-written ffmpeg graph and moviepy.

    python -m bench.turnaround --clips 24 --seconds 5          # the issue's workload
    python -m bench.turnaround --clips 4 --seconds 1 --no-moviepy

Measured in one run, in this order: a one-pass ffmpeg filter graph (scale/pad/fps/
aresample/concat, libx264 veryfast, AAC) on the footage; moviepy's
``concatenate_videoclips`` on the same clips (an interpreter with moviepy: ``--moviepy-python``,
default the ``.venv-bench`` next to the repository, else this one); then ``reelflow render``
(a subprocess, as a user runs it) cold on an empty store, after editing one clip, and
unchanged. Prints seconds and the ratios the issue sets targets for.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.workload import edit_clip, footage_paths, footage_production
from media import ffmpeg
from media.probe import probe

REPO = Path(__file__).resolve().parents[1]


def one_pass_args(paths: list[Path], width: int, height: int, fps: float, seconds: float, out: Path) -> list[str]:
    """A hand-written single ffmpeg graph: every clip fitted, timed and joined in one encode."""
    args: list[str] = []
    graph: list[str] = []
    frames = round(seconds * fps)
    samples = round(frames * 48000 / fps)
    for i, path in enumerate(paths):
        args += ["-i", str(path)]
    for i, path in enumerate(paths):
        graph.append(f"[{i}:v:0]fps={fps},scale={width}:{height}:force_original_aspect_ratio=decrease,"
                     f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,"
                     f"trim=end_frame={frames},setpts=PTS-STARTPTS[v{i}]")
        source = f"[{i}:a:0]" if probe(path).has_audio else "anullsrc=r=48000:cl=stereo,"
        graph.append(f"{source}aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,"
                     f"apad,atrim=end_sample={samples},asetpts=PTS-STARTPTS[a{i}]")
    joined = "".join(f"[v{i}][a{i}]" for i in range(len(paths)))
    graph.append(f"{joined}concat=n={len(paths)}:v=1:a=1[v][a]")
    return [*args, "-filter_complex", ";".join(graph), "-map", "[v]", "-map", "[a]",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", str(out)]


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def reelflow_render(project: Path, state: Path) -> tuple[float, str]:
    """``python -m reelflow render PROJECT`` in a subprocess; (wall seconds, last line)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "REELFLOW_STORAGE": str(state / "store"),
           "REELFLOW_WORK_DIR": str(state / "work"), "REELFLOW_DATABASE_URL": f"sqlite:///{state / 'catalog.db'}",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    # Python's bytecode cache on, as on a user's machine (an installed package has its .pyc
    # files); some sandboxes set PYTHONDONTWRITEBYTECODE, which recompiles every module per run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    state.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reelflow", "render", str(project)], env=env, cwd=state,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"reelflow render failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stdout.strip().splitlines()[-1]


def moviepy_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    local = REPO / ".venv-bench" / "bin" / "python"
    return str(local) if local.is_file() else sys.executable


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--width", type=int, default=576)
    ap.add_argument("--height", type=int, default=896)
    ap.add_argument("--fps", type=float, default=24)
    ap.add_argument("--small", action="store_true", help="Footage at a quarter of its size (quick runs).")
    ap.add_argument("--no-moviepy", action="store_true")
    ap.add_argument("--moviepy-python", default=None, help="Interpreter that has moviepy installed.")
    ap.add_argument("--keep", type=Path, default=None, help="Work here and keep it (default: a temp folder).")
    args = ap.parse_args(argv)

    root = args.keep or Path(tempfile.mkdtemp(prefix="reelflow-turnaround-"))
    project = footage_production(root / "project", args.clips, args.seconds, args.width, args.height, args.fps,
                                 small=args.small)
    paths = footage_paths(project)
    total = args.clips * args.seconds
    print(f"workload: {args.clips} mixed-shape footage clips of {args.seconds:g} s -> "
          f"{args.width}x{args.height}@{args.fps:g}, {total:g} s; cpus={os.cpu_count()}")

    # Warm-up: imports, ffmpeg, Prefect's database, page cache (not measured).
    warm = footage_production(root / "warm", 2, 0.5, 64, 96, 12, small=True)
    reelflow_render(warm, root / "warm-state")

    rows: dict[str, float] = {}
    rows["ffmpeg one-pass"], _ = timed(ffmpeg.run, one_pass_args(paths, args.width, args.height, args.fps,
                                                                  args.seconds, root / "one-pass.mp4"))
    if not args.no_moviepy:
        cmd = [moviepy_python(args.moviepy_python), str(REPO / "bench" / "moviepy_concat.py"),
               str(root / "moviepy.mp4"), str(args.width), str(args.height), str(args.fps), *map(str, paths)]
        rows["moviepy concatenate_videoclips"], _ = timed(subprocess.run, cmd, check=True, capture_output=True,
                                                          cwd=root)   # moviepy writes temp files to cwd
    state = root / "state"
    state.mkdir(exist_ok=True)
    rows["reelflow cold"], video = reelflow_render(project, state)
    edit_clip(project, args.clips // 2, args.seconds, variant=7, small=args.small)
    rows["reelflow edit 1"], _ = reelflow_render(project, state)
    rows["reelflow unchanged"], again = reelflow_render(project, state)

    cold = rows["reelflow cold"]
    print("\n| measure | seconds | ratio |\n| --- | --- | --- |")
    print(f"| ffmpeg one-pass | {rows['ffmpeg one-pass']:.2f} | 1.00 |")
    if "moviepy concatenate_videoclips" in rows:
        mp = rows["moviepy concatenate_videoclips"]
        print(f"| moviepy concatenate_videoclips | {mp:.2f} | {mp / rows['ffmpeg one-pass']:.2f}× ffmpeg |")
    print(f"| reelflow cold | {cold:.2f} | {cold / rows['ffmpeg one-pass']:.2f}× ffmpeg (target ≤ 1.1)"
          + (f"; moviepy/cold {rows['moviepy concatenate_videoclips'] / cold:.2f}× (target ≥ 3)"
             if "moviepy concatenate_videoclips" in rows else "") + " |")
    print(f"| reelflow edit 1 of {args.clips} | {rows['reelflow edit 1']:.2f} | "
          f"{rows['reelflow edit 1'] / cold:.3f}× cold (target ≤ 0.15) |")
    print(f"| reelflow unchanged | {rows['reelflow unchanged']:.2f} | "
          f"{rows['reelflow unchanged'] / cold:.3f}× cold (target ≤ 0.05; ≤ 2 s wall) |")
    print(f"\ncold video: {video}\nunchanged: {again}")


if __name__ == "__main__":
    main()
