"""A clip's soundtrack for engines that make no audio: the speech line spoken by offline
TTS (sped up to fit the clip), over a quiet ambience bed, exactly ``samples`` long."""

from __future__ import annotations

from pathlib import Path

from media import tts
from media.whitelist import input_args

AUDIO_RATE = 48000
LEAD_IN = 0.3          # seconds of room tone before the line starts
BASE_WPM = 165
MAX_WPM = 420


def speak_to_fit(text: str, voice: str, seconds: float, path: Path, seed: int = 0) -> Path:
    """Speak ``text`` into ``path``, faster if needed so it ends inside a ``seconds`` clip."""
    return speak_line(text, voice, seconds, path, seed)[0]


def speak_line(text: str, voice: str, seconds: float, path: Path, seed: int = 0) -> tuple[Path, dict]:
    """``speak_to_fit``, and the line's word timings in the clip's time (after the lead-in):
    ``{"text": spoken text, "words": [{"text", "offset", "start", "end"}, ...]}`` (seconds,
    clipped to the clip's ``seconds``), what ``media.subtitles`` highlights word by word."""
    return speak_dialogue([(text, voice)], seconds, path, seed)


TURN_GAP = 0.15       # seconds between two speakers' lines


def speak_dialogue(lines: list[tuple[str, str]], seconds: float, path: Path, seed: int = 0) -> tuple[Path, dict]:
    """:func:`speak_line` for one speaker or several: each (text, voice) in its own voice, in
    turn, ``TURN_GAP`` apart, all sped up alike (rather than cut off) to end inside the clip. The
    word timings are in the clip's time and their offsets in the lines joined by spaces."""
    import wave

    room = max(0.5, seconds - LEAD_IN - 0.2)
    parts = [path.with_name(f"{path.stem}-{i}.wav") for i in range(len(lines))]
    spoken = [tts.speak(text, part, voice, speed=BASE_WPM, seed=seed) for (text, voice), part in zip(lines, parts)]
    total = sum(s.duration for s in spoken) + TURN_GAP * (len(lines) - 1)
    if total > room:
        speed = min(MAX_WPM, int(BASE_WPM * total / room) + 1)
        spoken = [tts.speak(text, part, voice, speed=speed, seed=seed) for (text, voice), part in zip(lines, parts)]
    words, at, offset = [], LEAD_IN, 0
    with wave.open(str(path), "wb") as out:
        for i, ((text, _), part, speech) in enumerate(zip(lines, parts, spoken)):
            with wave.open(str(part), "rb") as piece:
                if i == 0:
                    out.setparams(piece.getparams())
                else:
                    out.writeframes(b"\0" * piece.getsampwidth() * piece.getnchannels() * round(TURN_GAP * piece.getframerate()))
                    at += TURN_GAP
                out.writeframes(piece.readframes(piece.getnframes()))
            words += [{"text": w.text, "offset": w.offset + offset, "start": round(min(seconds, w.start + at), 4),
                       "end": round(min(seconds, w.end + at), 4)} for w in speech.words]
            at += speech.duration
            offset += len(text) + 1
            part.unlink(missing_ok=True)
    return path, {"text": " ".join(text for text, _ in lines), "words": words}


def soundtrack_args(first_input: int, speech: str | None, ambience: bool, seed: int, samples: int,
                    lead_in: float = LEAD_IN) -> tuple[list[str], list[str]]:
    """(ffmpeg input args, filter-graph parts ending in ``[a]``) for speech over a bed (pure).
    ``lead_in``: seconds of room tone before the speech (TTS; a scene's own audio plays from 0)."""
    args: list[str] = []
    graph: list[str] = []
    index = first_input
    if speech:
        args += input_args(speech)
        delay = f",adelay={round(lead_in * 1000)}:all=1" if lead_in > 0 else ""
        graph.append(f"[{index}:a]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo{delay}[speech]")
        index += 1
    if ambience:
        args += ["-f", "lavfi", "-i", f"anoisesrc=color=pink:seed={seed}:amplitude=0.06:sample_rate={AUDIO_RATE}"]
        graph.append(f"[{index}:a]lowpass=f=900,aformat=sample_fmts=fltp:channel_layouts=stereo[bed]")
    else:
        args += ["-f", "lavfi", "-i", f"anullsrc=r={AUDIO_RATE}:cl=stereo"]
        graph.append(f"[{index}:a]aformat=sample_fmts=fltp:channel_layouts=stereo[bed]")
    mix = "[speech][bed]amix=inputs=2:normalize=0:duration=longest," if speech else "[bed]"
    graph.append(f"{mix}apad,atrim=end_sample={samples}[a]")
    return args, graph


ENCODE_ARGS = [
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
    "-c:a", "aac", "-b:a", "128k", "-ar", str(AUDIO_RATE), "-ac", "2",
    "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
    "-movflags", "+faststart",
]
