"""Loudness to EBU R128: measured with ffmpeg's ``ebur128``, brought to the target by a gain and,
if that gain would push peaks over the ceiling, a true-peak limiter.

The target (``loudness``, LUFS) and ceiling (``true_peak``, dBTP) are the output profile's. A
cut's loudness is measured once (``media.stitch.join_audio``), or computed from its clips' own
blocks (``media.gating``); :func:`steady_gain` keeps the last render's gain while it still lands
within ``KEEP_GAIN_WITHIN`` of the target, so an edit leaves the rest of the audio bit for bit
as it was; :func:`apply_loudness` applies it.
"""

from __future__ import annotations

import re
from pathlib import Path

from media import ffmpeg
from media.profile import OutputProfile

TRUE_PEAK_MARGIN = 1.5   # dB kept below the ceiling before the AAC encode, which can overshoot it (measured: 1.1 dB on peaky audio)
OVERSAMPLE = 4           # the limiter works at 4x the rate, where sample peaks approximate true peaks
_SUMMARY = re.compile(r"Summary:.*?I:\s*(?P<i>-?[\d.]+|-?inf|nan)\s*LUFS"
                      r"(?:.*?Peak:\s*(?P<tp>-?[\d.]+|-?inf|nan)\s*dBFS)?", flags=re.DOTALL)


def ebur128_summary(stderr: str) -> dict:
    found = list(_SUMMARY.finditer(stderr))
    if not found:
        raise ffmpeg.FFmpegError("ebur128 printed no loudness summary", stderr=stderr)
    summary = {"input_i": found[-1]["i"]}
    if found[-1]["tp"] is not None:
        summary["input_tp"] = found[-1]["tp"]
    return summary


def measure_loudness(inputs: list[str], profile: OutputProfile, graph: str | None = None,
                     label: str = "[joined]", peak: bool = True) -> dict:
    """Integrated loudness (LUFS) and true peak (dBTP) of the audio of ``inputs`` (ffmpeg input
    args), measured by ``ebur128`` in one pass: ``{"input_i": ..., "input_tp": ...}``.

    With ``graph`` (a filter graph ending in ``label``) that graph's output is measured;
    ``peak=False`` measures the loudness alone (no ``input_tp``; the true peak is most of the cost).
    """
    af = "ebur128=peak=true" if peak else "ebur128"
    if graph:
        select = ["-filter_complex", f"{graph};{label}{af}[m]", "-map", "[m]"]
    else:
        select = ["-map", "0:a:0", "-af", af]
    proc = ffmpeg.run([*inputs, *select, "-f", "null", "-"], loglevel="info")
    return ebur128_summary(proc.stderr.decode(errors="replace"))


def integrated_loudness(path: str | Path) -> float:
    """Integrated loudness of a file's audio, LUFS (EBU R128)."""
    return float(measure_loudness(["-i", str(path)], OutputProfile())["input_i"])


def true_peak(path: str | Path, start: float = 0.0) -> float:
    """True peak of a file's audio, dBTP (EBU R128), from ``start`` seconds in."""
    seek = ["-ss", f"{start:.6f}"] if start > 0 else []
    return float(measure_loudness([*seek, "-i", str(path)], OutputProfile())["input_tp"])


def loudness_filter(measured: dict, profile: OutputProfile, margin: float = TRUE_PEAK_MARGIN) -> str | None:
    """The one place loudness is set: a linear gain to the target, and a true-peak limiter if
    that gain would push peaks above the ceiling (less a margin for the AAC encode). None for
    silence (nothing to normalise)."""
    try:
        level, peak = float(measured["input_i"]), float(measured.get("input_tp", "inf"))
    except (KeyError, ValueError):
        return None
    if not level > -70:          # silence, or nan
        return None
    gain = float(measured.get("gain", profile.loudness - level))
    chain = [f"volume={gain:.2f}dB"]
    ceiling = profile.true_peak - margin
    if not peak + gain <= ceiling:
        rate = profile.audio_rate
        chain += [f"aresample={rate * OVERSAMPLE}",
                  f"alimiter=limit={10 ** (ceiling / 20):.5f}:attack=1:release=60:level=false:latency=true",
                  f"aresample={rate}"]
    return ",".join(chain)


