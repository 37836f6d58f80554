"""Offline text-to-speech with libespeak-ng (shipped by the ``espeakng-loader`` wheel).

libespeak-ng keeps static state between utterances (even across terminate/initialise),
so the same text spoken twice in one process gives different samples. ``speak_to_wav``
therefore speaks each line in a fresh child process (``python -m media.tts``): same text,
voice and speed -> same bytes, and no shared C state between worker threads.

The child also reports when each word starts (espeak-ng's ``espeakEVENT_WORD`` events, in
milliseconds of the audio it made), so burned subtitles can highlight each word as it is
spoken: ``speak`` returns them with the duration, and ``speak_to_wav`` keeps the old answer.
"""

from __future__ import annotations

import array
import ctypes
import json
import subprocess
import sys
import threading
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from reelflow.errors import RenderError
from reelflow import process

_LOCK = threading.Lock()
_STATE: dict = {}

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1


class _Event(ctypes.Structure):
    """``espeak_EVENT`` (speak_lib.h)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Word:
    """One spoken word: its place in the text (characters) and when it starts and ends (seconds)."""

    text: str
    offset: int
    start: float
    end: float


@dataclass(frozen=True)
class Speech:
    duration: float
    words: list[Word] = field(default_factory=list)


class TTSError(RenderError):
    """Speech synthesis failed (unknown voice, library missing)."""


class TTSKilled(TTSError):
    """The speech worker was killed by a signal (the OOM killer, a stop): not the text's fault."""


def _data_path() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def voice_names() -> set[str]:
    """Lower-cased espeak-ng voice names (``en``, ``en-us``, ``de``, ...); ``+variant`` may follow."""
    return {p.name.lower() for p in (_data_path() / "lang").rglob("*") if p.is_file()}


def variant_names() -> set[str]:
    return {p.name.lower() for p in (_data_path() / "voices" / "!v").iterdir() if p.is_file()}


def mute_voices() -> set[str]:
    """Voices whose language has no dictionary in this espeak-ng data (fo, kaa, xex): they
    load, and speak nothing."""
    if "mute" not in _STATE:
        data = _data_path()
        dictionaries = {p.name.removesuffix("_dict") for p in data.glob("*_dict")}
        mute = set()
        for path in (data / "lang").rglob("*"):
            if not path.is_file():
                continue
            lines = [line.split() for line in path.read_text(errors="replace").splitlines()]
            named = {words[0]: words[1] for words in reversed(lines) if len(words) > 1}   # the first of each
            code = named.get("dictionary") or named.get("language") or path.name
            if code not in dictionaries and code.split("-")[0] not in dictionaries:
                mute.add(path.name.lower())
        _STATE["mute"] = mute
    return _STATE["mute"]


def check_voice(voice: str) -> str | None:
    """None if ``voice`` exists and speaks, else a message saying what does."""
    base, _, variant = voice.lower().partition("+")
    if base not in voice_names():
        return (f"unknown TTS voice {voice!r}; espeak-ng voices are language codes such as "
                f"en (British), en-us, en-gb-scotland, de, fr, es, with an optional +variant (en+f3)")
    if base in mute_voices():
        return f"TTS voice {voice!r} has no dictionary in this espeak-ng build: it would speak nothing; choose another"
    if variant and variant not in variant_names():
        return f"unknown TTS voice variant {variant!r} in {voice!r} (try f1-f5 or m1-m7)"
    return None


def _library():
    if "lib" not in _STATE:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - base dependency
            raise TTSError("offline TTS needs espeakng-loader: pip install espeakng-loader") from exc
        lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if rate <= 0:
            raise TTSError("libespeak-ng failed to initialise")
        samples = array.array("h")
        marks: list[tuple[int, int, int]] = []     # (text position, length, sample) per word

        @_CALLBACK
        def collect(wav, count, events):
            if count > 0:
                samples.extend(wav[:count])
            i = 0
            while events and events[i].type != _EVENT_LIST_TERMINATED:
                if events[i].type == _EVENT_WORD:
                    marks.append((events[i].text_position, events[i].length, events[i].sample))
                i += 1
            return 0

        lib.espeak_SetSynthCallback(collect)
        _STATE.update(lib=lib, rate=rate, samples=samples, marks=marks, callback=collect)
    return _STATE["lib"]


def synthesize(text: str, voice: str = "en-us", *, speed: int = 165, seed: int = 0) -> tuple[array.array, int]:
    """Return (mono int16 samples, sample rate) for ``text`` spoken by ``voice``."""
    samples, rate, _ = synthesize_words(text, voice, speed=speed, seed=seed)
    return samples, rate


