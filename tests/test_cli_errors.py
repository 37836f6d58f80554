"""One error tree to the user: every failure is one line (+ hint) and an exit code —
2 bad input, 1 failed render, 3 infrastructure unreachable — a traceback only with -v."""

from __future__ import annotations

import resource

import pytest
import yaml
from typer.testing import CliRunner

import engines
from reelflow.cli import app
from reelflow.urls import mask_url
from tests.conftest import S3_SECRET, use_s3
from tests.engines_fake import FaultyEngine, bad_input
from tests.servers import free_port


def error_lines(result) -> list[str]:
    """stderr lines that are not progress bars or stitching notes."""
    return [line for line in result.stderr.splitlines()
            if line.strip() and not line.startswith(("clips", "normalize", "stitching"))]


@pytest.mark.slow
def test_a_failed_render_is_one_line_exit_1_and_the_same_line_is_the_state_message(small_project, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    engines.register("down", lambda model=None, params=None: FaultyEngine("down", bad_input()))
    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["engine"] = {"name": "down"}
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec))
    try:
        result = CliRunner().invoke(app, ["render", str(small_project)])
    finally:
        engines.unregister("down")
    assert result.exit_code == 1, result.output
    # (the session's harness logs Prefect's own ERROR records at WARNING level; the CLI alone does not)
    line = error_lines(result)[-1]
    assert [x for x in error_lines(result) if x.startswith("render failed")] == [line]
    assert line.startswith("render failed: 3 of 3 scene(s) got no clip: scene 's0': image must be a PNG")
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["render-small"])),
                                      sort=FlowRunSort.START_TIME_DESC, limit=1)
    assert run.state.is_failed()
    assert run.state.message.endswith(line.removeprefix("render failed: "))


def test_verbose_adds_the_traceback(small_project):
    result = CliRunner().invoke(app, ["-v", "cost", str(small_project), "--engine", "nope"])
    assert result.exit_code == 2
    assert "Traceback" in result.output and "unknown engine 'nope'" in result.output


