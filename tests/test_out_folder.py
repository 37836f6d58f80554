"""``--out``: a render removes the files an earlier render wrote there and it did not, and only those.

It removed every name a render can write, whoever wrote it: a hand-made ``final.srt`` beside a
``vtt`` render was deleted without a word.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from reelflow.out_folder import RECORD, copy_out
from reelflow.settings import get_settings
from storage import open_store


def _render(tmp_path: Path, render_id: str, names: dict[str, str]):
    """A render in the store whose files are ``names`` (name -> text) and final.mp4."""
    store = open_store(get_settings().storage)
    base = f"renders/p/{render_id}"
    for name, text in {**names, "final.mp4": f"video of {render_id}"}.items():
        src = tmp_path / f"{render_id}-{name}"
        src.write_text(text)
        store.put_file(f"{base}/{name}", src)
    return SimpleNamespace(video_key=f"{base}/final.mp4", manifest_key=f"{base}/render.json", video=f"{base}/final.mp4")


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_only_what_an_earlier_render_wrote_and_nobody_changed_is_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    copy_out(_render(tmp_path, "r1", {"final.srt": "1\n", "final.edl": "edl", "contact-sheet.png": "png"}), out)
    assert _names(out) == {"final.mp4", "final.srt", "final.edl", "contact-sheet.png", "notes.txt", RECORD}
    (out / "final.edl").write_text("edl, edited by hand")          # the user's now

    copy_out(_render(tmp_path, "r2", {"final.vtt": "WEBVTT\n"}), out)
    assert _names(out) == {"final.mp4", "final.vtt", "final.edl", "notes.txt", RECORD}
    assert (out / "final.edl").read_text() == "edl, edited by hand" and (out / "final.mp4").read_text() == "video of r2"
    assert set(json.loads((out / RECORD).read_text())["written"]) == {"final.mp4", "final.vtt"}

    copy_out(_render(tmp_path, "r3", {"final.srt": "1\n"}), out)      # the edited EDL is never taken back
    assert _names(out) == {"final.mp4", "final.srt", "final.edl", "notes.txt", RECORD}


def test_a_hand_made_file_under_a_reserved_name_is_left_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "final.srt").write_text("my own hand-made subtitles")
    copy_out(_render(tmp_path, "r1", {"final.vtt": "WEBVTT\n"}), out)
    assert (out / "final.srt").read_text() == "my own hand-made subtitles"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


MINE = "my own hand-made subtitles"


@pytest.mark.parametrize("record", [
    "not json {", "[]", '{"written": ["final.srt"]}', '{"written": {"final.srt": 5}}',
    '{"written": {"final.srt": "00"}}', "[" * 30_000 + "]" * 30_000, "",
    json.dumps({"written": {"../final.srt": _digest(MINE), "final.srt/": _digest(MINE)}}),
    "link", "big",
])
def test_a_damaged_or_hostile_record_removes_nothing(tmp_path, record):
    """A record that is not JSON of its shape, names outside the reserved ones, a link (to a
    record that would remove the file), or one too big: nothing removed, no error, and the
    render's own record written in its place."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "final.srt").write_text(MINE)
    (tmp_path / "final.srt").write_text(MINE)
    forged = json.dumps({"written": {"final.srt": _digest(MINE)}})
    if record == "link":
        (tmp_path / "elsewhere.json").write_text(forged)
        (out / RECORD).symlink_to(tmp_path / "elsewhere.json")
    elif record == "big":
        (out / RECORD).write_text(forged + " " * 70_000)
    else:
        (out / RECORD).write_text(record)
    copy_out(_render(tmp_path, "r1", {"final.vtt": "WEBVTT\n"}), out)
    assert (out / "final.srt").read_text() == MINE
    assert not (out / RECORD).is_symlink() and set(json.loads((out / RECORD).read_text())["written"]) == {
        "final.mp4", "final.vtt"}
    assert (tmp_path / "elsewhere.json").read_text() == forged if record == "link" else True


def test_a_link_under_a_reserved_name_is_not_followed(tmp_path):
    """A link the user put where an earlier render's final.srt was, to a file with those very
    bytes, is theirs: neither it nor its target is removed."""
    out = tmp_path / "out"
    out.mkdir()
    copy_out(_render(tmp_path, "r1", {"final.srt": MINE}), out)
    (out / "final.srt").unlink()
    (tmp_path / "mine.srt").write_text(MINE)
    (out / "final.srt").symlink_to(tmp_path / "mine.srt")
    copy_out(_render(tmp_path, "r2", {"final.vtt": "WEBVTT\n"}), out)
    assert (out / "final.srt").is_symlink() and (tmp_path / "mine.srt").read_text() == MINE


def test_a_folder_under_the_record_s_name_is_in_the_way_before_any_work(tmp_path):
    from reelflow.errors import InputError
    from reelflow.out_folder import check_out

    (tmp_path / "out" / RECORD).mkdir(parents=True)
    with pytest.raises(InputError, match=r"out: cannot write there \(\.reelflow-out\.json is a folder\)$"):
        check_out(tmp_path / "out")
