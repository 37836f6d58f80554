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


def _damage(folder, text) -> int:
    """Replace every kept file in ``folder`` with ``text(old)`` (a sync tool, a disk error)."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        path.write_text(text(path.read_text(errors="replace")))
    return len(files)


def _zeroed_blocks(old: str) -> str:
    """Blocks of the right lengths, every one 0 LUFS (much louder than the clip)."""
    import json

    kept = json.loads(old.strip().splitlines()[-1])
    return json.dumps({k: [0] * len(v) for k, v in kept.items()})


def test_damaged_loudness_caches_are_measured_again(small_project, isolated_storage):
    """Garbage, zeroed or 'nan' loudness blocks, gains and chunk peaks in the work dir are not
    trusted into the video: its loudness is still the target's, and no render fails on them."""
    from media.loudness import integrated_loudness, true_peak

    first = CliRunner().invoke(app, ["render", str(small_project), "--local"])
    assert first.exit_code == 0, first.output
    target = integrated_loudness(first.stdout.strip().splitlines()[-1])
    assert abs(target + 14) <= 1
    cache = isolated_storage.parent / "work" / "cache"
    assert _damage(cache / "blocks", _zeroed_blocks) == 3
    again = CliRunner().invoke(app, ["render", str(small_project), "--local", "--force"])
    assert again.exit_code == 0, again.output
    assert abs(integrated_loudness(again.stdout.strip().splitlines()[-1]) - target) <= 0.5
    assert _damage(cache / "loudness", lambda old: "nan nan nan") == 1
    third = CliRunner().invoke(app, ["render", str(small_project), "--local", "--force"])
    assert third.exit_code == 0, third.output
    assert abs(integrated_loudness(third.stdout.strip().splitlines()[-1]) - target) <= 0.5
    peaks = list((cache / "aac").rglob("*.tp"))
    assert peaks
    for path in peaks:
        path.write_text("5.0\n")                       # a peak 6 dB over the ceiling: would be limited lower
    fourth = CliRunner().invoke(app, ["render", str(small_project), "--local", "--force"])
    assert fourth.exit_code == 0, fourth.output
    video = fourth.stdout.strip().splitlines()[-1]
    assert abs(integrated_loudness(video) - target) <= 0.5 and true_peak(video) <= -1.0 + 0.5


def test_damaged_kept_answers_and_frames_are_computed_again(tmp_path, isolated_storage):
    import hashlib

    from PIL import Image

    from engines.base import _DIGESTS, file_digest
    from media.frame_cache import cached_middle_frame, frame_cache_dir
    from tests.media import tone_clip

    footage = tmp_path / "footage.bin"
    footage.write_bytes(b"footage" * 1000)
    real = hashlib.sha256(footage.read_bytes()).hexdigest()
    assert file_digest(footage) == real
    for garbage in ("0" * 64, "nan", ""):
        _damage(isolated_storage.parent / "work" / "cache" / "digests", lambda old: garbage)
        _DIGESTS.forget()                                   # a later command
        assert file_digest(footage) == real
    clip = tone_clip(tmp_path / "clip.mp4")
    assert cached_middle_frame("clips/k.mp4", clip, size=(32, 48)).size == (32, 48)
    [kept] = frame_cache_dir().glob("*.png")
    Image.new("RGB", (5, 5), "red").save(kept)              # a whole PNG, not the frame asked
    assert cached_middle_frame("clips/k.mp4", clip, size=(32, 48)).size == (32, 48)
    kept.write_bytes(kept.read_bytes()[:40] + b"\0" * 200)
    assert cached_middle_frame("clips/k.mp4", clip, size=(32, 48)).size == (32, 48)