def test_an_error_outside_the_tree_is_one_line_too_and_its_traceback_only_with_verbose(small_project, monkeypatch):
    """A bug (or a library failure nothing foresaw) is still one line, exit 1, secrets masked;
    ``-v`` adds the traceback for a report."""
    import projects
    from reelflow.secrets import remember

    remember("a-secret-nobody-should-see")            # as the settings do with a configured secret

    def broken(*args, **kwargs):
        raise LookupError("a-secret-nobody-should-see went missing\nsecond line")

    monkeypatch.setattr(projects, "check_project", broken)
    result = CliRunner().invoke(app, ["validate", str(small_project)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert error_lines(result)[0].startswith("internal error: LookupError: *** went missing")
    assert "went missing" in result.output and "second line" not in result.output
    assert "a-secret-nobody-should-see" not in result.output
    assert "-v" in error_lines(result)[-1]
    verbose = CliRunner().invoke(app, ["-v", "validate", str(small_project)])
    assert verbose.exit_code == 1 and "Traceback" in verbose.output and "in broken" in verbose.output
    assert "a-secret-nobody-should-see" not in verbose.output


def test_an_unknown_storage_scheme_is_bad_input_naming_the_known_ones(small_project, monkeypatch, tmp_path):
    from reelflow.settings import reload_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELFLOW_STORAGE", "gs://bucket/reels")
    reload_settings()
    result = CliRunner().invoke(app, ["cost", str(small_project)])
    assert result.exit_code == 2
    assert error_lines(result)[0] == ("REELFLOW_STORAGE='gs://bucket/reels': unknown storage scheme 'gs://'; "
                                      "known: a folder path (or file://), s3://")
    assert error_lines(result)[1].startswith("hint: ")
    assert not (tmp_path / "gs:").exists()


def test_a_closed_s3_port_is_infrastructure_exit_3(small_project, monkeypatch):
    use_s3(monkeypatch, f"http://127.0.0.1:{free_port()}", "nobucket", REELFLOW_STORAGE_RETRY_SECONDS="1")
    result = CliRunner().invoke(app, ["cost", str(small_project)])
    assert result.exit_code == 3, result.output
    first, hint = error_lines(result)[-2:]
    assert "connection refused" in first and hint.startswith("hint: is the S3 server at 127.0.0.1:")


def test_a_wrong_s3_secret_is_infrastructure_exit_3(small_project, rclone_s3, monkeypatch):
    wrong = "wrong-" + S3_SECRET[::-1]
    use_s3(monkeypatch, rclone_s3.endpoint, "any", secret=wrong)
    result = CliRunner().invoke(app, ["cost", str(small_project)])
    assert result.exit_code == 3, result.output
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr
    line = errors[0]
    assert "refused the credentials" in line and wrong not in result.output


def test_an_unreachable_database_is_exit_3_with_the_password_masked(small_project, monkeypatch):
    from reelflow.settings import reload_settings

    url = f"postgresql+psycopg://reel:hunter2-db-password@127.0.0.1:{free_port()}/catalog"
    monkeypatch.setenv("REELFLOW_DATABASE_URL", url)
    reload_settings()
    result = CliRunner().invoke(app, ["history", str(small_project)])
    assert result.exit_code == 3, result.output
    first, hint = error_lines(result)[-2:]
    assert first.startswith("catalog database postgresql+psycopg://reel:***@127.0.0.1:") and "OperationalError" in first
    assert hint == "hint: check REELFLOW_DATABASE_URL and that the database server is running"
    assert "hunter2" not in result.output


@pytest.mark.parametrize("command", ["history", "render"])
def test_a_database_url_whose_driver_is_not_installed_is_bad_input_naming_the_variable(small_project, monkeypatch,
                                                                                       command):
    """mysql:// (MySQLdb not installed) was 'internal error ... a reelflow bug': it is the
    setting that is wrong, one line naming it, exit 2, the password masked."""
    from reelflow.settings import reload_settings

    monkeypatch.setenv("REELFLOW_DATABASE_URL", "mysql://reel:hunter2-db-password@127.0.0.1/catalog")
    reload_settings()
    result = CliRunner().invoke(app, [command, str(small_project)])
    assert result.exit_code == 2, result.output
    line = error_lines(result)[-2]
    assert line.startswith("REELFLOW_DATABASE_URL=mysql://reel:***@127.0.0.1/catalog needs a database driver")
    assert "hunter2" not in result.output and "internal error" not in result.output


@pytest.mark.parametrize("url, said", [
    ("postgresql+psycopg://reel:hunter2-db-password@127.0.0.1:notaport/db", "its port is not a number"),
    ("reel:hunter2-db-password@127.0.0.1", "ArgumentError"),
], ids=["port", "no-scheme"])
def test_a_malformed_database_url_is_bad_input_with_its_password_masked(small_project, monkeypatch, url, said):
    """A port that is not a number was 'internal error ... a reelflow bug'; a URL with no scheme
    printed its password."""
    from reelflow.settings import reload_settings

    monkeypatch.setenv("REELFLOW_DATABASE_URL", url)
    reload_settings()
    result = CliRunner().invoke(app, ["history", str(small_project)])
    assert result.exit_code == 2, result.output
    line = error_lines(result)[-2]
    assert line.startswith("REELFLOW_DATABASE_URL=") and "is not a usable database URL" in line and said in line
    assert "hunter2" not in result.output and "internal error" not in result.output


def test_history_masks_the_database_password(small_project, postgres_url, monkeypatch):
    from sqlalchemy.engine import make_url

    from reelflow.settings import reload_settings

    # The embedded server trusts local connections: any password is accepted, and must not show.
    url = make_url(postgres_url).set(password="hunter2-db-password").render_as_string(hide_password=False)
    monkeypatch.setenv("REELFLOW_DATABASE_URL", url)
    reload_settings()
    result = CliRunner().invoke(app, ["history", str(small_project)])
    assert result.exit_code == 1 and "no renders of 'small' in postgresql+psycopg://" in result.output
    assert ":***@" in result.output and "hunter2" not in result.output


def test_an_unreachable_prefect_api_is_exit_3(small_project, prefect_harness):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        result = CliRunner().invoke(app, ["render", str(small_project)])
    assert result.exit_code == 3, result.output
    first, hint = error_lines(result)[-2:]
    assert first.startswith("the Prefect API at http://127.0.0.1:") and "cannot be reached" in first
    assert hint.startswith("hint: start the server")


def test_a_full_disk_under_the_local_store_is_a_storage_error(tmp_path):
    """A real ENOSPC-like failure from the kernel: the file size limit (EFBIG) while publishing."""
    from storage import LocalStore, StorageError

    store = LocalStore(tmp_path / "s")
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * 300_000)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))   # Python ignores SIGXFSZ: writes fail
    try:
        with pytest.raises(StorageError) as info:
            store.put_file("clips/big.mp4", src)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert info.value.exit_code == 3 and "cannot write" in str(info.value)
    assert store.list() == [] and not any(p.name.endswith(".part") for p in (tmp_path / "s").rglob("*"))


