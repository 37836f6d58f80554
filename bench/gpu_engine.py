"""Clip latency and peak memory through the local engine vs calling the pipeline directly.

    # on a GPU, random weights at the real configs (nothing downloaded; builds in seconds):
    python -m bench.gpu_engine --real wan2.1-1.3b --height 480 --width 832 --seconds 5.0625 --steps 10 --repeats 3
    python -m bench.gpu_engine --real wan2.1-1.3b --steps 10 --cpu-offload      # model offload's peak
    # a model folder (save_pretrained or downloaded):
    python -m bench.gpu_engine --model /models/Wan2.1-T2V-1.3B-Diffusers --steps 10
    # no --model/--real: tiny random pipelines on CPU (smoke run of the same code path)
    python -m bench.gpu_engine                     # tiny Wan
    python -m bench.gpu_engine --tiny ltx2         # tiny LTX-2 (audio from the model)

5.0625 s at 16 fps is 81 frames, Wan's native length. Both sides run in this process on the
same loaded pipeline, alternating (rotated order), after one warm-up each, so machine noise
hits them alike; the ratios (engine / direct) are what to read. ``engine_generation`` is the
engine's ``run_pipeline`` (prompt parsing, the family's frame grid, seeding, the per-GPU
lock, uint8 conversion on the device); ``engine_clip`` adds what the engine does on top: the
soundtrack (TTS, or the model's own audio) and the H.264/AAC encode with frames piped raw
into ffmpeg. Targets (issue 11): generation <= 1.05, whole clip <= 1.05 on the GPU at 10 steps.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

REAL = ("wan2.1-1.3b",)


def peak_reset(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_read(torch) -> float | None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30
    return None


def real_wan_13b(dtype, device: str):
    """Wan 2.1 T2V 1.3B at its real architecture (transformer 1.42 B, VAE, UMT5-XXL encoder 5.68 B),
    random weights, built straight on ``device`` (seconds; nothing downloaded or written)."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from tests.tiny_models import tiny_tokenizer

    with torch.device(device):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
            text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024).to(dtype)
        text_encoder = UMT5EncoderModel(UMT5Config(
            vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
            feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, relative_attention_max_distance=128,
            dense_act_fn="gelu_new", is_gated_act=True, pad_token_id=0, eos_token_id=1,
            decoder_start_token_id=0)).to(dtype)
        vae = AutoencoderKLWan().to(torch.float32)     # the real Wan 2.1 VAE is the class default
    return WanPipeline(tokenizer=tiny_tokenizer(), text_encoder=text_encoder, vae=vae, transformer=transformer,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))


def build(args, tmp: Path) -> tuple[str, dict]:
    """(model folder or name, engine params) for the run asked for."""
    params: dict = {}
    if args.real:
        model = f"random:{args.real}"
        params.update(height=args.height or 480, width=args.width or 832, steps=args.steps or 10, fps=16)
    elif args.model:
        model = args.model
        if args.height:
            params["height"] = args.height
        if args.width:
            params["width"] = args.width
        params["steps"] = args.steps or 10
    elif args.tiny == "ltx2":
        from tests.tiny_models import tiny_ltx2

        model = str(tiny_ltx2(tmp / "tiny-ltx2"))
        params.update(height=args.height or 64, width=args.width or 64, steps=args.steps or 4,
                      max_sequence_length=16, negative_prompt="")
    else:
        from tests.tiny_models import tiny_wan_t2v

        model = str(tiny_wan_t2v(tmp / "tiny-wan"))
        params.update(height=args.height or 64, width=args.width or 64, steps=args.steps or 4,
                      max_sequence_length=16, negative_prompt="", fps=16)
    if args.dtype:
        params["dtype"] = args.dtype
    if args.cpu_offload:
        params["cpu_offload"] = True
    return model, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a diffusers model folder")
    parser.add_argument("--real", choices=REAL, help="random weights at a real architecture (needs a GPU's memory)")
    parser.add_argument("--tiny", choices=("wan", "ltx2"), default="wan", help="tiny pipeline when no model")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--cpu-offload", action="store_true", help="enable_model_cpu_offload (GPU only)")
    args = parser.parse_args()

    import torch

    from engines.base import ClipRequest
    from engines.diffusers_local import DiffusersEngine, adopt_pipeline

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    started = time.perf_counter()
    model, params = build(args, tmp)
    built = time.perf_counter() - started
    engine = DiffusersEngine(model, params)
    if args.real:        # built in memory at the real config and handed to the engine as its model
        placement = "cpu" if args.cpu_offload else engine.device
        adopt_pipeline(engine, real_wan_13b(getattr(torch, engine.dtype), placement))
        built = time.perf_counter() - started
    pipe = engine.pipeline()
    family = engine.family(pipe)
    fps = float(params.get("fps", family.fps))
    request = ClipRequest(scene_id="bench", prompt="A driver waves at the camera. <S>Hello!<E> <AUDCAP>wind<ENDAUDCAP>",
                          width=params.get("width", family.width), height=params.get("height", family.height),
                          fps=fps, duration=args.seconds, seed=1)
    kwargs = engine.call_kwargs(request, pipe)

    def direct() -> None:
        with torch.inference_mode():
            pipe(**{**kwargs, "generator": torch.Generator("cpu").manual_seed(1)})

    def through_engine_generation() -> None:
        engine.run_pipeline(request)       # the engine's own path up to uint8 frames, without the encode

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
            peak_reset(torch)
            t0 = time.perf_counter()
            runs[name]()
            timings[name].append(time.perf_counter() - t0)
            peaks[name] = max(peaks.get(name) or 0, peak_read(torch) or 0) or None

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    base = statistics.median(timings["direct"])
    print(f"model={model} family={family.name} device={device} dtype={engine.dtype} "
          f"offload={bool(params.get('cpu_offload'))} size={kwargs['width']}x{kwargs['height']} "
          f"frames={kwargs['num_frames']} steps={kwargs['num_inference_steps']} repeats={args.repeats} "
          f"built_in={built:.1f}s")
    for name, values in timings.items():
        med = statistics.median(values)
        peak = f"{peaks[name]:.2f} GiB" if peaks.get(name) else "n/a (CPU)"
        print(f"{name:18s} median {med:8.3f} s  ratio {med / base:5.3f}  peak {peak}")
    if peaks.get("direct") and peaks.get("engine_generation"):
        print(f"peak memory ratio (engine_generation / direct): {peaks['engine_generation'] / peaks['direct']:.3f}")


if __name__ == "__main__":
    main()
