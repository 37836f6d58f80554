"""Hostile productions and engine answers, through the real CLI (issue 9's acceptance suite).

Every case is generated at run time (the table and the builder: ``tests/hostile_cases.py``), in
a fresh production folder next to an ``outside/`` folder holding a canary. Each must end with exit 2 (bad input) or 1 (failed render), exactly one
line on stderr (plus an optional ``hint:`` line), no traceback, ``validate`` within 5 s,
nothing opened under ``outside/`` (an audit hook on ``open``) and no canary text in any
output, nothing written to the store, and no 8-character fragment of a secret anywhere:
outputs, store, catalog database and, for renders, Prefect's database.

Validate cases run in-process through Typer's runner (fast); render cases run the CLI in a
subprocess (``tests/hostile_cli.py``: the same audit hook, plus a leaky test engine) and
are marked slow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelflow.cli import app
from reelflow.settings import reload_settings
from tests.conftest import DEMO, REPO
from tests.hostile_cases import CANARY, CASES, HLS_PLAYLIST, SECRETS, Prod, make_media

runner = CliRunner()

# -- the audit hook (in-process cases) -------------------------------------------------------

_WATCH: dict[str, object] = {"dir": None, "hits": []}


def _audit(event: str, args: tuple) -> None:
    watch = _WATCH["dir"]
    if watch and event == "open" and args and isinstance(args[0], (str, os.PathLike)):
        path = os.fspath(args[0])
        if os.path.realpath(path).startswith(watch):
            _WATCH["hits"].append(path)


sys.addaudithook(_audit)

# -- running and checking --------------------------------------------------------------------

def fragments(texts: list[str]) -> list[str]:
    """8-character pieces of any secret found in ``texts``."""
    found = []
    for value in SECRETS.values():
        for i in range(len(value) - 7):
            piece = value[i:i + 8]
            if any(piece in t for t in texts):
                found.append(piece)
    return found


def stored_texts(root: Path) -> list[str]:
    """Every file under ``root`` (store, catalog, Prefect home) as text, for leak checks."""
    texts = []
    for path in root.rglob("*") if root.exists() else []:
        if path.is_file() and not path.is_symlink():
            texts.append(path.read_bytes().decode("latin-1"))
    return texts


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("hint:")]


@pytest.fixture(scope="module")
def hostile_media(tmp_path_factory) -> Path:
    return make_media(tmp_path_factory.mktemp("hostile-media"))


@pytest.fixture
def secrets_env(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    reload_settings()


@pytest.fixture
def prod(tmp_path, hostile_media) -> Prod:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(CANARY)
    (outside / "evil.j2").write_text(f"{{% macro x() %}}{CANARY}{{% endmacro %}}{CANARY}")
    shutil.copy(hostile_media / "line.wav", outside / "line.wav")
    folder = tmp_path / "proj"
    folder.mkdir()
    shutil.copy(hostile_media / "max.png", folder / "characters.png")   # not used; keeps the folder non-empty
    p = Prod(folder, outside, hostile_media)
    p.copy("characters/max.png", "max.png")
    return p


def test_there_are_at_least_a_hundred_cases():
    assert len(CASES) >= 100 and len({name for name, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("name,build", CASES, ids=[name for name, _ in CASES])
def test_validate_refuses_with_one_line(prod, secrets_env, isolated_storage, name, build):
    build(prod)
    prod.write()
    _WATCH.update(dir=os.path.realpath(prod.outside), hits=[])
    started = time.monotonic()
    try:
        result = runner.invoke(app, ["validate", str(prod.folder)])
    finally:
        elapsed = time.monotonic() - started
        hits, _WATCH["dir"] = list(_WATCH["hits"]), None
    everything = result.stdout + result.stderr
    assert result.exit_code == 2, everything
    assert "Traceback" not in everything and result.exception is None or isinstance(result.exception, SystemExit)
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert elapsed < 5, f"validate took {elapsed:.1f} s"
    assert hits == [] and CANARY not in everything
    assert not isolated_storage.exists() or not any(isolated_storage.rglob("*"))
    assert fragments([everything]) == []


@pytest.mark.parametrize("folder_name", ["My Film", "café", "日本の映画"])
def test_folder_names_that_cannot_be_storage_keys_get_a_safe_slug_up_front(tmp_path, folder_name):
    folder = tmp_path / folder_name
    shutil.copytree(DEMO, folder)
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
    slug = result.stdout.split(":")[0]
    assert slug.isascii() and " " not in slug and slug == slug.lower()


def test_two_folders_never_share_a_slug():
    """`My Show!` and `my-show` were both `my-show`: one history, one renders folder, mixed."""
    from projects.loader import safe_slug

    names = ["my-show", "My Show!", "my show", "MY-SHOW", "a" * 48, "a" * 49, "a" * 60, "a" * 48 + "b", "日本", "映画"]
    slugs = [safe_slug(n) for n in names]
    assert len(set(slugs)) == len(names), slugs
    assert slugs[0] == "my-show" and slugs[4] == "a" * 48              # a slug stays itself
    assert all(len(s) <= 48 and re.fullmatch(r"[a-z0-9][a-z0-9_-]*", s) for s in slugs), slugs


def test_a_too_long_speech_line_names_the_field_and_its_line(prod):
    prod.data["template"] = prod.file("t.j2", "{{ scene.action }} {% for i in range(3) %}{{ scene.speech|speech }}{% endfor %}")
    prod.scene["speech"] = "word " * 190
    prod.write()
    result = runner.invoke(app, ["validate", str(prod.folder)])
    assert result.exit_code == 2
    line = error_lines(result.stderr)[0]
    assert "project.yaml:" in line and ": scenes[0].speech: too long" in line


# -- renders: engine answers and echoed secrets (subprocess, slow) ---------------------------

RENDER_CASES = {
    "leaky-error": ("leaky", None),
    "runpod-error-echoes-key": ("runpod", "error:" + "x" * 190 + " auth failed for " + SECRETS["RUNPOD_API_KEY"] + " " + "y" * 300),
    "runpod-file-link": ("runpod", "answer:" + json.dumps({"video_url": "file://OUTSIDE/secret.txt"})),
    "runpod-http-link": ("runpod", "answer:" + json.dumps({"data": [{"url": "http://evil.example/x.mp4"}]})),
    "runpod-local-path": ("runpod", "answer:" + json.dumps({"url": "OUTSIDE/secret.txt"})),
    "runpod-playlist-answer": ("runpod", "answer:" + json.dumps({"video_base64": "PLAYLIST"})),
}


@pytest.fixture(scope="module")
def runpod_server():
    from tests.remote_servers import RunPodServer

    with RunPodServer(SECRETS["RUNPOD_API_KEY"]) as server:
        yield server


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RENDER_CASES))
def test_render_fails_with_one_line_and_leaks_nothing(prod, runpod_server, prefect_harness, tmp_path, name):
    import base64

    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL

    engine, fault = RENDER_CASES[name]
    if fault:
        playlist = base64.b64encode(HLS_PLAYLIST.format(prod.outside).encode()).decode()
        fault = fault.replace("OUTSIDE", str(prod.outside)).replace("PLAYLIST", playlist)
        runpod_server.faults.jobs[:] = [fault] * 8
    prod.data["engine"] = ({"name": "leaky"} if engine == "leaky" else
                           {"name": "runpod", "model": "720x720_5s", "params": {"endpoint": "ovi"}})
    prod.write()
    log = tmp_path / "opened.log"
    prefect_db = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    env = {**{k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_LEVEL"}, **SECRETS, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PREFECT_API_URL": PREFECT_API_URL.value(), "REELFLOW_RETRY_BACKOFF": "0", "REELFLOW_CLIP_RETRIES": "1",
           "RUNPOD_ENDPOINT_BASE_URL": runpod_server.base_url, "HOSTILE_WATCH": str(prod.outside),
           "HOSTILE_WATCH_LOG": str(log), "COLUMNS": "200",
           "HOSTILE_LEAKY": f"401 for token {SECRETS['HF_TOKEN']} with key {SECRETS['REELFLOW_S3_SECRET_KEY']} " + "z" * 300}
    result = subprocess.run([sys.executable, "-m", "tests.hostile_cli", "render", str(prod.folder)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    everything = result.stdout + result.stderr
    assert result.returncode == 1, everything
    assert "Traceback" not in everything
    # The live per-scene view draws its table and bars above; the failure itself is one line.
    failures = [line for line in result.stderr.splitlines() if "got no clip" in line]
    assert len(failures) == 1 and result.stderr.rstrip().endswith(failures[0].split("render failed")[-1]), result.stderr
    assert not log.exists(), log.read_text()
    assert CANARY not in everything
    store = Path(os.environ.get("REELFLOW_STORAGE", tmp_path / "store"))
    assert not list(store.glob("clips/*")) and not list(store.glob("renders/*/*/final.mp4"))
    catalog = Path(os.environ["REELFLOW_DATABASE_URL"].removeprefix("sqlite:///"))
    databases = [p for p in prefect_db.parent.glob(prefect_db.name + "*") if p.is_file()]
    texts = [everything, *stored_texts(tmp_path), *(p.read_bytes().decode("latin-1") for p in databases)]
    assert catalog.exists() and databases                       # the databases were really read
    assert fragments(texts) == []


def test_the_audit_hook_and_the_fragment_check_really_bite(prod):
    _WATCH.update(dir=os.path.realpath(prod.outside), hits=[])
    try:
        (prod.folder / "peek").symlink_to(prod.outside / "secret.txt")
        assert (prod.folder / "peek").read_text() == CANARY
    finally:
        hits, _WATCH["dir"] = list(_WATCH["hits"]), None
    assert hits == [str(prod.folder / "peek")]
    assert fragments([f"...{SECRETS['HF_TOKEN'][5:13]}..."]) == [SECRETS["HF_TOKEN"][5:13]]
