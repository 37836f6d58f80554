"""The reelflow CLI end to end through Typer's runner (real flow, real ffmpeg)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from media.probe import probe
from reelflow.cli import app

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.mark.slow
def test_render_prints_the_video_path_last_and_copies_out(small_project, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", str(small_project), "--out", str(out)])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last == str(out / "final.mp4")
    assert probe(last).duration == pytest.approx(4.5, abs=0.1)
    names = {p.name for p in out.iterdir()}
    assert {"contact-sheet.png", "final.mp4", "final.srt", "final.otio", "final.edl"} <= names, names


@pytest.mark.slow
def test_render_without_out_prints_the_stored_video(small_project, isolated_storage):
    result = CliRunner().invoke(app, ["render", str(small_project), "--scene", "s0"])
    assert result.exit_code == 0, result.output
    last = Path(result.stdout.strip().splitlines()[-1])
    assert last.is_file() and last.is_relative_to(isolated_storage.resolve())
    assert "1 clip(s) generated" in result.output


@pytest.mark.parametrize("command", ["render", "storyboard", "cost", "prompts"])
def test_an_unknown_engine_option_is_bad_input_exit_2(small_project, command, isolated_storage):
    result = CliRunner().invoke(app, [command, str(small_project), "--engine", "nope"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("--engine: unknown engine 'nope'") and "known engines: animatic" in result.output
    assert "Traceback" not in result.output


def test_an_out_folder_that_cannot_be_is_bad_input_before_any_work(small_project, tmp_path, isolated_storage):
    """It used to be found out after the render was paid for: a NotADirectoryError, exit 1."""
    (tmp_path / "afile").write_text("")
    result = CliRunner().invoke(app, ["render", str(small_project), "--out", str(tmp_path / "afile" / "x")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].endswith("afile/x: cannot write there (Not a directory)")
    assert not isolated_storage.exists()                  # nothing was rendered


def test_a_folder_in_the_way_of_an_output_is_bad_input_before_any_work(small_project, tmp_path, isolated_storage):
    """A folder named final.mp4 inside --out ended a paid render in a traceback, with the other
    files already copied; storyboard --out left its part file behind at every try."""
    (tmp_path / "out" / "final.mp4").mkdir(parents=True)
    result = CliRunner().invoke(app, ["render", str(small_project), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].endswith("out: cannot write there (final.mp4 is a folder)")
    assert not isolated_storage.exists() and [p.name for p in (tmp_path / "out").iterdir()] == ["final.mp4"]

    (tmp_path / "board" / "storyboard.png").mkdir(parents=True)
    result = CliRunner().invoke(app, ["storyboard", str(small_project), "--out", str(tmp_path / "board")])
    assert result.exit_code == 2 and result.output.strip().endswith("(storyboard.png is a folder)")
    assert [p.name for p in (tmp_path / "board").iterdir()] == ["storyboard.png"]


def test_an_invalid_project_makes_no_out_folder(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "project.yaml").write_text("title: x\nscenes: []\n")
    result = CliRunner().invoke(app, ["render", str(tmp_path / "p"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_out_folder_holds_one_render_s_files(small_project, tmp_path):
    """Rendering into a folder another render used left its final.srt and final.edl beside the
    new video (a 12 fps EDL beside a 7 fps render's video)."""
    import yaml

    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["render", str(small_project), "--out", str(out)]).exit_code == 0
    assert {"final.srt", "final.edl"} <= {p.name for p in out.iterdir()}
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["output"].update(fps=7, subtitles="vtt")
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec))
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["render", str(small_project), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"final.mp4", "final.vtt", "final.otio", "contact-sheet.png",
                                               "storyboard.png", "storyboard.html", "notes.txt", ".reelflow-out.json"}
    assert probe(out / "final.mp4").fps == pytest.approx(7)


