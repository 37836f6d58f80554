"""The finished-render index: found on an unchanged production, missed on any changed input;
the CLI finds it without importing Prefect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from projects import load_project
from storage import LocalStore
from tasks import intact
from tasks.models import ClipRef, RenderResult
from tasks.render_index import digest_of_plans, digest_of_result, find_finished, index_key, lookup, record
from tasks.plan import plan_project

REPO = Path(__file__).resolve().parents[1]


def digest(folder: Path) -> str:
    spec = load_project(folder)
    return digest_of_plans(spec, plan_project(spec), spec.picks)


def edit(folder: Path, change) -> None:
    spec = yaml.safe_load((folder / "project.yaml").read_text())
    change(spec)
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.mark.parametrize("change", [
    lambda s: s["output"].update(loudness=-16),
    lambda s: s["output"].update(subtitles="vtt"),
    lambda s: s["output"].update(fit="crop"),
    lambda s: s["scenes"][1].update(speech="Another line."),          # a clip and its subtitle
    lambda s: s["scenes"].reverse(),                                  # the order of the cut
    lambda s: s["scenes"].pop(),
    lambda s: s["scenes"][0].update(duration=2.0),
], ids=["loudness", "subtitles", "fit", "speech", "order", "scene-removed", "duration"])
def test_any_input_of_the_stitch_changes_the_digest(small_project, change):
    before = digest(small_project)
    assert digest(small_project) == before          # deterministic
    edit(small_project, change)
    assert digest(small_project) != before


@pytest.mark.parametrize("lower_third", [True, False])
def test_a_renamed_speaker_is_a_new_video_when_lower_thirds_draw_the_name(small_project, lower_third):
    """The lower third draws `characters.*.name`, a section that otherwise only feeds the clips'
    keys; a template that does not print the name left the digest as it was, and the video
    with the old name was served as unchanged."""
    (small_project / "plain.j2").write_text("{{ scene.action }}.\n")
    edit(small_project, lambda s: s.update(template="plain.j2", **({"lower_third": {"duration": 1}} if lower_third else {})))
    before = digest(small_project)
    edit(small_project, lambda s: s["characters"]["max"].update(name="Zelda"))
    assert (digest(small_project) != before) == lower_third


def test_what_picks_yaml_says_is_part_of_the_digest_not_its_bytes(small_project):
    """A comment or an explicit take 1 in picks.yaml made a new render of the same cut."""
    from tasks.takes import book_takes

    def booked() -> str:
        spec = load_project(small_project)
        book = book_takes(plan_project(spec), spec, lambda key: False)
        return digest_of_plans(spec, book.chains, book.picked)

    before = booked()
    (small_project / "picks.yaml").write_text("# the first takes, for now\ns0: 1\n")
    assert booked() == before
    (small_project / "picks.yaml").write_text("s0: 2\n")
    assert booked() != before


def test_the_digest_of_a_result_matches_the_digest_of_its_plans(small_project):
    spec = load_project(small_project)
    chains = plan_project(spec)
    clips = [ClipRef(scene_id=c[0].scene_id, index=c[0].index, key=c[0].key, engine=c[0].engine, cached=False,
                     duration=c[0].duration, speech=c[0].subtitle) for c in reversed(chains)]
    assert digest_of_result(spec, clips) == digest_of_plans(spec, chains, {})


def _fake_render(store: LocalStore, tmp_path: Path) -> RenderResult:
    for name in ("final.mp4", "final.srt", "contact-sheet.png", "render.json"):
        (tmp_path / name).write_bytes(b"x")
        store.put_file(f"renders/p/r1/{name}", tmp_path / name)
    intact.vouch(store, "renders/p/r1/final.mp4")     # published by a render: not probed by a lookup
    clip = ClipRef(scene_id="a", index=0, key="clips/k.mp4", engine="animatic", cached=False, seconds=3.0,
                   duration=1.5, speech="hi")
    return RenderResult(slug="p", render_id="r1", video=store.url("renders/p/r1/final.mp4"),
                        video_key="renders/p/r1/final.mp4", subtitles=store.url("renders/p/r1/final.srt"),
                        contact_sheet=store.url("renders/p/r1/contact-sheet.png"), duration=1.5,
                        generated=1, reused=0, clips=[clip], manifest_key="renders/p/r1/render.json")


def test_record_then_lookup_hits_and_a_missing_file_or_bad_entry_misses(tmp_path):
    store = LocalStore(tmp_path / "store")
    result = _fake_render(store, tmp_path)
    (tmp_path / "render.json").write_text(result.model_dump_json())
    store.put_file("renders/p/r1/render.json", tmp_path / "render.json")
    assert lookup(store, "d1") is None
    record(store, "d1", result)
    found = lookup(store, "d1")
    assert (found.render_id, found.video, found.subtitles, found.contact_sheet) == \
        ("r1", result.video, result.subtitles, result.contact_sheet)
    assert (found.generated, found.reused, found.clips[0].cached) == (0, 1, True)
    assert lookup(store, "d2") is None
    store.delete("renders/p/r1/final.srt")
    assert lookup(store, "d1") is None               # incomplete: render again
    store.path(index_key("d3")).parent.mkdir(parents=True, exist_ok=True)
    store.path(index_key("d3")).write_text("{not json")
    assert lookup(store, "d3") is None


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_unchanged_render_is_found_any_change_renders_and_force_renders_again(small_project, counting,
                                                                              isolated_storage):
    from flows.render import render_project

    first = render_project(str(small_project))
    again = render_project(str(small_project))
    assert (again.render_id, again.video, again.generated) == (first.render_id, first.video, 0)
    spec = load_project(small_project)
    assert find_finished(spec, None, None, LocalStore(isolated_storage), 3.0).render_id == first.render_id

    edit(small_project, lambda s: s["output"].update(loudness=-18))      # finishing only: no engine call
    counting.calls.clear()
    louder = render_project(str(small_project))
    assert louder.render_id != first.render_id and counting.calls == []
    forced = render_project(str(small_project), force=True)
    assert forced.render_id != louder.render_id

    # The CLI prints the finished video without importing Prefect.
    code = ("import sys; from typer.testing import CliRunner; from reelflow.cli import app; "
            f"r = CliRunner().invoke(app, ['render', {str(small_project)!r}]); "
            "print(r.exit_code); print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect')); "
            "print(r.stdout.strip().splitlines()[-1])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    exit_code, prefect_modules, last = proc.stdout.strip().splitlines()[-3:]
    assert (exit_code, prefect_modules) == ("0", "[]"), proc.stdout + proc.stderr
    assert last == forced.video


def test_a_plain_render_after_a_redo_finds_the_redo_s_render(small_project, counting):
    """The redo's render is indexed with the picks its cut used (the redo's new take), which is
    what picks.yaml says afterwards: the next plain render is unchanged, not stitched again."""
    from flows.local import render_local

    render_local(str(small_project))
    redone = render_local(str(small_project), redo=["s2"])
    assert {c.scene_id: c.take for c in redone.clips}["s2"] == 2
    counting.calls.clear()
    again = render_local(str(small_project))
    assert (again.render_id, again.video, counting.calls) == (redone.render_id, redone.video, [])


def test_a_music_file_saved_while_the_cut_is_made_is_not_indexed_as_that_cut(small_project, tmp_path, counting,
                                                                             monkeypatch, caplog):
    """The stitch read the old bed; the file holds the new one when the render ends. Indexing the
    video under the new file's digest served the stale cut as "unchanged" ever after."""
    import shutil

    from flows import pipeline
    from flows.local import render_local
    from media import ffmpeg

    (small_project / "audio").mkdir()
    bed, new = small_project / "audio" / "bed.wav", tmp_path / "new.wav"
    ffmpeg.run(["-f", "lavfi", "-i", "sine=f=220:sample_rate=48000:d=5", str(bed)])
    ffmpeg.run(["-f", "lavfi", "-i", "sine=f=880:sample_rate=48000:d=5", str(new)])
    edit(small_project, lambda s: s.update(music={"file": "audio/bed.wav", "volume": -6, "duck": False}))
    stitch = pipeline.stitch_clips

    def saved_meanwhile(*args, **kwargs):
        outputs = stitch(*args, **kwargs)
        shutil.copy(new, bed)                 # a person saves the music as the cut is published
        return outputs

    monkeypatch.setattr(pipeline, "stitch_clips", saved_meanwhile)
    first = render_local(str(small_project))
    assert "audio/bed.wav changed while render" in caplog.text
    monkeypatch.setattr(pipeline, "stitch_clips", stitch)
    counting.calls.clear()
    again = render_local(str(small_project))          # cut again with the new bed, no engine call
    assert again.render_id != first.render_id and counting.calls == []
    assert render_local(str(small_project)).render_id == again.render_id