def _disk_fault(monkeypatch, target, attribute: str, code: int, when=lambda *a, **k: True) -> None:
    """``target.attribute`` fails as the kernel does on a full (ENOSPC) or read-only (EROFS) disk."""
    import errno
    import os

    real = getattr(target, attribute)

    def failing(*args, **kwargs):
        if when(*args, **kwargs):
            raise OSError(code, os.strerror(code), str(args[0]) if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, attribute, failing)
    assert code in (errno.ENOSPC, errno.EROFS)


@pytest.mark.parametrize("where", ["stitch", "clip", "store", "out"])
def test_a_full_or_read_only_disk_is_infrastructure_exit_3_in_one_line(small_project, monkeypatch, tmp_path, where):
    """README: disk full is exit 3, one line with a hint, wherever it strikes: the work folder
    while stitching or while a clip is made (not the image's or the engine's fault: no fallback
    would help), a read-only store, the --out folder."""
    import errno

    import PIL.Image

    import media.mov_pcm
    import reelflow.out_folder
    import storage.local

    if where != "clip":
        assert CliRunner().invoke(app, ["render", str(small_project)]).exit_code == 0      # clips stored
    args = ["render", str(small_project)] + (["--force"] if where in ("stitch", "store") else [])
    if where == "stitch":
        _disk_fault(monkeypatch, media.mov_pcm, "copy_pcm", errno.ENOSPC)
    elif where == "clip":
        _disk_fault(monkeypatch, PIL.Image.Image, "save", errno.ENOSPC,
                    when=lambda image, path, *a, **k: str(path).endswith("still.png"))
    elif where == "store":
        _disk_fault(monkeypatch, storage.local.tempfile, "mkstemp", errno.EROFS,
                    when=lambda *a, **k: "renders" in str(k.get("dir", "")))
    else:
        _disk_fault(monkeypatch, reelflow.out_folder.shutil, "copyfile", errno.ENOSPC)
        args += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    lines = error_lines(result)
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert ("Read-only file system" if where == "store" else "No space left on device") in lines[-2]
    assert "cannot read image" not in result.output
    assert lines[-1].startswith("hint: free space on that disk")


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://bob:s3cr%40t@db:5432/x?sslmode=require", "postgresql+psycopg://bob:***@db:5432/x?sslmode=require"),
    ("postgresql://u:p@w@h/db", "postgresql://u:***@h/db"),
    ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
    ("http://h:9000/b/k?X-Amz-Signature=abc&X-Amz-Expires=3", "http://h:9000/b/k?X-Amz-Signature=***&X-Amz-Expires=3"),
    ("postgresql://u@h/db?password=pw", "postgresql://u@h/db?password=***"),
])
def test_mask_url(url, shown):
    assert mask_url(url) == shown


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "REELFLOW_ORCHESTRATOR": "bogus", "REELFLOW_CLIP_RETRIES": "-1"}
    proc = subprocess.run([sys.executable, "-m", "reelflow", "cost", str(repo / "projects" / "demo")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "REELFLOW_CLIP_RETRIES: Input should be greater than or equal to 0 (got '-1'); "
        "REELFLOW_ORCHESTRATOR: Input should be 'auto', 'prefect' or 'in-process' (got 'bogus')"]


@pytest.mark.parametrize("variable,value", [
    ("REELFLOW_CLIP_RETRIES", "1025"), ("REELFLOW_FFMPEG_TIMEOUT", "0"), ("REELFLOW_FFMPEG_TIMEOUT", "-1"),
    ("REELFLOW_FFMPEG_TIMEOUT", "nan"), ("REELFLOW_RETRY_BACKOFF", "inf"), ("REELFLOW_MAX_WORDS_PER_SECOND", "nan"),
    ("REELFLOW_CLIP_BUDGET", "inf"), ("REELFLOW_REVIEW_TIMEOUT", "nan")])
def test_a_setting_that_would_break_every_render_is_refused_before_any_work(small_project, monkeypatch,
                                                                           variable, value):
    """Out of range, infinite or not a number: one line naming the variable, exit 2 (a retry count
    of 1025 overflowed the backoff; an ffmpeg timeout of 0 failed every clip)."""
    from reelflow.settings import get_settings, reload_settings

    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["render", str(small_project)])
    finally:
        monkeypatch.delenv(variable)
        reload_settings()
    assert result.exit_code == 2, result.output
    assert error_lines(result)[0].startswith(f"{variable}: ") and "Traceback" not in result.output


