"""Clip latency and peak memory through the local engine vs calling the pipeline directly.

    python -m bench.gpu_engine --model /models/Wan2.1-T2V-1.3B-Diffusers --height 480 --width 832 \\
        --seconds 5 --steps 30 --repeats 3
    python -m bench.gpu_engine            # no --model: a tiny random Wan pipeline on CPU (smoke run)

Both sides run in this process on the same loaded pipeline, alternating, after one warm-up
each, so machine noise hits them alike; the ratios (engine / direct) are what to read.
``engine_generation`` is the engine's ``run_pipeline`` (prompt parsing, frame rule, seeding,
the per-GPU lock); ``engine_clip`` adds what the engine does on top: PNG frames, TTS and the
H.264/AAC encode. Target: generation ratio <= 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def peak_reset(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_read(torch) -> float | None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a diffusers model folder (default: build a tiny one)")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--fps", type=float, default=16)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default=None)
    args = parser.parse_args()

    import torch

    from engines.base import ClipRequest
    from engines.diffusers_local import DiffusersEngine

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    params = {"fps": args.fps}
    if args.model:
        model = args.model
        params.update(height=args.height or 480, width=args.width or 832, steps=args.steps or 30)
    else:
        from tests.tiny_models import tiny_wan_t2v

        model = str(tiny_wan_t2v(tmp / "tiny-wan"))
        params.update(height=args.height or 64, width=args.width or 64, steps=args.steps or 4,
                      max_sequence_length=16, negative_prompt="")
    if args.dtype:
        params["dtype"] = args.dtype
    engine = DiffusersEngine(model, params)
    request = ClipRequest(scene_id="bench", prompt="A driver waves at the camera. <S>Hello!<E> <AUDCAP>wind<ENDAUDCAP>",
                          width=params["width"], height=params["height"], fps=args.fps, duration=args.seconds, seed=1)
    pipe = engine.pipeline()
    kwargs = engine.call_kwargs(request, pipe)

    def direct() -> None:
        with torch.inference_mode():
            pipe(**{**kwargs, "generator": torch.Generator("cpu").manual_seed(1)})

    def through_engine_generation() -> None:
        engine.run_pipeline(request)       # the engine's own path up to frames, without the encode

    def through_engine_clip() -> None:
        engine.generate(request, Path(tempfile.mkdtemp(dir=tmp)))

    timings: dict[str, list[float]] = {"direct": [], "engine_generation": [], "engine_clip": []}
    peaks: dict[str, float | None] = {}
    runs = {"direct": direct, "engine_generation": through_engine_generation, "engine_clip": through_engine_clip}
    for fn in runs.values():     # warm-up
        fn()
    names = list(runs)
    for repeat in range(args.repeats):
        for name in names[repeat % 3:] + names[:repeat % 3]:   # rotate: nobody always goes first
            fn = runs[name]
            peak_reset(torch)
            started = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - started)
            peaks[name] = max(peaks.get(name) or 0, peak_read(torch) or 0) or None

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    base = statistics.median(timings["direct"])
    print(f"model={model} device={device} size={params['width']}x{params['height']} "
          f"frames={kwargs['num_frames']} steps={kwargs['num_inference_steps']} repeats={args.repeats}")
    for name, values in timings.items():
        med = statistics.median(values)
        peak = f"{peaks[name]:.2f} GiB" if peaks.get(name) else "n/a (CPU)"
        print(f"{name:18s} median {med:8.3f} s  ratio {med / base:5.3f}  peak {peak}")
    if peaks.get("direct") and peaks.get("engine_generation"):
        print(f"peak memory ratio (engine_generation / direct): {peaks['engine_generation'] / peaks['direct']:.3f}")


if __name__ == "__main__":
    main()
