"""All configuration in one place: environment variables prefixed ``REELFLOW_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr


class Settings(BaseModel):
    """Read from ``REELFLOW_<FIELD>`` variables (``reelflow.env_settings``): use :func:`get_settings`."""

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
    review_timeout: float = Field(default=86400, gt=0, allow_inf_nan=False, description="Seconds a review waits for an answer.")
    review_on_timeout: Literal["proceed", "fail"] = Field(
        default="proceed", description="Nobody answered the review: go on with the current picks, or fail the render.")
    review_poll: float = Field(default=5, gt=0, allow_inf_nan=False, description="Seconds between checks of a paused review.")
    ffmpeg: str | None = Field(default=None, description="ffmpeg binary; default: imageio-ffmpeg's.")
    ffmpeg_timeout: float = Field(default=1800.0, gt=0, allow_inf_nan=False,
                                  description="Seconds before one ffmpeg run is killed.")
    max_words_per_second: float = Field(
        default=3.0, gt=0, allow_inf_nan=False, description="Speech faster than this for a clip's duration gets a warning."
    )
    clip_retries: int = Field(default=3, ge=0, le=100, description="Retries of a transient engine failure.")
    retry_backoff: float = Field(default=2.0, ge=0, le=3600, allow_inf_nan=False,
                                 description="Base seconds of the exponential backoff.")

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
    storage_retry_seconds: float = Field(default=120, ge=0, allow_inf_nan=False, description="How long storage faults are retried.")

    # Engines (each engine's own settings live in engines/settings.py; these override declarations)
    quota_wait_max: float = Field(default=120, ge=0, allow_inf_nan=False, description="Wait out a quota reset this short; else fall back.")
    clip_budget: float = Field(default=3600, gt=0, allow_inf_nan=False, description="Total seconds per clip, retries and fallbacks included.")
    engine_concurrency: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="Clips at once per engine, over what each engine declares (Prefect global concurrency limits).",
    )
    orchestrator: Literal["auto", "prefect", "in-process"] = Field(
        default="auto",
        description="How `reelflow render` runs: as a Prefect flow run (the UI shows it; without "
                    "PREFECT_API_URL a temporary server is started), or in this process without Prefect "
                    "(fastest; same store, catalog and retries). auto: Prefect when an API URL is configured.",
    )
    clip_workers: Literal["in-process", "task-workers"] = Field(
        default="in-process",
        description="Where clips are made: in the flow's process, or by `reelflow worker` task workers "
                    "(Prefect background tasks; one per GPU, sharing the store and the catalog).",
    )
    worker_wait: float = Field(
        default=30, gt=0, allow_inf_nan=False,
        description="Seconds a task-workers render waits with no `reelflow worker` picking up its clips "
                    "before it says so on stderr (it keeps waiting).",
    )
    allow_http_hosts: str = Field(
        default="localhost,127.0.0.1,::1",
        description="Hosts an engine answer may link to with plain http (comma-separated); all others need https.",
    )
    engine_limits: Literal["auto", "process", "global"] = Field(
        default="auto",
        description="Where engine limits are kept: in this process (no database round trip), or as Prefect "
                    "global concurrency limits shared by every process (auto: global for GPU slots and task "
                    "workers, in-process otherwise).",
    )
    gpu: int = Field(default=0, ge=0, description="GPU index: the local engine's Prefect limit is gpu:<index>.")

    # Catalog of renders, clips and attempts
    database_url: str = Field(default="sqlite:///./.reelflow/catalog.db", description="SQLAlchemy URL.")

    # Cost estimates: dollars per engine-second, and engine-seconds per second of clip
    prices: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="JSON: dollars per engine-second, over each engine's declared price (an 80 GB GPU at $2.74/h: 0.00076).",
    )
    speed: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="Engine-seconds per clip-second when the catalog has no history yet, over the declared speed.",
    )


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment; a bad ``REELFLOW_*`` value is one InputError line
    naming the variable (exit 2 in the CLI), not a validation traceback."""
    from reelflow.env_settings import from_environment

    return from_environment(Settings)


def reload_settings() -> Settings:
    """Re-read the environment (tests and long-lived workers after an env change)."""
    get_settings.cache_clear()
    return get_settings()
