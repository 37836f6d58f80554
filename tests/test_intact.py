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
