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
from engines.errors import EngineError, EngineInputError
from media import ffmpeg, images, tts
from prompts import parse_prompt

AUDIO_RATE = 48000
LEAD_IN = 0.3          # seconds of room tone before the line starts
BASE_WPM = 165
MAX_WPM = 420

# zoom in, zoom out, pan right, pan left: picked by the seed
_MOTIONS = (
    ("1+0.12*on/{n}", "iw/2-(iw/zoom/2)", "ih/2-(ih/zoom/2)"),
    ("1.12-0.12*on/{n}", "iw/2-(iw/zoom/2)", "ih/2-(ih/zoom/2)"),
    ("1.1", "(iw-iw/zoom)*on/{n}", "ih/2-(ih/zoom/2)"),
    ("1.1", "(iw-iw/zoom)*(1-on/{n})", "ih/2-(ih/zoom/2)"),
)


def animatic_args(
    *, still: str, caption: str, speech: str | None, ambience: bool, width: int, height: int,
    rate: Fraction, frames: int, samples: int, seed: int, out: str,
) -> list[str]:
    """ffmpeg arguments for one animatic clip (pure: no I/O)."""
    z, x, y = (part.format(n=max(1, frames - 1)) for part in _MOTIONS[seed % len(_MOTIONS)])
    r = f"{rate.numerator}/{rate.denominator}"
    args = ["-loop", "1", "-framerate", r, "-i", still, "-loop", "1", "-framerate", r, "-i", caption]
    graph = [
        f"[0:v]zoompan=z='{z}':x='{x}':y='{y}':d=1:s={width}x{height}:fps={r},setsar=1[bg]",
        "[bg][1:v]overlay=0:0,format=yuv420p[v]",
    ]
    audio_in = 2
    if speech:
        args += ["-i", speech]
        graph.append(
            f"[{audio_in}:a]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"adelay={int(LEAD_IN * 1000)}:all=1[speech]"
        )
        audio_in += 1
    if ambience:
        args += ["-f", "lavfi", "-i", f"anoisesrc=color=pink:seed={seed}:amplitude=0.06:sample_rate={AUDIO_RATE}"]
        graph.append(f"[{audio_in}:a]lowpass=f=900,aformat=sample_fmts=fltp:channel_layouts=stereo[bed]")
    else:
        args += ["-f", "lavfi", "-i", f"anullsrc=r={AUDIO_RATE}:cl=stereo"]
        graph.append(f"[{audio_in}:a]aformat=sample_fmts=fltp:channel_layouts=stereo[bed]")
    mix = "[speech][bed]amix=inputs=2:normalize=0:duration=longest," if speech else "[bed]"
    graph.append(f"{mix}apad,atrim=end_sample={samples}[a]")
    args += [
        "-filter_complex", ";".join(graph),
        "-map", "[v]", "-map", "[a]", "-frames:v", str(frames),
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-ar", str(AUDIO_RATE), "-ac", "2",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-movflags", "+faststart", out,
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
                    ImageOps.fit(img.convert("RGB"), size, Image.Resampling.LANCZOS).save(path)
            except OSError as exc:
                raise EngineInputError(f"scene {request.scene_id!r}: cannot read image {request.image}: {exc}") from exc
        else:
            images.placeholder_png(request.scene_id, *size, path)
        return str(path)

    def _speech(self, request: ClipRequest, lines: list[str], work: Path) -> str | None:
        if request.audio:
            return request.audio
        text = " ".join(lines).strip()
        if not text:
            return None
        path = work / "speech.wav"
        room = max(0.5, request.duration - LEAD_IN - 0.2)
        try:
            spoken = tts.speak_to_wav(text, path, request.voice, speed=BASE_WPM, seed=request.seed)
            if spoken > room:  # speak faster rather than cut the line off
                wpm = min(MAX_WPM, int(BASE_WPM * spoken / room) + 1)
                tts.speak_to_wav(text, path, request.voice, speed=wpm, seed=request.seed)
        except tts.TTSError as exc:
            raise EngineInputError(f"scene {request.scene_id!r}: {exc}") from exc
        return str(path)

    def generate(self, request: ClipRequest, out_dir: Path) -> ClipResult:
        started = time.monotonic()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        parsed = parse_prompt(request.prompt)
        rate = Fraction(request.fps).limit_denominator(1001)
        frames = max(1, round(request.duration * rate))
        samples = round(frames * AUDIO_RATE / rate)
        caption = images.caption_png(request.caption or parsed.visual, request.width, request.height, out_dir / "caption.png")
        out = out_dir / f"{request.scene_id}.mp4"
        args = animatic_args(
            still=self._still(request, out_dir),
            caption=str(caption),
            speech=self._speech(request, parsed.speech, out_dir),
            ambience=bool(parsed.ambience),
            width=request.width,
            height=request.height,
            rate=rate,
            frames=frames,
            samples=samples,
            seed=request.seed,
            out=str(out),
        )
        try:
            ffmpeg.run(args)
        except ffmpeg.FFmpegError as exc:
            raise EngineError(f"scene {request.scene_id!r}: animatic render failed: {exc}") from exc
        return ClipResult(path=str(out), engine=self.name, model=self.model, seconds=time.monotonic() - started)
