"""All configuration in one place: environment variables prefixed ``REELFLOW_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
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
    public_url: str | None = Field(
        default=None,
        description="Where `reelflow serve` (or a public bucket/CDN) is reached, e.g. http://host:8765: "
                    "artifact links become <public_url>/<key>.",
    )
    ffmpeg: str | None = Field(default=None, description="ffmpeg binary; default: imageio-ffmpeg's.")
    ffmpeg_timeout: float = Field(default=1800.0, description="Seconds before one ffmpeg run is killed.")
    max_words_per_second: float = Field(
        default=3.0, description="Speech faster than this for a clip's duration gets a warning."
    )
    clip_retries: int = Field(default=3, ge=0, description="Retries of a transient engine failure.")
    retry_backoff: float = Field(default=2.0, ge=0, description="Base seconds of the exponential backoff.")

    # Object storage (used when storage is s3://bucket/prefix)
    s3_endpoint: str = Field(default="s3.amazonaws.com", description="host:port or URL of the S3 API.")
    s3_access_key: SecretStr | None = Field(default=None, description="Or the Prefect Secret block 'reelflow-s3-access-key'.")
    s3_secret_key: SecretStr | None = Field(default=None, description="Or the Prefect Secret block 'reelflow-s3-secret-key'.")
    s3_region: str | None = Field(default=None, description="us-east-1, auto for Cloudflare R2, ...")
    s3_secure: bool | None = Field(default=None, description="HTTPS; default from the endpoint URL, else true.")
    s3_public_endpoint: str | None = Field(default=None, description="Endpoint that presigned links are made for.")
    s3_link_expiry_hours: float = Field(default=168, gt=0, le=168, description="Lifetime of presigned links.")
    s3_retention_days: int | None = Field(default=None, ge=1, description="Expire clips/ after this many days.")
    s3_part_size_mb: int = Field(default=16, ge=5, le=5120, description="Multipart upload part size.")
    storage_retry_seconds: float = Field(default=120, ge=0, description="How long storage faults are retried.")

    # Remote engines
    hf_space: str = Field(default="alexnasa/Ovi-ZEROGPU", description="Space id or URL for the hf-space engine.")
    hf_timeout: float = Field(default=900, gt=0, description="Seconds to wait for one Space job.")
    runpod_endpoint: str | None = Field(default=None, description="Endpoint id for the runpod engine.")
    runpod_timeout: float = Field(default=900, gt=0, description="Seconds before a RunPod job is cancelled.")
    runpod_poll: float = Field(default=2.0, gt=0, description="Longest pause between status polls.")
    quota_wait_max: float = Field(default=120, ge=0, description="Wait out a quota reset this short; else fall back.")
    clip_budget: float = Field(default=3600, gt=0, description="Total seconds per clip, retries and fallbacks included.")
    engine_concurrency: dict[str, int] = Field(
        default_factory=lambda: {"hf-space": 1, "runpod": 4, "local": 1},
        description="Clips at once per engine (Prefect global concurrency limits reelflow-engine-<name>).",
    )
    inline_limit_mb: float = Field(default=7.0, gt=0, description="Inputs above this go as presigned links, not base64.")

    # Local GPU engine
    local_model: str | None = Field(default=None, description="Model folder for the local engine.")
    local_params: dict = Field(default_factory=dict, description='JSON defaults, e.g. {"steps": 30, "height": 480}.')
    gpu: int = Field(default=0, ge=0, description="GPU index: the local engine's Prefect limit is gpu:<index>.")

    # Catalog of renders, clips and attempts
    database_url: str = Field(default="sqlite:///./.reelflow/catalog.db", description="SQLAlchemy URL.")

    # Cost estimates: dollars per engine-second, and engine-seconds per second of clip
    prices: dict[str, float] = Field(
        default_factory=lambda: {"animatic": 0.0, "local": 0.0, "hf-space": 0.0, "runpod": 0.00076},
        description='JSON, e.g. {"runpod": 0.00076} (an 80 GB GPU at $2.74/h).',
    )
    speed: dict[str, float] = Field(
        default_factory=lambda: {"animatic": 0.5, "local": 20.0, "hf-space": 15.0, "runpod": 12.0},
        description="Engine-seconds per clip-second when the catalog has no history yet.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    """Re-read the environment (tests and long-lived workers after an env change)."""
    get_settings.cache_clear()
    return get_settings()
