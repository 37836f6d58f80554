"""`reelflow storyboard` of 24 scenes in a fresh process: CPU and wall against the 3 s target.

    python -m bench.storyboard              # 5 interleaved repeats
    python -m bench.storyboard --repeats 9

The production is projects/demo four times over (24 scenes, nothing rendered yet). Each repeat
runs, one after the other in fresh processes:

- ``baseline``: an interpreter that only imports the libraries any storyboard needs (Pillow,
  pydantic, PyYAML, Jinja2, Typer): what this machine charges before reelflow does anything;
- ``storyboard``: the command with an empty catalog (a production never rendered here);
- ``storyboard, catalog``: the command with a catalog that holds history (engine speeds are
  read from it, which imports SQLAlchemy).

CPU is user + system time of the child; the ratios are against the baseline of the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET = 3.0
BASELINE = "import PIL.Image, pydantic, yaml, jinja2, typer"


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def production(root: Path) -> Path:
    folder = root / "projects" / "long"
    shutil.copytree(REPO / "projects" / "demo", folder)
    spec = yaml.safe_load((folder / "project.yaml").read_text())
    spec["scenes"] = [dict(s, id=f"{s['id']}-{n}") for n in range(4) for s in spec["scenes"]]
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = production(root)
        env = dict(os.environ, REELFLOW_STORAGE=str(root / "store"), REELFLOW_WORK_DIR=str(root / "work"))
        empty = dict(env, REELFLOW_DATABASE_URL=f"sqlite:///{root / 'none.db'}")
        kept = dict(env, REELFLOW_DATABASE_URL=f"sqlite:///{root / 'catalog.db'}")
        from storage.catalog import open_catalog

        open_catalog(kept["REELFLOW_DATABASE_URL"])          # a catalog file that exists
        command = [sys.executable, "-m", "reelflow", "storyboard", str(folder), "--out", str(root / "board")]
        runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "storyboard": [], "storyboard, catalog": []}
        for _ in range(args.repeats):
            runs["baseline"].append(timed([sys.executable, "-c", BASELINE], env))
            runs["storyboard"].append(timed(command, empty))
            runs["storyboard, catalog"].append(timed(command, kept))
    base_cpu = statistics.median(c for _, c in runs["baseline"])
    print(f"24 scenes, {args.repeats} interleaved repeats, median (load {os.getloadavg()[0]:.1f})")
    print(f"{'run':<22}{'wall s':>8}{'CPU s':>8}{'CPU / baseline':>16}{'target':>10}")
    for name, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        verdict = "" if name == "baseline" else ("met" if cpu < TARGET and wall < TARGET else "not met")
        print(f"{name:<22}{wall:>8.2f}{cpu:>8.2f}{cpu / base_cpu:>15.2f}x{verdict:>10}")


if __name__ == "__main__":
    main()
