"""The clip encode alone: frames piped raw into ffmpeg (now) vs written as PNG files first (before).

    python -m bench.frame_encode --width 832 --height 480 --frames 81 --repeats 5

The same uint8 frames (a moving gradient, so x264 has real work) and the same soundtrack
(a silent bed) go through both paths, alternating after one warm-up each; the ratio
piped / png is what to read. This is the part of a local clip that does not depend on
the GPU, so it can be measured on any machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path


def frames(count: int, height: int, width: int):
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        out[i, ..., 0] = (x + 4 * i) % 256
        out[i, ..., 1] = (y + 2 * i) % 256
        out[i, ..., 2] = (x + y + i) % 256
    return out


def png_path(video, rate: Fraction, sound, out: Path, work: Path) -> None:
    """What the engine did before issue 11: one PNG per frame, then ffmpeg reads them back."""
    from PIL import Image

    from media import ffmpeg
    from media.soundtrack import ENCODE_ARGS

    folder = work / "frames"
    folder.mkdir()
    for i, frame in enumerate(video):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    r = f"{rate.numerator}/{rate.denominator}"
    ffmpeg.run(["-framerate", r, "-i", str(folder / "%05d.png"), *sound.args, "-filter_complex",
                ";".join(["[0:v]format=yuv420p,setsar=1[v]", *sound.graph]), "-map", "[v]", "-map", "[a]",
                "-frames:v", str(len(video)), "-r", r, *ENCODE_ARGS, str(out)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--fps", type=float, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from engines.clip_audio import Soundtrack
    from engines.frame_writer import write_clip
    from media.profile import exact_rate
    from media.soundtrack import AUDIO_RATE, soundtrack_args

    video = frames(args.frames, args.height, args.width)
    rate = exact_rate(args.fps)
    sound_args, graph = soundtrack_args(1, None, False, 0, round(args.frames / args.fps * AUDIO_RATE))
    sound = Soundtrack(sound_args, graph, AUDIO_RATE, 2, "bed")
    tmp = Path(tempfile.mkdtemp(prefix="bench-encode-"))

    def piped() -> None:
        work = Path(tempfile.mkdtemp(dir=tmp))
        write_clip(video, len(video), rate, sound, work / "clip.mp4")
        shutil.rmtree(work)

    def png() -> None:
        work = Path(tempfile.mkdtemp(dir=tmp))
        png_path(video, rate, sound, work / "clip.mp4", work)
        shutil.rmtree(work)

    runs = {"png_files": png, "piped": piped}
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    names = list(runs)
    for repeat in range(args.repeats):
        for name in names[repeat % 2:] + names[:repeat % 2]:
            t0 = time.perf_counter()
            runs[name]()
            timings[name].append(time.perf_counter() - t0)
    base = statistics.median(timings["png_files"])
    print(f"encode {args.width}x{args.height} frames={args.frames} fps={args.fps:g} repeats={args.repeats}")
    for name, values in timings.items():
        med = statistics.median(values)
        print(f"{name:10s} median {med:7.3f} s  ratio {med / base:5.3f}  (min {min(values):.3f} s)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
