"""A local clip's soundtrack: the model's own audio where it made one, else speech and ambience.

Audio a model generated with its picture (LTX-2) is already in sync: it is kept sample for
sample where the pipeline put it, at its own rate and channel count: no lead-in, no cut but
the trim to the clip's length. Only video-only models get the TTS line (with its lead-in)
over an ambience bed, as the animatic does.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

from engines.base import ClipRequest
from engines.errors import EngineInputError, InvalidClip, TransientEngineError
from media import tts
from media.soundtrack import AUDIO_RATE, LEAD_IN, soundtrack_args, speak_line
from prompts import parse_prompt


PAD_LIMIT = 0.1    # seconds of silence a model's audio may be padded with at its end (LTX-2's causal
                   # audio VAE returns up to ~70 ms less than the video); more is an InvalidClip


@dataclass
class Soundtrack:
    args: list[str]          # ffmpeg inputs (the first one is input ``first``)
    graph: list[str]         # filter-graph parts ending in [a]
    rate: int                # the clip's audio rate
    channels: int
    source: str              # "model", "scene audio", "tts" or "bed"
    words: dict | None = None   # the TTS line's word timings in clip time (media.soundtrack.speak_line)


def pcm16(audio):
    """A pipeline's audio (batch x channels x samples, channels x samples or samples; -1..1) as
    interleaved 16-bit samples (samples x channels)."""
    import numpy as np

    data = audio[0] if getattr(audio, "ndim", 0) == 3 else audio
    data = np.asarray(data.float().cpu() if hasattr(data, "cpu") else data, dtype=np.float32)
    data = data if data.ndim == 2 else data[None, :]
    return (np.clip(data.T, -1, 1) * 32767).round().astype("<i2")


def write_wav(pcm, path: Path, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def model_soundtrack(first: int, audio, rate: int, seconds: float, work: Path, scene: str) -> Soundtrack:
    """The model's audio as the clip's soundtrack: trimmed to ``seconds`` at its own rate, not moved."""
    pcm = pcm16(audio)
    samples = round(seconds * rate)
    if samples - len(pcm) > PAD_LIMIT * rate:      # the model made a shorter clip than asked
        raise InvalidClip(f"scene {scene!r}: the model's audio is {len(pcm) / rate:.3f} s long, "
                          f"the clip needs {seconds:.3f} s")
    wav = write_wav(pcm[:samples], work / "model-audio.wav", rate)
    graph = [f"[{first}:a]apad=whole_len={samples},atrim=end_sample={samples}[a]"]
    return Soundtrack(["-i", str(wav)], graph, rate, int(pcm.shape[1]), "model")


def speech_soundtrack(first: int, request: ClipRequest, seconds: float, work: Path) -> Soundtrack:
    """For video-only models: the scene's audio or its TTS line (with a lead-in) over a bed."""
    parsed = parse_prompt(request.prompt)
    ambience = bool(parsed.ambience)
    words = None
    if request.audio:
        speech, source = request.audio, "scene audio"
    elif parsed.speech:
        try:
            path, words = speak_line(" ".join(parsed.speech), request.voice, seconds, work / "speech.wav",
                                     request.seed)
            speech = str(path)
        except tts.TTSKilled as exc:         # not the line's fault: try again
            raise TransientEngineError(f"scene {request.scene_id!r}: {exc}") from exc
        except tts.TTSError as exc:
            raise EngineInputError(f"scene {request.scene_id!r}: {exc}") from exc
        source = "tts"
    else:
        speech, source = None, "bed"
    args, graph = soundtrack_args(first, speech, ambience, request.seed, round(seconds * AUDIO_RATE),
                                  lead_in=0.0 if request.audio else LEAD_IN)     # a scene's audio plays as recorded
    return Soundtrack(args, graph, AUDIO_RATE, 2, source, words)
