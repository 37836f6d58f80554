"""Shared fixtures: one Prefect harness per session, an isolated store per test,
test media made by ffmpeg's own sources (no committed binaries)."""

from __future__ import annotations

import os

# Before anything imports prefect or reads settings.
os.environ.update(
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    DO_NOT_TRACK="1",
    GRADIO_ANALYTICS_ENABLED="False",
    HF_HUB_OFFLINE="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    REELFLOW_RETRY_BACKOFF="0.05",
    PREFECT_LOGGING_LEVEL="WARNING",
)

import shutil
from pathlib import Path

import pytest
import yaml

from reelflow.settings import reload_settings

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "projects" / "demo"


@pytest.fixture(scope="session")
def prefect_harness():
    """A throwaway Prefect API for the whole session (entering one takes seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def isolated_storage(tmp_path, monkeypatch):
    """Every test gets its own store and work folder."""
    monkeypatch.setenv("REELFLOW_STORAGE", str(tmp_path / "store"))
    monkeypatch.setenv("REELFLOW_WORK_DIR", str(tmp_path / "work"))
    reload_settings()
    yield tmp_path / "store"
    reload_settings()


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    """A writable copy of projects/demo."""
    dest = tmp_path / "projects" / "demo"
    shutil.copytree(DEMO, dest)
    return dest


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture
def small_project(tmp_path) -> Path:
    """Three short scenes at a small size: fast enough for fault-injection tests."""
    folder = tmp_path / "projects" / "small"
    (folder / "characters").mkdir(parents=True)
    shutil.copy(DEMO / "characters" / "max.png", folder / "characters")
    spec = {
        "title": "Small",
        "output": {"width": 160, "height": 240, "fps": 12},
        "characters": {"max": {"name": "Max", "image": "characters/max.png"}},
        "scenes": [{"id": f"s{i}", "character": "max", "action": "waving", "speech": f"Line {i}.",
                    "atmosphere": "wind", "duration": 1.5} for i in range(3)],
    }
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder
