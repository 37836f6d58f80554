"""Integrated loudness (EBU R128, ITU-R BS.1770) of a cut from loudness measured clip by clip.

BS.1770 measures 400 ms blocks every 100 ms (a hop), drops those under -70 LUFS, then those
10 LU under the loudness of the rest, and averages the energy that is left. When every clip of a
cut is a whole number of hops long, the cut's blocks are its clips' own blocks plus, at each join,
the three blocks that straddle it; those are sums of a clip's last three hops and the next one's
first three. :func:`meter` measures a clip's sound with 300 ms of silence either side, so its
first and last three (partial) blocks give exactly those sums (:class:`ClipBlocks`), and a
cut's loudness is computed from its clips' blocks (:func:`cut_loudness`) instead of measuring
the joined audio again. The one difference: the meter's K-weighting filter starts each clip from
rest instead of from the end of the clip before (which fades to silence over a few milliseconds).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

ABSOLUTE_GATE = -70.0      # LUFS
RELATIVE_GATE = -10.0      # LU under the loudness of the blocks over the absolute gate
OFFSET = -0.691            # BS.1770: LUFS = OFFSET + 10 log10(mean K-weighted energy)
EDGE = 3                   # hops of a 400 ms block that can lie across a join
SILENCE = -1000.0          # LUFS: how a kept block of silence (-inf) is written
LOUDEST = 10.0             # LUFS: above what any block can measure (a full-scale square wave, K-weighted: ~+6)


@dataclass
class ClipBlocks:
    """A clip's loudness (LUFS) in 400 ms blocks: ``head``, its first 1, 2 and 3 hops (with silence
    before them); ``blocks``, its whole blocks; ``tail``, its last 3, 2 and 1 hops (silence after)."""
    head: list[float]
    blocks: list[float]
    tail: list[float]

    @classmethod
    def silent(cls, hops: int) -> "ClipBlocks":
        return cls([-math.inf] * EDGE, [-math.inf] * max(0, hops - EDGE), [-math.inf] * EDGE)

    def dumps(self) -> str:
        return json.dumps({k: [round(v, 3) if v > SILENCE else SILENCE for v in vs] for k, vs in asdict(self).items()})

    @classmethod
    def loads(cls, text: str, hops: int | None = None) -> "ClipBlocks":
        """What :meth:`dumps` wrote; ValueError when it cannot be the blocks of a clip (of ``hops``
        hops): a value not a number, not finite or out of range, or edges not ``EDGE`` long."""
        data = json.loads(text)
        head, blocks, tail = ([float(v) for v in data[k]] for k in ("head", "blocks", "tail"))
        if len(head) != EDGE or len(tail) != EDGE or (hops is not None and len(blocks) != hops - EDGE):
            raise ValueError("loudness blocks of the wrong length")
        if not all(SILENCE <= v <= LOUDEST for v in (*head, *blocks, *tail)):    # nan, inf, out of range
            raise ValueError("a loudness block out of range")
        return cls(head, blocks, tail)


def hop(rate: int) -> int:
    return rate // 10


def aligned(samples: int, rate: int) -> bool:
    """Can a clip this long be measured by its blocks: whole hops, at least a block's worth of edge."""
    return rate % 10 == 0 and samples % hop(rate) == 0 and samples // hop(rate) >= EDGE


def meter(path: str, rate: int) -> str:
    """A filter chain (one audio input, one output to discard) that measures a stream's true peak
    (``ebur128``'s summary, at log level info) and writes the momentary loudness of each hop of it,
    with 300 ms of silence either side, to ``path`` (read with :func:`read_blocks`). ``path``
    must not need escaping in a filter graph (one of our own work files)."""
    pad = EDGE * hop(rate)
    return (f"adelay=delays={pad}S:all=1,apad=pad_len={pad},ebur128=peak=true:metadata=1:framelog=verbose,"
            f"ametadata=mode=print:key=lavfi.r128.M:file={path}")


def read_blocks(path: str | Path, rate: int, samples: int) -> ClipBlocks:
    """The :class:`ClipBlocks` of a ``samples``-long stream from the file :func:`meter` wrote."""
    if not aligned(samples, rate):
        raise ValueError(f"{samples} samples are not whole 100 ms hops")
    hops, size = samples // hop(rate), hop(rate)
    values: dict[int, float] = {}
    pts = None
    for line in Path(path).read_text().splitlines():
        if line.startswith("frame:"):
            fields = dict(f.split(":", 1) for f in line.split())
            pts = int(fields["pts"])
        elif line.startswith("lavfi.r128.M=") and pts is not None:
            value = float(line.split("=", 1)[1])
            values[pts // size] = value if value == value else -math.inf
            pts = None
    # The window of output hop k covers padded hops k-3..k, the clip's hops k-6..k-3.
    wanted = range(EDGE, hops + 2 * EDGE)
    if any(k not in values for k in wanted):
        raise ValueError(f"{path}: the loudness of {sum(k not in values for k in wanted)} hops is missing")
    series = [values[k] for k in wanted]
    return ClipBlocks(series[:EDGE], series[EDGE:-EDGE], series[-EDGE:])


def cut_loudness(clips: list[ClipBlocks]) -> float:
    """Integrated loudness (LUFS) of clips joined end to end; -inf for silence."""
    blocks = list(clips[0].blocks) if clips else []
    for before, after in zip(clips, clips[1:]):
        blocks += [_lufs(_energy(t) + _energy(h)) for t, h in zip(before.tail, after.head)]
        blocks += after.blocks
    return integrated(blocks)


def integrated(blocks: Iterable[float]) -> float:
    """Integrated loudness (LUFS) of a stream with these blocks; -inf for silence."""
    loud = [b for b in blocks if b > ABSOLUTE_GATE]
    if not loud:
        return -math.inf
    gate = _lufs(sum(map(_energy, loud)) / len(loud)) + RELATIVE_GATE
    kept = [b for b in loud if b > gate]
    return _lufs(sum(map(_energy, kept)) / len(kept)) if kept else -math.inf


def _energy(lufs: float) -> float:
    return 10 ** ((lufs - OFFSET) / 10) if lufs > -1000 else 0.0


def _lufs(energy: float) -> float:
    return OFFSET + 10 * math.log10(energy) if energy > 0 else -math.inf
