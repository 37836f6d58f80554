"""The local-folder store: atomic publishing, listing, key safety."""

from __future__ import annotations

import os

import pytest

from storage import LocalStore, StorageError, open_store
from tests.storage_contract import StoreContract


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        return LocalStore(tmp_path / "contract")

    @pytest.fixture
    def store_env(self, tmp_path):
        return {"REELFLOW_STORAGE": str(tmp_path / "contract")}


def test_put_fetch_list_delete(tmp_path):
    store = LocalStore(tmp_path / "s")
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 1000)
    store.put_file("clips/abc.mp4", src, {"scene": "one"})
    assert store.exists("clips/abc.mp4")
    assert store.fetch("clips/abc.mp4", tmp_path).read_bytes() == b"x" * 1000
    assert store.metadata("clips/abc.mp4") == {"scene": "one"}
    assert store.list("clips") == ["clips/abc.mp4"]
    store.delete("clips/abc.mp4")
    assert not store.exists("clips/abc.mp4") and store.list() == []


def test_published_files_follow_the_umask(tmp_path):
    store = LocalStore(tmp_path / "s")
    src = tmp_path / "a"
    src.write_bytes(b"a")
    store.put_file("k/a", src)
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(store.path("k/a")).st_mode & 0o777 == 0o666 & ~mask


def test_a_failed_write_leaves_nothing_under_the_key(tmp_path):
    store = LocalStore(tmp_path / "s")
    src = tmp_path / "old"
    src.write_bytes(b"old")
    store.put_file("clips/a.mp4", src)
    with pytest.raises(StorageError, match="cannot write"):
        store.put_file("clips/a.mp4", tmp_path / "missing")
    assert store.fetch("clips/a.mp4", tmp_path).read_bytes() == b"old"
    assert [p.name for p in (tmp_path / "s" / "clips").iterdir()] == ["a.mp4"]


def test_open_store_reads_the_setting(isolated_storage):
    assert open_store().root == isolated_storage.resolve()


def test_ffmpeg_override_that_does_not_exist_is_a_clear_error(monkeypatch):
    from media import ffmpeg
    from reelflow.settings import reload_settings

    monkeypatch.setenv("REELFLOW_FFMPEG", "/nowhere/ffmpeg")
    reload_settings()
    with pytest.raises(ffmpeg.FFmpegError, match="REELFLOW_FFMPEG='/nowhere/ffmpeg' is not an executable"):
        ffmpeg.run(["-version"])


def test_ffmpeg_failure_carries_command_and_stderr():
    from media import ffmpeg

    with pytest.raises(ffmpeg.FFmpegError) as info:
        ffmpeg.run(["-i", "/nowhere/input.mp4", "-f", "null", "-"])
    assert "/nowhere/input.mp4" in str(info.value) and info.value.cmd[-1] == "-"
    assert "No such file" in info.value.stderr
    # The line a user sees says why; the command follows below it, for -v.
    first, *rest = str(info.value).splitlines()
    assert first == ("ffmpeg exited 254: Error opening input: No such file or directory; Error opening input file "
                     "/nowhere/input.mp4.; Error opening input files: No such file or directory")
    assert rest[-1].startswith("command: ") and rest[-1].endswith("-i /nowhere/input.mp4 -f null -")


def test_ffmpeg_keeps_only_the_tail_of_a_long_stderr(monkeypatch):
    """ebur128 logs ten lines a second: a long render's stderr is not held whole, and the
    loudness summary at its end is still read."""
    from media import ffmpeg
    from media.profile import OutputProfile
    from media.loudness import measure_loudness

    monkeypatch.setattr(ffmpeg, "STDERR_TAIL", 4096)
    proc = ffmpeg.run(["-f", "lavfi", "-i", "sine=r=48000:d=30", "-af", "ebur128", "-f", "null", "-"],
                      loglevel="info")
    assert len(proc.stderr) == 4096 and b"Summary:" in proc.stderr
    measured = measure_loudness(["-f", "lavfi", "-i", "sine=r=48000:d=30"], OutputProfile())
    assert -25 < float(measured["input_i"]) < -15