def _words(text: str, marks: list[tuple[int, int, int]], total: int, rate: int) -> list[Word]:
    """Words from espeak-ng's word events: each ends where the next starts, the last at the end of
    the audio; starts are made monotonic and kept inside the audio."""
    words: list[Word] = []
    starts = []
    last = 0
    for _pos, _len, sample in marks:
        last = min(max(last, sample), total)
        starts.append(last)
    for n, (pos, length, _sample) in enumerate(marks):
        end = starts[n + 1] if n + 1 < len(marks) else total
        offset = max(0, pos - 1)                  # espeak-ng counts characters from 1
        words.append(Word(text[offset:offset + max(0, length)], offset, starts[n] / rate, end / rate))
    return words


def synthesize_words(text: str, voice: str = "en-us", *, speed: int = 165,
                     seed: int = 0) -> tuple[array.array, int, list[Word]]:
    """(mono int16 samples, sample rate, word timings) for ``text`` spoken by ``voice``."""
    with _LOCK:
        lib = _library()
        samples: array.array = _STATE["samples"]
        marks: list = _STATE["marks"]
        del samples[:]
        del marks[:]
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise TTSError(check_voice(voice) or f"espeak-ng refused voice {voice!r}")
        lib.espeak_SetParameter(1, int(speed), 0)  # espeakRATE, words per minute
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # espeak-ng adds noise: seed it for same-in, same-out
            lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        data = text.encode("utf-8")
        if lib.espeak_Synth(ctypes.c_char_p(data), len(data) + 1, 0, _POS_CHARACTER, 0,
                            _ESPEAK_CHARS_UTF8, None, None) != 0:
            raise TTSError(f"espeak-ng could not speak {text[:40]!r}")
        lib.espeak_Synchronize()
        rate = _STATE["rate"]
        return array.array("h", samples), rate, _words(text, marks, len(samples), rate)


def _write_wav(text: str, path: str, voice: str, speed: int, seed: int) -> dict:
    samples, rate, words = synthesize_words(text, voice, speed=speed, seed=seed)
    try:
        handle = open(path, "wb")            # opened here: a failing wave.open hides the reason
    except OSError as exc:
        raise TTSError(f"cannot write speech to {path}: {exc.strerror}") from exc
    with handle, wave.open(handle, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return {"duration": len(samples) / rate, "words": [asdict(w) for w in words]}


def speak_to_wav(text: str, path: str | Path, voice: str = "en-us", *, speed: int = 165, seed: int = 0) -> float:
    """Write ``text`` as a mono 16-bit WAV (deterministically); return its duration in seconds."""
    return speak(text, path, voice, speed=speed, seed=seed).duration


def speak(text: str, path: str | Path, voice: str = "en-us", *, speed: int = 165, seed: int = 0) -> Speech:
    """Write ``text`` as a mono 16-bit WAV (deterministically); return its duration and word timings."""
    if message := check_voice(voice):
        raise TTSError(message)
    # The child runs in the repository (to import this module): a relative path is made absolute
    # here, where it was meant (a render from another folder wrote its speech nowhere).
    job = json.dumps({"text": text, "path": str(Path(path).resolve()), "voice": voice, "speed": int(speed),
                      "seed": int(seed)})
    try:
        proc = process.run([sys.executable, "-m", "media.tts"], input=job.encode(), timeout=120,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(Path(__file__).resolve().parents[1]))
    except subprocess.TimeoutExpired as exc:
        raise TTSError(f"speech synthesis timed out for {text[:40]!r}") from exc
    if proc.returncode < 0:
        raise TTSKilled(f"the speech worker was killed by {_signal_name(-proc.returncode)} "
                        f"while speaking {text[:40]!r}")
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise TTSError(detail[-1] if detail else f"speech synthesis failed for {text[:40]!r}")
    try:
        answer = json.loads(proc.stdout.decode())
        return Speech(float(answer["duration"]), [Word(**w) for w in answer["words"]])
    except (ValueError, KeyError, TypeError) as exc:
        raise TTSError(f"speech synthesis answered nonsense for {text[:40]!r}") from exc


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


if __name__ == "__main__":
    args = json.loads(sys.stdin.read())
    try:
        print(json.dumps(_write_wav(args["text"], args["path"], args["voice"], args["speed"], args["seed"])))
    except TTSError as exc:
        print(exc, file=sys.stderr)                 # the parent reads the last line as the reason
        sys.exit(1)
