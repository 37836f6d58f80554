"""The output profile every clip is normalised to."""

from __future__ import annotations

import hashlib
import json
import math
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def exact_rate(fps: float) -> Fraction:
    """A frame rate as an exact fraction. The NTSC rates, written as people write them (23.976,
    23.98, 23.97, 29.97, 59.94, 119.88), are n*1000/1001; ``Fraction(29.97).limit_denominator(1001)``
    alone gave 2997/100, which no editor, player or timecode knows. Cut to two decimals rather
    than rounded, as cameras and players label 23.976 ("23.97"), counts too."""
    nominal = round(fps * 1.001)
    ntsc = nominal / 1.001
    if abs(fps - round(fps)) > 1e-6 and (abs(fps - ntsc) < 0.005 or abs(fps - math.floor(ntsc * 100) / 100) < 1e-6):
        return Fraction(nominal * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


# The sample rates the delivered AAC track can carry (ffmpeg's encoder tops out at 96 kHz: 192000
# was resampled to 96000 without a word).
AacRate = Literal[8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000]


class OutputProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(576, ge=16, le=7680, multiple_of=2)
    height: int = Field(896, ge=16, le=4320, multiple_of=2)
    fps: float = Field(24, ge=1, le=120)
    audio_rate: AacRate = 48000
    fit: Literal["pad", "crop"] = "pad"
    loudness: float = Field(-14.0, ge=-70, le=-5, description="Integrated loudness target, LUFS.")
    true_peak: float = Field(-1.0, ge=-9, le=0, description="True peak ceiling, dBTP.")

    @property
    def rate(self) -> Fraction:
        """fps as an exact fraction (29.97 -> 30000/1001; see :func:`exact_rate`)."""
        return exact_rate(self.fps)

    def frames_for(self, seconds: float) -> int:
        return max(1, round(seconds * self.rate))

    def samples_for(self, frames: int) -> int:
        return round(frames * self.audio_rate / self.rate)

    def video_key(self) -> str:
        """Digest of what decides a normalised clip's bytes (not loudness: that is applied later)."""
        fields = self.model_dump(include={"width", "height", "fps", "audio_rate", "fit"})
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
