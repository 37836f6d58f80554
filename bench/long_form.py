"""Long form: a 30-minute production (360 footage clips of 5 s) rendered on this machine.

    python -m bench.long_form                        # 360 clips x 5 s -> 576x896@24, 30 min
    python -m bench.long_form --clips 48 --small     # a quick check

Every footage clip starts with a white flash and a 1 kHz beep on the same frame, in two
shapes and frame rates (320x480@24 with 48 kHz stereo, 480x480@25 with 44.1 kHz mono), each on
its own dark colour so no two clips share a content key. The render runs in a child process
(``render_local``, as ``reelflow render`` does without a Prefect API) that reports its own peak
RSS; a 24-clip render of the same kind runs first in the same way, so "flat" is measured in one
run. Then the final video is measured: every flash and every beep found, the flash at each join
within one frame of where the join should be, the beep within one frame of its flash, and the
audio and video streams within one frame of each other at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from media import ffmpeg
from media.probe import probe

REPO = Path(__file__).resolve().parents[1]
SHAPES = [dict(width=320, height=480, fps=24, rate=48000, channels=2),
          dict(width=480, height=480, fps=25, rate=44100, channels=1)]


def marked_footage(path: Path, index: int, seconds: float, small: bool) -> Path:
    """A clip with a flash + beep on its first frame, on a dark colour of its own."""
    if path.is_file():
        return path
    shape = SHAPES[index % len(SHAPES)]
    w, h = (shape["width"] // 4 * 2, shape["height"] // 4 * 2) if small else (shape["width"], shape["height"])
    colour = f"0x{10 + index % 50:02x}{10 + index // 50 % 50:02x}{10 + index * 7 % 50:02x}"   # unique to 2500
    flash = 0.12
    part = path.with_name(f".{path.name}.part.mp4")
    layout = "stereo" if shape["channels"] == 2 else "mono"
    ffmpeg.run(["-f", "lavfi", "-i", f"color=c={colour}:s={w}x{h}:r={shape['fps']}:d={seconds}",
                "-f", "lavfi", "-i", f"sine=f=1000:sample_rate={shape['rate']}:d={seconds}",
                "-vf", f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(t,{flash})'",
                "-af", f"volume='if(lt(t,{flash}),0.8,0)':eval=frame,aformat=channel_layouts={layout}",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-ar", str(shape["rate"]), "-ac", str(shape["channels"]), "-shortest", str(part)])
    part.replace(path)
    return path


def production(folder: Path, clips: int, seconds: float, width: int, height: int, fps: float, small: bool) -> Path:
    media = folder / "footage"
    media.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i in range(clips):
        marked_footage(media / f"clip{i:04d}.mp4", i, seconds, small)
        scenes.append({"id": f"s{i:04d}", "footage": f"footage/clip{i:04d}.mp4", "duration": seconds,
                       "speech": f"Line {i}."})
    spec = {"title": f"Long form {clips}", "output": {"width": width, "height": height, "fps": fps,
                                                       "subtitles": "srt"}, "scenes": scenes}
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


CHILD = """
import os, resource, sys, time
from reelflow.settings import reload_settings
reload_settings()
from flows.local import render_local
started = time.perf_counter()
result = render_local(sys.argv[1])
print("RESULT", result.video, time.perf_counter() - started,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flush=True)
"""


def render(project: Path, state: Path) -> tuple[Path, float, float]:
    """``render_local`` in a child process: (video, seconds, the child's peak RSS in MB)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "REELFLOW_STORAGE": str(state / "store"),
           "REELFLOW_WORK_DIR": str(state / "work"), "REELFLOW_DATABASE_URL": f"sqlite:///{state / 'catalog.db'}"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(project)], capture_output=True, text=True,
                          env=env, cwd=REPO)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    if proc.returncode or not line:
        raise SystemExit(proc.stderr[-3000:])
    _, video, seconds, rss = line[-1].split()
    return Path(video), float(seconds), float(rss)


def onsets(signal: np.ndarray, threshold: float) -> np.ndarray:
    above = signal > threshold
    rising = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    return np.concatenate([[0], rising]) if above[0] else rising


