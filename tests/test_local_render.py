"""The render without Prefect (the CLI's default when no Prefect API is configured): the same
store, catalog, retries and fallbacks as the flow, and Prefect never imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import engines
from flows.local import render_local
from media.probe import probe
from reelflow.settings import reload_settings
from storage.catalog import open_catalog
from tests.engines_fake import FaultyEngine, transient

REPO = Path(__file__).resolve().parents[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PYTHONPATH": str(REPO), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


@pytest.mark.slow
def test_cli_render_without_a_prefect_api_runs_in_process_and_never_imports_prefect(small_project, tmp_path):
    home = tmp_path / "prefect-home"                     # no profile naming an API
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reelflow", "render", str(small_project)],
                          capture_output=True, text=True, cwd=tmp_path, env=_env(PREFECT_HOME=str(home)),
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    video = Path(proc.stdout.strip().splitlines()[-1])
    assert probe(video, count_frames=True).video_frames == 3 * 18
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "prefect" not in imported and "reelflow" in imported
    assert "3 clip(s) generated" in proc.stderr


@pytest.mark.slow
def test_transient_faults_are_retried_in_process_with_the_flows_policy(small_project, monkeypatch):
    monkeypatch.setenv("REELFLOW_RETRY_BACKOFF", "0.01")
    monkeypatch.setenv("REELFLOW_CLIP_RETRIES", "2")
    reload_settings()
    flaky = FaultyEngine("flaky", transient(), fail_times=2)
    engines.register("flaky", lambda model=None, params=None: flaky)
    try:
        result = render_local(str(small_project), engine="flaky")
    finally:
        engines.unregister("flaky")
    assert sorted(flaky.calls) == sorted(["s0", "s1", "s2"] * 3)    # two failures and a success each
    attempts = open_catalog().attempts(render_id=result.render_id)
    assert sorted(a.status for a in attempts) == ["failed"] * 6 + ["generated"] * 3
    assert result.generated == 3


@pytest.mark.slow
def test_a_scene_out_of_retries_falls_back_down_its_chain(small_project, monkeypatch):
    monkeypatch.setenv("REELFLOW_RETRY_BACKOFF", "0")
    monkeypatch.setenv("REELFLOW_CLIP_RETRIES", "1")
    reload_settings()
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["engine"] = {"name": "down", "fallback": ["animatic"]}
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec))
    down = FaultyEngine("down", transient())
    engines.register("down", lambda model=None, params=None: down)
    try:
        result = render_local(str(small_project))
    finally:
        engines.unregister("down")
    assert len(down.calls) == 6                                      # first try and one retry per scene
    assert all(c.engine == "animatic" for c in result.clips)
    assert all(c.attempts[0] == "down: TransientEngineError" for c in result.clips)


@pytest.mark.slow
def test_review_without_a_terminal_or_prefect_is_bad_input(small_project):
    from tasks.review import ReviewUnanswerable

    with pytest.raises(ReviewUnanswerable, match="reelflow render --review"):
        render_local(str(small_project), review=True)


@pytest.mark.parametrize("env, profile, expected", [
    ({}, None, "False"),
    ({"PREFECT_API_URL": "http://127.0.0.1:4200/api"}, None, "True"),
    ({}, 'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://10.0.0.5:4200/api"\n', "True"),
    ({"REELFLOW_ORCHESTRATOR": "in-process", "PREFECT_API_URL": "http://127.0.0.1:4200/api"}, None, "False"),
    ({"REELFLOW_ORCHESTRATOR": "prefect"}, None, "True"),
])
def test_the_orchestrator_follows_the_prefect_api_setting(tmp_path, env, profile, expected):
    home = tmp_path / "home"
    home.mkdir()
    if profile:
        (home / "profiles.toml").write_text(profile)
    code = "import sys; from reelflow.orchestrator import uses_prefect; print(uses_prefect(), 'prefect' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=_env(PREFECT_HOME=str(home), **env))
    assert proc.stdout.split() == [expected, "False"], proc.stderr


def test_a_machine_slot_is_held_by_one_process_at_a_time(tmp_path):
    """Two renders on one machine without a Prefect server share a GPU through lock files."""
    script = textwrap.dedent(f"""
        import sys, time
        from tasks.limits import machine_slot
        with machine_slot("gpu:test-{tmp_path.name}", 1):
            start = time.time(); time.sleep(0.6); end = time.time()
        print(start, end)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=_env())
             for _ in range(2)]
    spans = sorted(tuple(map(float, p.communicate(timeout=60)[0].split())) for p in procs)
    assert spans[0][1] <= spans[1][0] + 0.01                         # one after the other, never both


def test_machine_slot_threads_of_one_process_queue_too():
    from concurrent.futures import ThreadPoolExecutor

    from tasks.limits import machine_slot

    held, most = [0], [0]

    def work(_):
        with machine_slot(f"gpu:threads-{os.getpid()}", 2):
            held[0] += 1
            most[0] = max(most[0], held[0])
            time.sleep(0.05)
            held[0] -= 1

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(12)))
    assert most[0] == 2


