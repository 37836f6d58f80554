"""Offline text-to-speech with libespeak-ng (shipped by the ``espeakng-loader`` wheel).

libespeak-ng keeps static state between utterances (even across terminate/initialise),
so the same text spoken twice in one process gives different samples. ``speak_to_wav``
therefore speaks each line in a fresh child process (``python -m media.tts``): same text,
voice and speed -> same bytes, and no shared C state between worker threads.
"""

from __future__ import annotations

import array
import ctypes
import json
import subprocess
import sys
import threading
import wave
from pathlib import Path
from reelflow.errors import RenderError
from reelflow.process import child_options

_LOCK = threading.Lock()
_STATE: dict = {}

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class TTSError(RenderError):
    """Speech synthesis failed (unknown voice, library missing)."""


def _data_path() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def voice_names() -> set[str]:
    """Lower-cased espeak-ng voice names (``en``, ``en-us``, ``de``, ...); ``+variant`` may follow."""
    return {p.name.lower() for p in (_data_path() / "lang").rglob("*") if p.is_file()}


def variant_names() -> set[str]:
    return {p.name.lower() for p in (_data_path() / "voices" / "!v").iterdir() if p.is_file()}


def check_voice(voice: str) -> str | None:
    """None if ``voice`` exists, else a message saying what does."""
    base, _, variant = voice.lower().partition("+")
    if base not in voice_names():
        return (f"unknown TTS voice {voice!r}; espeak-ng voices are language codes such as "
                f"en (British), en-us, en-gb-scotland, de, fr, es, with an optional +variant (en+f3)")
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

        @_CALLBACK
        def collect(wav, count, _events):
            if count > 0:
                samples.extend(wav[:count])
            return 0

        lib.espeak_SetSynthCallback(collect)
        _STATE.update(lib=lib, rate=rate, samples=samples, callback=collect)
    return _STATE["lib"]


def synthesize(text: str, voice: str = "en-us", *, speed: int = 165, seed: int = 0) -> tuple[array.array, int]:
    """Return (mono int16 samples, sample rate) for ``text`` spoken by ``voice``."""
    with _LOCK:
        lib = _library()
        samples: array.array = _STATE["samples"]
        del samples[:]
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
        return array.array("h", samples), _STATE["rate"]


def _write_wav(text: str, path: str, voice: str, speed: int, seed: int) -> float:
    samples, rate = synthesize(text, voice, speed=speed, seed=seed)
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return len(samples) / rate


def speak_to_wav(text: str, path: str | Path, voice: str = "en-us", *, speed: int = 165, seed: int = 0) -> float:
    """Write ``text`` as a mono 16-bit WAV (deterministically); return its duration in seconds."""
    if message := check_voice(voice):
        raise TTSError(message)
    job = json.dumps({"text": text, "path": str(path), "voice": voice, "speed": int(speed), "seed": int(seed)})
    try:
        proc = subprocess.run([sys.executable, "-m", "media.tts"], input=job.encode(), capture_output=True,
                              timeout=120, check=False, cwd=str(Path(__file__).resolve().parents[1]),
                              **child_options())
    except subprocess.TimeoutExpired as exc:
        raise TTSError(f"speech synthesis timed out for {text[:40]!r}") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise TTSError(detail[-1] if detail else f"speech synthesis failed for {text[:40]!r}")
    return float(proc.stdout.decode().strip())


if __name__ == "__main__":
    args = json.loads(sys.stdin.read())
    try:
        print(_write_wav(args["text"], args["path"], args["voice"], args["speed"], args["seed"]))
    except TTSError as exc:
        print(f"TTSError: {exc}", file=sys.stderr)
        sys.exit(1)