def test_render_of_an_invalid_project_exits_2_before_any_work(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "project.yaml").write_text("title: x\nscenes: []\n")
    result = CliRunner().invoke(app, ["render", str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "scenes: List should have at least 1 item" in result.output


@pytest.mark.slow
def test_cost_before_and_after_a_render_and_history(small_project, monkeypatch, tmp_path):
    from reelflow.settings import reload_settings

    monkeypatch.setenv("REELFLOW_PRICES", '{"animatic": 0.01}')
    monkeypatch.setenv("REELFLOW_SPEED", '{"animatic": 2.0}')
    reload_settings()
    runner = CliRunner()
    before = runner.invoke(app, ["cost", str(small_project)])
    assert before.exit_code == 0, before.output
    # 3 clips x 1.5 s x 2 engine-s per clip-s x $0.01
    assert before.output.strip().splitlines()[-1] == "total: 3 clip(s) to generate, 9.0 engine-seconds, $0.0900"
    assert not (tmp_path / "catalog.db").exists()      # an estimate creates no catalog

    assert runner.invoke(app, ["render", str(small_project), "--scene", "s1"]).exit_code == 0
    after = runner.invoke(app, ["cost", str(small_project)])
    assert after.output.strip().splitlines()[-1].startswith("total: 2 clip(s) to generate")
    # the 2 clips left are estimated at the speed the catalog learned, not the setting's 2.0
    assert not after.output.strip().splitlines()[-1].startswith("total: 2 clip(s) to generate, 6.0 engine-seconds")
    assert "stored" in after.output

    history = runner.invoke(app, ["history", str(small_project)])
    assert history.exit_code == 0, history.output
    assert "completed" in history.output and "s1" in history.output and "generated" in history.output
    from projects import load_project
    from tasks.plan import plan_project

    key = next(c[0].key for c in plan_project(load_project(small_project)) if c[0].scene_id == "s1")
    assert key.split("/")[1][:8] in history.output          # which clip (take) each attempt was


def test_history_of_a_project_never_rendered(small_project):
    result = CliRunner().invoke(app, ["history", str(small_project)])
    assert result.exit_code == 1 and "no renders of 'small'" in result.output


@pytest.mark.slow
def test_render_to_s3_with_out_copies_the_files_and_prints_the_local_path(small_project, moto_s3, monkeypatch, tmp_path):
    import uuid

    from tests.conftest import use_s3

    use_s3(monkeypatch, moto_s3.endpoint, f"out-{uuid.uuid4().hex[:8]}")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", str(small_project), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out / "final.mp4")
    names = {p.name for p in out.iterdir()}
    assert {"contact-sheet.png", "final.mp4", "final.srt", "final.otio", "final.edl"} <= names, names
    assert probe(out / "final.mp4").duration == pytest.approx(4.5, abs=0.1)


def _main_in_a_process(tmp_path, setup: str):
    """``reelflow render <missing>`` through ``reelflow.cli.main`` in a child, after ``setup``."""
    import os
    import subprocess
    import sys

    code = f"import sys\n{setup}\nsys.argv = ['reelflow', 'render', sys.argv[1]]\nfrom reelflow.cli import main\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing")], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                          timeout=120)


def test_the_command_exits_with_its_status_after_its_exit_handlers(tmp_path):
    """``reelflow`` skips the interpreter's teardown, not what an exit owes: atexit handlers run,
    streams are flushed, the exit status is the command's."""
    proc = _main_in_a_process(tmp_path, "import atexit\natexit.register(lambda: print('handler ran', file=sys.stderr))")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"{tmp_path / 'missing'}: no such file; a project is a folder with project.yaml",
                                        "handler ran"]


def test_the_command_exits_with_a_library_s_thread_pool_still_open(tmp_path):
    """gradio_client keeps a ThreadPoolExecutor per cached client and never closes it: its idle
    workers end only when the interpreter's shutdown tells them to, which the exit must do."""
    proc = _main_in_a_process(tmp_path, "import concurrent.futures\npool = concurrent.futures.ThreadPoolExecutor(2)\n"
                                        "pool.submit(lambda: None).result()")
    assert proc.returncode == 2


@pytest.mark.slow
def test_a_render_from_another_folder_with_the_default_settings(small_project, tmp_path):
    """The defaults are relative (./.reelflow): a user renders from their own folder, not the
    repository's. Speech was written relative to the synthesis child's folder and every scene
    with a line failed."""
    import os
    import subprocess
    import sys

    here = tmp_path / "elsewhere"
    here.mkdir()
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELFLOW_")}
    env["PYTHONPATH"] = str(repo)
    proc = subprocess.run([sys.executable, "-m", "reelflow", "render", str(small_project)], cwd=here, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    video = Path(proc.stdout.strip().splitlines()[-1])
    assert video.is_relative_to(here / ".reelflow" / "store") and video.is_file()
    assert probe(video).audio_duration


@pytest.mark.parametrize("option", [["--scene", "nope"], ["--redo", "nope"], ["--scene", "s0", "--redo", "s1"]])
def test_a_mistyped_scene_is_refused_before_a_prefect_server_is_started(small_project, isolated_storage, monkeypatch,
                                                                        option):
    """It used to start the temporary server (seconds) and print Prefect's shutdown warning first."""
    def no_server(*args, **kwargs):
        raise AssertionError("a Prefect server was started for a mistyped option")

    monkeypatch.setattr("reelflow.prefect_api.temporary_server", no_server)
    result = CliRunner().invoke(app, ["render", "--prefect", str(small_project), *option])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and ("unknown scene id(s) 'nope'" in lines[0] or "cannot redo" in lines[0]), result.output