def render_with_spy(project: Path):
    """``reelflow render --local`` with every scene on a "spy" engine: (the CLI's result, the spy)."""
    from typer.testing import CliRunner

    from reelflow.cli import app

    spy = FaultyEngine("spy", transient(), fail_times=0)
    engines.register("spy", lambda model=None, params=None: spy)
    try:
        return CliRunner().invoke(app, ["render", "--local", "--engine", "spy", str(project)]), spy
    finally:
        engines.unregister("spy")


def test_an_unreachable_catalog_stops_an_in_process_render_before_any_engine_call(small_project, monkeypatch):
    """The catalog is opened beside the render (tasks.catalog.RenderLog), but the render waits
    for it before paying an engine: exit 3, the password masked, no clip made, nothing published."""
    from reelflow.settings import get_settings
    from tests.servers import free_port

    url = f"postgresql+psycopg://reel:hunter2-db-password@127.0.0.1:{free_port()}/catalog"
    monkeypatch.setenv("REELFLOW_DATABASE_URL", url)
    reload_settings()
    result, spy = render_with_spy(small_project)
    assert result.exit_code == 3, result.output
    assert "catalog database postgresql+psycopg://reel:***@127.0.0.1:" in result.stderr
    assert "hunter2" not in result.output
    assert spy.calls == []
    assert not (Path(get_settings().storage) / "renders").exists()


def test_an_unreachable_catalog_stops_a_footage_render_before_its_video_is_published(tmp_path, monkeypatch):
    """No engine to pay: the catalog is waited for only before the stitch publishes, and then
    stops the render all the same: exit 3, no video, nothing in the render index."""
    from typer.testing import CliRunner

    from bench.workload import footage_production
    from reelflow.cli import app
    from reelflow.settings import get_settings
    from tests.servers import free_port

    folder = footage_production(tmp_path / "projects" / "cuts", clips=2, seconds=1.0, width=64, height=96,
                                fps=12, small=True)
    monkeypatch.setenv("REELFLOW_DATABASE_URL", f"postgresql+psycopg://reel:hunter2@127.0.0.1:{free_port()}/c")
    reload_settings()
    result = CliRunner().invoke(app, ["render", "--local", str(folder)])
    assert result.exit_code == 3, result.output
    assert "hunter2" not in result.output
    renders = Path(get_settings().storage) / "renders"
    assert not list(renders.rglob("final.mp4")) and not (renders / "index").exists()


def test_a_catalog_that_refuses_the_renders_row_stops_it_before_any_engine_call(small_project, monkeypatch):
    """Opening is not enough: the render's own row must be in (here a SQLite catalog with every
    table, written with sqlite3, whose trigger refuses it). Exit 3, no clip made, no video."""
    import sqlite3

    from reelflow.settings import get_settings
    from storage.catalog import Catalog

    Catalog(get_settings().database_url)
    with sqlite3.connect(get_settings().database_url.removeprefix("sqlite:///")) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON renders BEGIN SELECT RAISE(ABORT, 'renders are closed'); END")
    result, spy = render_with_spy(small_project)
    assert result.exit_code == 3, result.output
    assert "renders are closed" in result.stderr and "Traceback" not in result.output
    assert spy.calls == []
    renders = Path(get_settings().storage) / "renders"            # the storyboard, drawn first, may be there
    assert not list(renders.rglob("final.mp4")) and not (renders / "index").exists()


def test_catalog_rows_of_an_in_process_render_are_all_written_when_it_returns(small_project):
    result = render_local(str(small_project))
    catalog = open_catalog()
    row = next(r for r in catalog.renders("small") if r.id == result.render_id)
    assert row.status == "completed" and row.generated == 3 and row.video_key == result.video_key
    assert sorted(a.status for a in catalog.attempts(render_id=result.render_id)) == ["generated"] * 3
    again = render_local(str(small_project), force=True)
    assert sorted(a.status for a in catalog.attempts(render_id=again.render_id)) == ["reused"] * 3


@pytest.mark.parametrize("catalog_file", ["new", "existing"])
def test_a_render_log_writes_its_rows_in_order_and_attempts_in_few_transactions(tmp_path, monkeypatch, catalog_file):
    """A new catalog file is created by the ORM; an existing one is written with sqlite3."""
    from storage.catalog import Catalog
    from storage.catalog_sqlite import LiteCatalog
    from tasks.catalog import RenderLog

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    transactions = []
    if catalog_file == "existing":
        Catalog(url)
        original = LiteCatalog.add_attempts
        monkeypatch.setattr(LiteCatalog, "add_attempts", lambda self, rows: transactions.append(len(rows)) or
                            original(self, rows))
    else:
        original = Catalog.record_attempts
        monkeypatch.setattr(Catalog, "record_attempts", lambda self, rows: transactions.append(len(rows)) or
                            original(self, rows))
    log = RenderLog(url)
    log.start_render("r1", "p", "P", str(tmp_path), "animatic", 50)
    for i in range(50):
        log.add_attempt(render_id="r1", project="p", scene=f"s{i}", status="generated", cost=0.5,
                        clip_key=f"clips/{i}.mp4")
    log.finish_render("r1", status="completed", generated=50)
    log.close()
    catalog = open_catalog(url)
    row = catalog.renders("p")[0]
    assert row.status == "completed" and row.cost == 25.0            # the attempts were in before it closed
    assert [a.scene for a in catalog.attempts(render_id="r1")] == [f"s{i}" for i in range(50)]
    assert sum(transactions) == 50 and len(transactions) < 50
