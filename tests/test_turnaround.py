"""What makes an edit cheap: only the changed clip is normalised, its frame cut and the audio
around it encoded again; media checks and frames are remembered across commands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

import media.aac as aac
import media.stitch as media_stitch
from flows.local import render_local
from media import whitelist
from media.probe import probe
from tests.media import marked_clip


@pytest.mark.slow
def test_an_edit_encodes_only_the_audio_around_it_and_cuts_one_new_frame(small_project, monkeypatch):
    monkeypatch.setattr(aac, "CHUNK_FRAMES", 16)              # 0.34 s chunks: 4.5 s of audio is 14 of them
    monkeypatch.setattr(aac, "PRE_ROLL", 4 * aac.FRAME)
    encoded, frames = [], []
    chunk, frame = aac._encode_chunk, media_stitch.middle_frame
    monkeypatch.setattr(aac, "_encode_chunk", lambda *a: encoded.append(a[-1]) or chunk(*a))
    monkeypatch.setattr(media_stitch, "middle_frame", lambda *a, **k: frames.append(a[0]) or frame(*a, **k))
    import media.frame_cache as frame_cache
    monkeypatch.setattr(frame_cache, "middle_frame", media_stitch.middle_frame)

    first = render_local(str(small_project))
    chunks = len(aac.chunk_bounds(round(first.duration * 48000)))
    assert len(encoded) == chunks == 14 and len(frames) == 3
    encoded.clear(), frames.clear()

    spec = yaml.safe_load((small_project / "project.yaml").read_text())
    spec["scenes"][2]["speech"] = "A new last line."             # the last 1.5 s of 4.5 s change
    (small_project / "project.yaml").write_text(yaml.safe_dump(spec))
    second = render_local(str(small_project))
    assert second.generated == 1 and second.reused == 2
    assert 0 < len(encoded) <= chunks // 2 + 1                   # the chunks from 3 s on (and one pre-roll)
    assert len(frames) == 1                                       # only the new clip's frame is cut
    info = probe(second.video, count_frames=True)
    assert info.video_frames == 54 and abs(info.audio_duration - 4.5) < 1 / 48000


def test_media_checks_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    clip = marked_clip(tmp_path / "a.mp4", width=64, height=96, fps=12, seconds=1.0)
    calls = []
    original = whitelist._check_media
    monkeypatch.setattr(whitelist, "_check_media", lambda *a: calls.append(a) or original(*a))
    assert whitelist.check_media(clip, "video") is None and len(calls) == 1
    whitelist._CHECKS.forget()                                   # a later command: only the disk remembers
    assert whitelist.check_media(clip, "video") is None and len(calls) == 1
    data = clip.read_bytes()
    stat = clip.stat()
    clip.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))   # same size, broken
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))                        # and the same mtime
    whitelist._CHECKS.forget()
    assert whitelist.check_media(clip, "video") is not None and len(calls) == 2    # ctime changed: checked again


def test_footage_digests_are_kept_until_the_file_changes(tmp_path, monkeypatch):
    """A clip's key hashes its footage: once per file, not at every render; never a stale hash."""
    import hashlib

    from engines import base

    footage = tmp_path / "f.mp4"
    footage.write_bytes(b"first take" * 1000)
    calls = []
    original = base._sha256
    monkeypatch.setattr(base, "_sha256", lambda path: calls.append(path) or original(path))
    assert base.file_digest(footage) == hashlib.sha256(footage.read_bytes()).hexdigest() and len(calls) == 1
    base._DIGESTS.forget()                                       # a later command: only the disk remembers
    assert base.file_digest(footage) == hashlib.sha256(footage.read_bytes()).hexdigest() and len(calls) == 1
    stat = footage.stat()
    footage.write_bytes(b"other take" * 1000)                    # same size
    os.utime(footage, ns=(stat.st_atime_ns, stat.st_mtime_ns))   # and the same mtime
    assert base.file_digest(footage) == hashlib.sha256(b"other take" * 1000).hexdigest() and len(calls) == 2


@pytest.mark.slow
def test_the_audio_is_mixed_while_the_pictures_are_encoded_and_comes_out_the_same(small_project, monkeypatch):
    """With the cut known up front, the audio is mixed on its own thread as soon as every clip has
    its sound, and the stitch takes that mix: the same AAC track as a stitch that mixes it
    itself, and nothing of the mix left in the work folder afterwards."""
    from media import ffmpeg
    from reelflow.scratch import scratch_dir
    from tasks import audio_mix
    from tasks.ahead import NormalizeAhead

    threads, original = [], audio_mix.audio_track
    monkeypatch.setattr(audio_mix, "audio_track",
                        lambda *a, **k: threads.append(__import__("threading").current_thread().name) or original(*a, **k))
    ahead = render_local(str(small_project))
    assert len(threads) == 1 and threads[0].startswith("reelflow-mix-ahead")
    assert not list(scratch_dir("stitch").iterdir())

    monkeypatch.setattr(NormalizeAhead, "mix", lambda self, *a: None)       # the stitch mixes it itself
    itself = render_local(str(small_project), force=True)
    assert len(threads) == 2 and threads[1] == "MainThread"

    def track(video: str) -> bytes:
        out = Path(video).with_name("track.adts")
        ffmpeg.run(["-i", video, "-map", "0:a:0", "-c:a", "copy", "-f", "adts", str(out)])
        return out.read_bytes()

    assert track(ahead.video) == track(itself.video)


def test_a_mix_is_taken_only_under_its_own_key(tmp_path, caplog):
    """A mix offered for a cut that is not the one being stitched is discarded, its folder with it;
    one that failed is passed over, with a warning that names the failure."""
    from tasks import audio_mix

    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    audio_mix.offer("slug", lambda: audio_mix.Mix("key-a", folders[0] / "audio.m4a", folders[0]))
    assert audio_mix.take("slug", "key-b") is None
    assert not folders[0].exists()
    audio_mix.offer("slug", lambda: audio_mix.Mix("key-b", folders[1] / "audio.m4a", folders[1]))
    audio_mix.offer("slug", lambda: 1 / 0)                                 # a mix that failed: ignored
    with caplog.at_level("WARNING", logger="reelflow"):
        assert audio_mix.take("slug", "key-b").folder == folders[1]
    assert "the audio mixed ahead failed (ZeroDivisionError" in caplog.text
    assert audio_mix.take("slug", "key-b") is None                         # taken once
