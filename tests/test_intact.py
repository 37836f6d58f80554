"""A damaged file in a local store is made again, with a warning, instead of failing every render."""

from __future__ import annotations

from typer.testing import CliRunner

from reelflow.cli import app
from tasks import intact


def _cut_short(path) -> None:
    path.write_bytes(path.read_bytes()[:2000])


def test_a_damaged_stored_clip_and_normalisation_are_made_again(small_project, isolated_storage):
    first = CliRunner().invoke(app, ["render", str(small_project), "--local"])
    assert first.exit_code == 0, first.output
    clips = sorted((isolated_storage / "clips").glob("*.mp4"))
    normalized = sorted(isolated_storage.glob("normalized/*/*.mov"))
    _cut_short(clips[0])                     # an interrupted copy, a full disk
    _cut_short(normalized[-1])
    again = CliRunner().invoke(app, ["render", str(small_project), "--local", "--force"])
    assert again.exit_code == 0, again.output
    assert f"the stored clip clips/{clips[0].name} is damaged" in again.output
    assert "the stored normalised clip normalized/" in again.output and "it is made again" in again.output
    assert "1 clip(s) generated" in again.output
    assert intact._probe(clips[0], None) is None          # made again, whole


def test_files_reelflow_stored_are_not_probed_again(small_project, isolated_storage, monkeypatch):
    """Every reused file is checked once per file identity, and a file stored by reelflow is
    vouched for as it is stored: an edit pays no probe for its unchanged clips."""
    assert CliRunner().invoke(app, ["render", str(small_project), "--local"]).exit_code == 0

    def probed(path, frames):
        raise AssertionError(f"{path} was probed")

    monkeypatch.setattr(intact, "_probe", probed)
    again = CliRunner().invoke(app, ["render", str(small_project), "--local", "--force"])
    assert again.exit_code == 0, again.output


def test_a_damaged_finished_video_is_not_returned_as_unchanged(small_project, isolated_storage, monkeypatch):
    """An unchanged production prints its finished video at once, but not one cut short behind
    reelflow's back: that render is stitched again (its clips reused), with a warning."""
    first = CliRunner().invoke(app, ["render", str(small_project), "--local"])
    assert first.exit_code == 0, first.output
    video = isolated_storage / first.output.strip().splitlines()[-1].split(str(isolated_storage) + "/")[-1]
    assert video.name == "final.mp4" and video.is_file()

    def probed(path, frames):
        raise AssertionError(f"{path} was probed")

    with monkeypatch.context() as m:           # a video reelflow stored is vouched for: no probe
        m.setattr(intact, "_probe", probed)
        same = CliRunner().invoke(app, ["render", str(small_project), "--local"])
    assert same.exit_code == 0 and "unchanged since render" in same.output, same.output

    _cut_short(video)
    again = CliRunner().invoke(app, ["render", str(small_project), "--local"])
    assert again.exit_code == 0, again.output
    assert "unchanged since" not in again.output
    assert f"the finished video {video.relative_to(isolated_storage)} is damaged" in again.output
    assert "0 clip(s) generated" in again.output
    remade = isolated_storage / again.output.strip().splitlines()[-1].split(str(isolated_storage) + "/")[-1]
    assert remade != video and intact._probe(remade, None) is None
