"""Colour continuity: match every clip's colour to one reference scene's.

Per RGB channel, a clip's mean and spread are moved to the reference's
(``out = (in - mean) * ref_std / std + ref_mean``, the gain bounded so a flat clip is not
blown up), measured on a few frames sampled across each clip's own picture (before any
padding), and applied as a ``lutrgb`` during normalisation, before scaling and padding,
so letterbox bars stay black. The reference's statistics are part of every matched
clip's normalised key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    import numpy as np

SAMPLES = 5
MAX_GAIN = 3.0


class ColorStats(BaseModel):
    """Per-channel (R, G, B) mean and standard deviation, 0-255."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def digest(self) -> str:
        doc = {"mean": [round(v, 2) for v in self.mean], "std": [round(v, 2) for v in self.std]}
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:12]


def sample_frames(path: str | Path, count: int = SAMPLES) -> list[np.ndarray]:
    """``count`` RGB frames spread evenly over a clip (decoded at reduced size)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24", width=max(2, f.width // 4 * 2 // 2), height=max(2, f.height // 4 * 2 // 2))
                  for f in container.decode(stream)]
    if not frames:
        return []
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return [frames[i] for i in sorted(set(picks))]


def measure(path: str | Path) -> ColorStats:
    """Colour statistics of a clip from a few sampled frames."""
    import numpy as np

    pixels = np.concatenate([f.reshape(-1, 3).astype(np.float64) for f in sample_frames(path)])
    return ColorStats(mean=tuple(pixels.mean(axis=0)), std=tuple(pixels.std(axis=0)))


def match_filter(clip: ColorStats, reference: ColorStats) -> str:
    """A ``lutrgb`` filter taking ``clip``'s colour to ``reference``'s (pure)."""
    parts = []
    for name, m, s, rm, rs in zip("rgb", clip.mean, clip.std, reference.mean, reference.std):
        gain = min(MAX_GAIN, rs / s) if s > 1e-3 else 1.0
        parts.append(f"{name}='clip((val-{m:.3f})*{gain:.5f}+{rm:.3f},0,255)'")
    return "lutrgb=" + ":".join(parts)
