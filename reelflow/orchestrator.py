"""Which way ``reelflow render`` runs a render: as a Prefect flow run, or in this process.

``REELFLOW_ORCHESTRATOR``: ``prefect``, ``in-process``, or ``auto`` (the default): Prefect when a
Prefect API is configured (``PREFECT_API_URL`` in the environment or in the active Prefect
profile), so a team's server and UI see every render, or when clips are served by task
workers; otherwise in this process, where a temporary Prefect server would only cost seconds
per render.
Found without importing Prefect.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

from reelflow.errors import InputError
from reelflow.settings import get_settings


def _profiles_path() -> Path:
    if path := os.environ.get("PREFECT_PROFILES_PATH"):
        return Path(path).expanduser()
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    return home / "profiles.toml"


def configured_api_url() -> str | None:
    """PREFECT_API_URL: Prefect's own setting once Prefect is imported (it sees temporary
    settings too), else the environment's, else the active profile's in profiles.toml."""
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        return PREFECT_API_URL.value() or None
    if "PREFECT_API_URL" in os.environ:
        return os.environ["PREFECT_API_URL"] or None
    try:
        profiles = tomllib.loads(_profiles_path().read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    profile = profiles.get("profiles", {}).get(active, {})
    value = profile.get("PREFECT_API_URL") if isinstance(profile, dict) else None
    return str(value) if value else None


def uses_prefect() -> bool:
    """Does ``reelflow render`` run as a Prefect flow run here? (Clips served by task workers,
    ``REELFLOW_CLIP_WORKERS=task-workers``, need one.)"""
    settings = get_settings()
    if settings.orchestrator == "auto":
        return configured_api_url() is not None or settings.clip_workers == "task-workers"
    return settings.orchestrator == "prefect"


def check_clip_workers() -> None:
    """A Prefect render whose clips go to task workers needs a Prefect API the workers share:
    without one, the render's temporary server is private to it and no worker could ever
    serve its clips (it waited for ever). Refused before any work (exit 2)."""
    if get_settings().clip_workers == "task-workers" and configured_api_url() is None:
        raise InputError("REELFLOW_CLIP_WORKERS=task-workers needs PREFECT_API_URL: `reelflow worker` serves clips "
                         "from a Prefect server, and a render without one starts a temporary server no worker "
                         "can reach",
                         hint="start a server (prefect server start) and set PREFECT_API_URL for the render and "
                              "its workers, or unset REELFLOW_CLIP_WORKERS")