def test_a_setting_that_is_not_json_is_one_line_naming_the_variable(tmp_path):
    """A dict setting holding bad JSON used to escape as pydantic-settings' SettingsError traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "REELFLOW_PRICES": "{runpod: 1}"}
    proc = subprocess.run([sys.executable, "-m", "reelflow", "render", str(repo / "projects" / "demo")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "REELFLOW_PRICES: not valid JSON (Expecting property name enclosed in double quotes) (got '{runpod: 1}')"]


def test_text_like_an_emoji_code_is_printed_as_it_is(tmp_path):
    """Rich turned ':v:' and ':a:' (ffmpeg's stream maps, or a file's name) into emoji."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").write_text('title: t\nscenes:\n  - id: a\n    footage: "clip:v:1.mp4"\n    duration: 2\n')
    result = CliRunner().invoke(app, ["render", str(folder)])
    assert result.exit_code == 2
    assert error_lines(result)[0].endswith("scenes[0].footage: file 'clip:v:1.mp4' not found in the project folder")


def test_history_of_a_path_that_is_no_production_is_bad_input(small_project, monkeypatch):
    """A typo listed the renders of the folder it stood in; --limit past SQLite's integers was a
    traceback."""
    monkeypatch.chdir(small_project)
    for args in (["history", "typo"], ["history", str(small_project / "nope")],
                 ["history", str(small_project), "--limit", "100000000000000000000"],
                 ["history", str(small_project), "--limit", "0"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)
    assert "typo: not a production (no project.yaml there)" in CliRunner().invoke(app, ["history", "typo"]).output


def test_serve_with_a_port_or_host_that_cannot_be_is_bad_input():
    for args in (["--port", "70000"], ["--port", "-1"], ["--host", "999.1.1.1", "--port", "0"]):
        result = CliRunner().invoke(app, ["serve", *args])
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)


def test_ffmpeg_writing_to_a_full_disk_is_infrastructure_naming_the_cause():
    """A real ENOSPC from the kernel (/dev/full): ffmpeg's failure to write is exit 3 with the
    cause in its first line, not 'render failed: ffmpeg exited 228' with the cause cut off."""
    from media import ffmpeg

    for run in (lambda: ffmpeg.run(["-f", "lavfi", "-i", "sine=d=1", "-f", "wav", "/dev/full"]),
                lambda: ffmpeg.run_piped(["-f", "s16le", "-ar", "8000", "-ac", "1", "-i", "pipe:0", "-f", "wav",
                                          "/dev/full"], [b"\0" * 16000])):
        with pytest.raises(ffmpeg.FFmpegDiskError) as info:
            run()
        assert info.value.exit_code == 3 and info.value.hint.startswith("free space on that disk")
        assert "No space left on device" in str(info.value).splitlines()[0]
