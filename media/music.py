"""A music bed under the whole cut, ducked while anyone speaks.

Speech is found in the normalised clips themselves (every engine's, not only the
animatic's): in clips that carry a speech line, 20 ms windows well above the clip's own
floor are speech; gaps shorter than ``MERGE_GAP`` are bridged so the bed does not pump
between words. The bed is looped or trimmed to the video, set to ``volume`` dB, faded in
and out, and lowered by ``duck_db`` over every speech span with ``ramp`` second slopes —
a ``volume`` expression evaluated per 10 ms, so the ducking is exact and repeatable.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

WINDOW = 0.02        # seconds per level measurement
ABOVE_FLOOR = 12.0   # dB above the clip's quiet floor that counts as speech
MIN_LEVEL = -50.0    # dBFS below which nothing is speech
MERGE_GAP = 0.5      # seconds: shorter pauses stay ducked
PAD = 0.1            # seconds the duck starts before and ends after a span


class Music(BaseModel):
    """``music:`` in project.yaml (``file`` is resolved inside the project folder by the loader)."""

    model_config = ConfigDict(extra="forbid")

    file: str
    volume: float = Field(-18.0, ge=-60, le=0, description="Bed level in dB (0 = as recorded).")
    duck: bool = Field(True, description="Lower the bed while anyone speaks.")
    duck_db: float = Field(12.0, ge=0, le=40, description="How far the bed drops under speech, dB.")
    fade_in: float = Field(1.0, ge=0, le=30)
    fade_out: float = Field(2.0, ge=0, le=30)
    loop: bool = Field(True, description="Repeat a short bed to the video's length (else it ends early).")


def speech_spans(path: str | Path) -> list[tuple[float, float]]:
    """(start s, end s) where a clip's audio rises well above its own floor."""
    import av
    import numpy as np

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        stream = c.streams.audio[0]
        rate = stream.rate
        chunks = []
        for frame in c.decode(stream):
            data = frame.to_ndarray().astype(np.float64)
            if not frame.format.is_planar:
                data = data.reshape(-1, frame.layout.nb_channels).T
            if frame.format.name.startswith("s16"):
                data /= 32768.0
            chunks.append(data.mean(axis=0))
    if not chunks:
        return []
    pcm = np.concatenate(chunks)
    n = max(1, int(rate * WINDOW))
    usable = len(pcm) // n * n
    if usable == 0:
        return []
    levels = 10 * np.log10((pcm[:usable].reshape(-1, n) ** 2).mean(axis=1) + 1e-12)
    floor = np.percentile(levels, 10)
    loud = levels > max(MIN_LEVEL, floor + ABOVE_FLOOR)
    return merge([(i * WINDOW, (i + 1) * WINDOW) for i in np.flatnonzero(loud)], MERGE_GAP)


def merge(spans: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    """Sorted spans with gaps shorter than ``gap`` bridged."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start - out[-1][1] < gap:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def duck_expression(spans: list[tuple[float, float]], duck_db: float, ramp: float = 0.15) -> str:
    """A ``volume`` expression in ``t``: 1 outside the spans, ``-duck_db`` inside, sloped (pure)."""
    if not spans or duck_db <= 0:
        return "1"
    depth = 1 - 10 ** (-duck_db / 20)
    padded = merge([(max(0.0, a - PAD), b + PAD) for a, b in spans], 2 * ramp)
    terms = [f"clip((t-{a - ramp:.3f})/{ramp},0,1)*clip(({b + ramp:.3f}-t)/{ramp},0,1)" for a, b in padded]
    return f"1-{depth:.6f}*min(1,{'+'.join(terms)})"


def timeline_speech(timeline, paths: list[Path]) -> list[tuple[float, float]]:
    """Speech spans of the whole cut (seconds), from the clips that carry a speech line."""
    spans = []
    for item, path in zip(timeline.items, paths):
        if item.speech:
            offset = timeline.seconds(item.start)
            spans += [(offset + a, offset + b) for a, b in speech_spans(path)]
    return merge(spans, MERGE_GAP)


def music_graph(music: Music, input_index: int, samples: int, rate: int, seconds: float,
                spans: list[tuple[float, float]], speech: str, out: str) -> str:
    """Filter graph mixing the bed (input ``input_index``) under ``[speech]`` into ``[out]`` (pure)."""
    fade_in = min(music.fade_in, seconds / 3)
    fade_out = min(music.fade_out, seconds / 3)
    chain = [
        f"[{input_index}:a]aresample={rate},aformat=sample_fmts=fltp:channel_layouts=stereo",
        "apad", f"atrim=end_sample={samples}", "asetpts=N/SR/TB", f"volume={music.volume}dB",
    ]
    if fade_in > 0:
        chain.append(f"afade=t=in:d={fade_in:.3f}")
    if fade_out > 0:
        chain.append(f"afade=t=out:st={max(0.0, seconds - fade_out):.3f}:d={fade_out:.3f}")
    if music.duck and spans:
        chain += ["asetnsamples=n=480", f"volume='{duck_expression(spans, music.duck_db)}':eval=frame"]
    return (f"{','.join(chain)}[bed];"
            f"{speech}aformat=sample_fmts=fltp:channel_layouts=stereo[voice];"
            f"[voice][bed]amix=inputs=2:normalize=0:duration=first{out}")


def music_inputs(music: Music) -> list[str]:
    """ffmpeg input arguments for the bed (looped when asked), under the media whitelist."""
    from media.whitelist import input_args

    return (["-stream_loop", "-1"] if music.loop else []) + input_args(music.file)
