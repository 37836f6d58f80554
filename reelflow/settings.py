"""All configuration in one place: environment variables prefixed ``REELFLOW_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELFLOW_", extra="ignore")

    storage: str = Field(
        default="./.reelflow/store",
        description="Clip store: a local folder (default) or s3://bucket/prefix.",
    )
    work_dir: Path = Field(
        default=Path("./.reelflow/work"),
        description="Scratch space for engine output and stitching.",
    )
    ffmpeg: str | None = Field(default=None, description="ffmpeg binary; default: imageio-ffmpeg's.")
    ffmpeg_timeout: float = Field(default=1800.0, description="Seconds before one ffmpeg run is killed.")
    max_words_per_second: float = Field(
        default=3.0, description="Speech faster than this for a clip's duration gets a warning."
    )
    clip_retries: int = Field(default=3, ge=0, description="Retries of a transient engine failure.")
    retry_backoff: float = Field(default=2.0, ge=0, description="Base seconds of the exponential backoff.")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    """Re-read the environment (tests and long-lived workers after an env change)."""
    get_settings.cache_clear()
    return get_settings()