def measure(video: Path, clips: int, seconds: float, fps: float) -> dict:
    """Flash and beep onsets of the final video, decoded small (8x8 grey frames, 8 kHz mono)."""
    frames = ffmpeg.run(["-i", str(video), "-map", "0:v:0", "-vf", "scale=8:8,format=gray", "-f", "rawvideo", "-"],
                        capture_stdout=True).stdout
    luma = np.frombuffer(frames, np.uint8).reshape(-1, 64).mean(axis=1)
    pcm = np.frombuffer(ffmpeg.run(["-i", str(video), "-map", "0:a:0", "-ac", "1", "-ar", "8000", "-f", "s16le", "-"],
                                   capture_stdout=True).stdout, "<i2").astype(np.float64) / 32768
    window = 16                                            # 2 ms at 8 kHz
    rms = np.sqrt((pcm[: len(pcm) // window * window].reshape(-1, window) ** 2).mean(axis=1))
    flashes = onsets(luma, 128) / fps
    beeps = onsets(rms, 0.05) * window / 8000
    frame = 1 / fps
    joins = np.arange(clips) * seconds
    info = probe(video, count_frames=True)
    return {
        "flashes": len(flashes), "beeps": len(beeps),
        "worst join (flash vs cut)": float(np.max(np.abs(flashes - joins))) if len(flashes) == clips else None,
        "worst beep vs flash": float(np.max(np.abs(beeps - flashes))) if len(beeps) == len(flashes) else None,
        "end: video - audio": (info.video_duration or 0) - (info.audio_duration or 0),
        "frame": frame, "video frames": info.video_frames, "expected frames": round(clips * seconds * fps),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=360)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--width", type=int, default=576)
    ap.add_argument("--height", type=int, default=896)
    ap.add_argument("--fps", type=float, default=24)
    ap.add_argument("--small", action="store_true", help="Footage at a quarter of its size (quick runs).")
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="reelflow-long-form-"))
    started = time.perf_counter()
    short = production(root / "short", 24, args.seconds, args.width, args.height, args.fps, args.small)
    long = production(root / "long", args.clips, args.seconds, args.width, args.height, args.fps, args.small)
    print(f"footage made in {time.perf_counter() - started:.0f} s: {args.clips} clips of {args.seconds:g} s "
          f"-> {args.width}x{args.height}@{args.fps:g}, {args.clips * args.seconds / 60:.1f} min; cpus={os.cpu_count()}")
    _, short_s, short_rss = render(short, root / "short-state")
    video, long_s, long_rss = render(long, root / "long-state")
    m = measure(video, args.clips, args.seconds, args.fps)
    frame = m["frame"]
    ok = lambda v: v is not None and abs(v) <= frame + 1e-9  # noqa: E731
    print(f"\n| measure | 24 clips | {args.clips} clips | target |\n| --- | --- | --- | --- |")
    print(f"| render (cold, in-process) | {short_s:.1f} s | {long_s:.1f} s | — |")
    print(f"| orchestrator peak RSS | {short_rss:.0f} MB | {long_rss:.0f} MB | ≤ 300 MB, flat: "
          f"{long_rss / short_rss:.2f}× |")
    print(f"| video frames | — | {m['video frames']} (expected {m['expected frames']}) | exact |")
    print(f"| flashes / beeps found | — | {m['flashes']} / {m['beeps']} | {args.clips} each |")
    print(f"| worst join: flash vs its cut | — | {m['worst join (flash vs cut)']} s | ≤ 1 frame ({frame:.4f} s): "
          f"{'yes' if ok(m['worst join (flash vs cut)']) else 'NO'} |")
    print(f"| worst beep vs its flash | — | {m['worst beep vs flash']} s | ≤ 1 frame: "
          f"{'yes' if ok(m['worst beep vs flash']) else 'NO'} |")
    print(f"| end: video − audio duration | — | {m['end: video - audio']:+.4f} s | ≤ 1 frame: "
          f"{'yes' if ok(m['end: video - audio']) else 'NO'} |")
    print(f"\nvideo: {video}")


if __name__ == "__main__":
    main()