def plan_loudness(inputs: list[str], profile: OutputProfile, graph: str | None = None, passes: int = 4,
                  measured: dict | None = None, margin: float = TRUE_PEAK_MARGIN) -> dict:
    """Measure (one ``ebur128`` pass, unless ``measured`` is given) what ``loudness_filter``
    needs. If the limiter engages and takes loudness with it (peaky audio), measure the limited
    result and raise the gain by the shortfall, until within 0.5 LU of the target (at most
    ``passes`` more audio-only passes)."""
    measured = measured or measure_loudness(inputs, profile, graph)
    for _ in range(passes):
        chain = loudness_filter(measured, profile, margin)
        if chain is None or "alimiter" not in chain:
            break
        tap = f"{graph};[joined]{chain}[limited]" if graph else f"[0:a:0]{chain}[limited]"
        short = profile.loudness - float(measure_loudness(inputs, profile, tap, "[limited]")["input_i"])
        if abs(short) <= 0.5:
            break
        gain = float(measured.get("gain", profile.loudness - float(measured["input_i"])))
        measured = {**measured, "gain": gain + short}
    return measured


loudnorm_filter = loudness_filter     # the name callers used before ebur128 replaced loudnorm


SILENT_PEAK = -200.0    # dBTP given to digital silence (ebur128 says -inf)


def peak_of(value: str) -> float:
    """A true peak as ebur128 prints it (dBTP); silence (-inf, nan) as ``SILENT_PEAK``."""
    peak = float(value)
    return max(peak, SILENT_PEAK) if peak == peak else SILENT_PEAK


def raw_input(path: str | Path, profile: OutputProfile) -> list[str]:
    """ffmpeg input arguments for a raw PCM file written by :func:`join_audio`."""
    return ["-f", "s16le", "-ar", str(profile.audio_rate), "-ac", "2", "-i", str(path)]


KEEP_GAIN_WITHIN = 0.5   # LU: a previous render's gain is kept while it lands this close to the target


def steady_gain(measured: dict, profile: OutputProfile, previous: tuple[float, float] | None) -> dict:
    """``measured`` with the gain to apply. ``previous``: the last render's (gain to the target
    before any limiter, gain applied); while the first still lands within ``KEEP_GAIN_WITHIN`` LU
    of the target, the applied one is kept (already planned with the limiter if that render needed
    one); else the exact gain (rounded to 0.01 dB). An edit then leaves the rest of the audio bit
    for bit as it was, so its encoded chunks are reused (``media.aac``), and the loudness stays
    within ±1 LU."""
    try:
        level = float(measured["input_i"])
    except (KeyError, ValueError):
        return measured
    if not level > -70:
        return measured
    exact = profile.loudness - level
    if previous is not None and abs(exact - previous[0]) <= KEEP_GAIN_WITHIN:
        return {**measured, "gain": f"{previous[1]:.2f}", "base": f"{previous[0]:.2f}", "kept": "1"}
    return {**measured, "gain": f"{exact:.2f}", "base": f"{exact:.2f}"}


def apply_loudness(joined: str | Path, measured: dict, profile: OutputProfile,
                   out: str | Path, margin: float = TRUE_PEAK_MARGIN) -> tuple[Path, float | None, float]:
    """Bring ``joined`` (raw PCM) to the target loudness: ``(pcm, gain, left)``. ``gain`` is the
    gain to the target it carries (dB; None for silence, which is left as it is); ``left`` the
    part of it still to apply when the PCM is encoded (``media.aac.encode(gain=...)``). A plain
    gain is all left to the encoder (no pass over the PCM); a gain that would push peaks over
    the ceiling goes through ``loudness_filter``'s limiter in one ffmpeg pass over the raw PCM
    into ``out``, planned by :func:`plan_loudness`, and leaves nothing. ``margin``: dB kept
    below the ceiling for the encoder's overshoot."""
    chain = loudness_filter(measured, profile, margin)
    if chain is None:
        return Path(joined), None, 0.0
    if "alimiter" in chain:
        planned = (measured if measured.get("kept")      # the kept gain was planned at this margin
                   else plan_loudness(raw_input(joined, profile), profile, measured=measured, margin=margin))
        samples = Path(joined).stat().st_size // 4
        ffmpeg.run([*raw_input(joined, profile), "-af",
                    f"{loudness_filter(planned, profile, margin)},aformat=sample_fmts=s16:channel_layouts=stereo,"
                    f"apad,atrim=end_sample={samples}", "-c:a", "pcm_s16le", "-f", "s16le", str(out)])
        return Path(out), float(planned.get("gain", profile.loudness - float(planned["input_i"]))), 0.0
    decibels = round(float(measured.get("gain", profile.loudness - float(measured["input_i"]))), 2)
    return Path(joined), decibels, decibels
