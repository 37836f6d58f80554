"""A cut's sound: joined, brought to the target loudness and encoded as the final AAC track.

``stitch_render`` makes it while it stitches, unless the mix was made ahead: when the cut is
known before the clips are normalised (no review to change the picks), ``tasks.ahead`` mixes
the audio as soon as every clip's sound is known, beside the encoding of their pictures, and
offers it here under a key naming what went into it (the clips' normalised keys and lengths,
the loudness target). ``stitch_render`` takes it only when its own
key is the same; otherwise it mixes afresh, so a mix made ahead can be late or wrong but never
used in the wrong place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from media import aac, gating, loudness
from projects.schema import Output
from reelflow.settings import get_settings
from storage.file_memo import finite, keep_checked, read_checked

_log = logging.getLogger("reelflow")


@dataclass
class Mix:
    key: str
    track: Track         # the AAC track, in ``folder``
    folder: Path         # the mix's own working folder: removed by whoever takes the mix

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def audio_track(join: Callable[[Path, Callable[[Path], None]], dict], profile: Output, slug: str,
                folder: Path) -> Track:
    """The final AAC track in ``folder``. ``join(out, joined)`` writes the cut's PCM to ``out``, calls
    ``joined(out)`` as soon as it is written and returns its loudness (``media.stitch.join_audio``)."""
    joined = folder / "joined.pcm"
    previous = previous_gain(slug, profile)
    ahead = EncodeAhead(profile, previous)
    measured = loudness.steady_gain(join(joined, ahead), profile, previous)
    margin = previous[2] if previous else loudness.TRUE_PEAK_MARGIN
    pcm, gain, left = loudness.apply_loudness(joined, measured, profile, folder / "audio.pcm", margin)
    path, peak = aac.encode_track(pcm, profile.audio_rate, folder / "audio.m4a", gain=left, ahead=ahead.started())
    if gain is not None:
        remember_gain(slug, profile, (float(measured["base"]), gain, margin))

    def settle() -> Path | None:
        """None when the track holds the true-peak ceiling, else a track limited lower by what the
        encoder overshot (sharp transients), encoded again: at most ``PEAK_TRIES`` encodes in all."""
        nonlocal margin, measured
        if gain is None:
            return None
        current, peak_of = None, peak
        for tries in range(1, PEAK_TRIES + 1):
            over = peak_of() - profile.true_peak
            if over <= 0:
                return current
            if tries == PEAK_TRIES:
                _log.warning("the AAC track still peaks %.2f dB over the %.1f dBTP ceiling", over, profile.true_peak)
                return current
            _log.info("the AAC track peaks %.2f dB over %.1f dBTP: limiting %.1f dB lower", over,
                      profile.true_peak, over + PEAK_STEP)
            margin += over + PEAK_STEP
            measured = {k: v for k, v in measured.items() if k != "kept"}      # planned afresh at the new margin
            pcm, limited, left = loudness.apply_loudness(joined, measured, profile, folder / "audio.pcm", margin)
            current, peak_of = aac.encode_track(pcm, profile.audio_rate, folder / "audio.m4a", gain=left)
            remember_gain(slug, profile, (float(measured["base"]), limited, margin))
        return current

    return Track(path, settle)


@dataclass
class Track:
    """The cut's AAC track, and ``settle()``: None when it holds the true-peak ceiling, else the
    path of one limited lower (the track's file itself, rewritten): mux again. The peak is
    measured beside whatever follows the encode (the final mux), so the common case costs no wait."""
    path: Path
    settle: Callable[[], Path | None]


PEAK_TRIES = 3      # encodes of one cut's track at most (each later one limited lower by the overshoot)
PEAK_STEP = 0.3     # dB below the ceiling past the measured overshoot


def mix_key(items: list, samples: int, profile: Output) -> str:
    """What a hard-cut mix of ``items`` (normalised clips and cards, in order) depends on. Not the
    last render's gain: a mix is taken only by the stitch of the render that made it."""
    what = {"items": [[i.key, i.frames] for i in items], "samples": samples, "rate": profile.audio_rate,
            "loudness": profile.loudness, "true_peak": profile.true_peak, "aac": aac.VERSION}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


_offered: dict[str, list[Future]] = {}
_lock = threading.Lock()


def offer(slug: str, make: Callable[[], Mix | None]) -> Future:
    """Make a mix on a thread of its own and offer it to this process's next stitch of ``slug``."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="reelflow-mix-ahead")
    future = pool.submit(make)
    pool.shutdown(wait=False)
    with _lock:
        _offered.setdefault(slug, []).append(future)
    return future


def take(slug: str, key: str) -> Mix | None:
    """The mix offered for ``slug`` under ``key`` (waiting for it to finish), or None. Mixes offered
    under other keys are discarded: this stitch is the one they were made for."""
    with _lock:
        futures = _offered.pop(slug, [])
    found = None
    for future in futures:
        mix = _result(future)
        if mix is not None and mix.key == key and found is None:
            found = mix
        elif mix is not None:
            mix.discard()
    return found


def withdraw(future: Future) -> None:
    """A mix no stitch will take (the render failed before it stitched): wait for it and discard it."""
    with _lock:
        for futures in _offered.values():
            if future in futures:
                futures.remove(future)
    mix = _result(future)
    if mix is not None:
        mix.discard()


def _result(future: Future) -> Mix | None:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a mix ahead that failed costs only its head start
        _log.warning("the audio mixed ahead failed (%s: %s); the stitch mixes it again", type(exc).__name__, exc)
        return None


class EncodeAhead:
    """The AAC chunks encoded with the last render's gain while this render's loudness is still
    being measured. An edit nearly always keeps that gain (``steady_gain``), so its new chunks are
    made beside the measurement instead of after it, and the track is spliced from them as they
    land; a gain that moved (or a limiter, which rewrites the PCM) leaves them unused (those not
    begun are cancelled). Called with the joined PCM."""

    def __init__(self, profile: Output, previous: tuple[float, float, float] | None):
        plain = previous is not None and abs(previous[1] - previous[0]) < 0.005   # no limiter last time
        self.rate, self.gain = profile.audio_rate, previous[1] if plain else None
        self.future: Future | None = None

    def __call__(self, pcm: Path) -> None:
        if self.gain is None:
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="reelflow-aac-ahead")
        self.future = pool.submit(aac.start, pcm, self.rate, gain=self.gain)   # keys the chunks, starts their encodes
        pool.shutdown(wait=False)

    def started(self) -> aac.Encoding | None:
        """The encoding it started (None when it started none, or keying the chunks failed: a
        failure here costs only the head start)."""
        if self.future is None:
            return None
        try:
            return self.future.result()
        except Exception as exc:  # noqa: BLE001
            _log.warning("AAC chunks encoded ahead failed (%s: %s); encoding them again",
                         type(exc).__name__, exc)
            return None


def _gain_file(slug: str, profile: Output) -> Path:
    key = hashlib.sha256(f"{slug}|{profile.loudness}|{profile.true_peak}|{profile.audio_rate}".encode()).hexdigest()
    return Path(get_settings().work_dir) / "cache" / "loudness" / f"{key[:32]}.txt"


GAIN_RANGE = 120.0      # dB: no gain to the target is larger (a -70 LUFS cut brought to 0 LUFS is 70)


def previous_gain(slug: str, profile: Output) -> tuple[float, float, float] | None:
    """This machine's last render of ``slug``: (its gain to the target, the gain it applied, the
    margin its limiter kept below the ceiling), dB. None when none was kept, or what was kept
    cannot be one (damaged: measured afresh)."""
    data = read_checked(_gain_file(slug, profile))
    fields = data.decode("ascii", errors="replace").split() if data is not None else []
    if len(fields) != 3 or not all(finite(f, -GAIN_RANGE, GAIN_RANGE) for f in fields[:2]) \
            or not finite(fields[2], 0.0, GAIN_RANGE):
        return None
    base, applied, margin = map(float, fields)
    return base, applied, margin


def _blocks_file(key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Path(get_settings().work_dir) / "cache" / "blocks" / f"{digest}.txt"


def keep_blocks(key: str, blocks: gating.ClipBlocks | None) -> None:
    """Keep the loudness blocks (``media.gating``) of the normalised clip ``key`` on this machine."""
    if blocks is not None:
        keep_checked(_blocks_file(key), blocks.dumps().encode())


def kept_blocks(key: str, true_peak: float | None, samples: int, rate: int) -> gating.ClipBlocks | None:
    """The loudness blocks kept for ``key`` (``samples`` long): silence for a clip whose true peak
    is silence (a card), None when they were not kept here (the cut's loudness is then measured)."""
    if not gating.aligned(samples, rate):
        return None
    if true_peak is not None and true_peak <= loudness.SILENT_PEAK:
        return gating.ClipBlocks.silent(samples // gating.hop(rate))
    data = read_checked(_blocks_file(key))
    try:
        return gating.ClipBlocks.loads(data.decode(), samples // gating.hop(rate)) if data is not None else None
    except (ValueError, KeyError, TypeError, AttributeError):     # damaged, or not this clip's: measured
        return None


def remember_gain(slug: str, profile: Output, gains: tuple[float, float, float]) -> None:
    keep_checked(_gain_file(slug, profile), " ".join(f"{g:.2f}" for g in gains).encode())   # else measured afresh
