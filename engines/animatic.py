"""The animatic engine: CPU only, no weights, deterministic.

A still of the character with a slow pan/zoom, the action as a caption, the speech from
the prompt's ``<S>...<E>`` spoken by offline TTS in the character's voice (a scene's own
audio file wins), and the ambience as a quiet noise bed. Exactly ``duration`` seconds at
the requested size and fps, H.264 + AAC 48 kHz stereo.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageOps

from engines.base import ClipRequest, ClipResult
from engines.errors import EngineError, EngineInputError, TransientEngineError
from reelflow.errors import disk_cause
from media import ffmpeg, images, tts
from media.profile import exact_rate
from media.soundtrack import AUDIO_RATE, ENCODE_ARGS, LEAD_IN, soundtrack_args, speak_dialogue
from prompts import parse_prompt

# zoom in, zoom out, pan right, pan left: picked by the seed
_MOTIONS = (
    ("1+0.12*on/{n}", "iw/2-(iw/zoom/2)", "ih/2-(ih/zoom/2)"),
    ("1.12-0.12*on/{n}", "iw/2-(iw/zoom/2)", "ih/2-(ih/zoom/2)"),
    ("1.1", "(iw-iw/zoom)*on/{n}", "ih/2-(ih/zoom/2)"),
    ("1.1", "(iw-iw/zoom)*(1-on/{n})", "ih/2-(ih/zoom/2)"),
)


def animatic_args(
    *, still: str, caption: str, speech: str | None, ambience: bool, width: int, height: int,
    rate: Fraction, frames: int, samples: int, seed: int, out: str, lead_in: float = LEAD_IN,
) -> list[str]:
    """ffmpeg arguments for one animatic clip (pure: no I/O)."""
    z, x, y = (part.format(n=max(1, frames - 1)) for part in _MOTIONS[seed % len(_MOTIONS)])
    r = f"{rate.numerator}/{rate.denominator}"
    args = ["-loop", "1", "-framerate", r, "-i", still, "-loop", "1", "-framerate", r, "-i", caption]
    graph = [
        f"[0:v]zoompan=z='{z}':x='{x}':y='{y}':d=1:s={width}x{height}:fps={r},setsar=1[bg]",
        f"[bg][1:v]overlay=0:0,trim=end_frame={frames},format=yuv420p[v]",   # the graph ends the picture
    ]
    sound_args, sound_graph = soundtrack_args(2, speech, ambience, seed, samples, lead_in)
    args += sound_args
    graph += sound_graph
    args += [
        "-filter_complex", ";".join(graph),
        "-map", "[v]", "-map", "[a]", *ENCODE_ARGS, out,      # no -frames:v: it cut the sound short at 29.97
    ]
    return args


class AnimaticEngine:
    """Draft clips on CPU so script, timing and subtitles can be checked for free."""

    name = "animatic"

    def __init__(self, model: str | None = None, params: dict | None = None):
        self.model = model
        self.params = params or {}

    def _still(self, request: ClipRequest, work: Path) -> str:
        # Twice the output size so the pan/zoom moves smoothly between pixels.
        size = (request.width * 2, request.height * 2)
        path = work / "still.png"
        if request.image:
            try:
                with Image.open(request.image) as img:
                    ImageOps.fit(images.rgb(img), size, Image.Resampling.LANCZOS).save(path)
            except OSError as exc:
                if disk_cause(exc) is not None:
                    raise                      # writing the still, not reading the image: the disk is full
                raise EngineInputError(f"scene {request.scene_id!r}: cannot read image {request.image}: {exc}") from exc
        else:
            images.placeholder_png(request.scene_id, *size, path)
        return str(path)

    def _speech(self, request: ClipRequest, lines: list[str], work: Path, meta: dict) -> str | None:
        """The clip's speech: the scene's audio, or its line spoken (word timings into ``meta``)."""
        if request.audio:
            return request.audio
        text = " ".join(lines).strip()
        if not text:
            return None
        try:
            two = request.voice2 and len(lines) == 2 and all(line.strip() for line in lines)   # two voices
            turns = [(lines[0], request.voice), (lines[1], request.voice2)] if two else [(text, request.voice)]
            path, meta["words"] = speak_dialogue(turns, request.duration, work / "speech.wav", request.seed)
            return str(path)
        except tts.TTSKilled as exc:         # not the line's fault: try again
            raise TransientEngineError(f"scene {request.scene_id!r}: {exc}") from exc
        except tts.TTSError as exc:
            if disk_cause(exc) is not None:
                raise
            raise EngineInputError(f"scene {request.scene_id!r}: {exc}") from exc

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult:
        started = time.monotonic()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        parsed = parse_prompt(request.prompt)
        rate = exact_rate(request.fps)
        frames = max(1, round(request.duration * rate))
        samples = round(frames * AUDIO_RATE / rate)
        caption = images.caption_png(request.caption or parsed.visual, request.width, request.height,
                                     out_dir / "caption.png", at=request.caption_at)
        out = out_dir / f"{request.scene_id}.mp4"
        meta: dict = {}
        args = animatic_args(
            still=self._still(request, out_dir),
            caption=str(caption),
            speech=self._speech(request, parsed.speech, out_dir, meta),
            ambience=bool(parsed.ambience),
            width=request.width,
            height=request.height,
            rate=rate,
            frames=frames,
            samples=samples,
            seed=request.seed,
            out=str(out),
            lead_in=0.0 if request.audio else LEAD_IN,      # a scene's own audio plays as recorded
        )
        try:
            ffmpeg.run(args)
        except ffmpeg.FFmpegError as exc:
            raise EngineError(f"scene {request.scene_id!r}: animatic render failed: {exc}") from exc
        return ClipResult(path=str(out), engine=self.name, model=self.model, seconds=time.monotonic() - started,
                          meta=meta)
