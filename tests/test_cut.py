"""The cut: the timeline model, clean hard cuts, crossfades and dips that re-encode only the joins."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from media import ffmpeg
from media.probe import probe
from media.timeline import Edit, Transition, build_timeline
from media.transitions import audio_graph, plan_segments
from tests.media import audio_pcm, beep_onsets, click_energy, flash_onsets, frame_luma, marked_clip, tone_clip
from tests.cut_helpers import FPS, _rows, _stitch



def test_timeline_duration_is_clips_minus_overlaps_to_the_frame():
    t = build_timeline(_rows(24, 30, 36), Fraction(12), default=Transition(type="crossfade", duration=0.5),
                       transitions={"s2": Transition(type="cut")})
    assert [j.frames for j in t.joins] == [6, 0]
    assert [i.start for i in t.items] == [0, 18, 48]
    assert t.frames == 24 + 30 + 36 - 6 and t.duration == pytest.approx(84 / 12)
    assert t.samples == 84 * 4000
    # A cue runs until the next clip starts; chapters tile the video.
    assert t.cues() == [(0.0, 1.5, "line 0"), (1.5, 4.0, "line 1"), (4.0, 7.0, "line 2")]
    assert [(c.title, c.start, c.end) for c in t.chapters()] == [("s0", 0, 18), ("s1", 18, 48), ("s2", 48, 84)]


def test_an_overlap_never_takes_more_than_half_a_clip():
    t = build_timeline(_rows(10, 40), Fraction(24), default=Transition(type="dip", duration=2))
    assert t.joins[0].frames == 5 and t.warnings and "shortened" in t.warnings[0]


def test_chapter_labels_group_scenes_in_a_row():
    rows = _rows(12, 12, 12)
    rows[0]["chapter"] = rows[1]["chapter"] = "Opening"
    t = build_timeline(rows, Fraction(12))
    assert [(c.title, c.start, c.end) for c in t.chapters()] == [("Opening", 0, 24), ("s2", 24, 36)]


def test_segments_copy_whole_gops_and_blend_only_around_joins():
    t = build_timeline(_rows(36, 36, 36), Fraction(12), default=Transition(type="crossfade", duration=0.5))
    keys = [[0, 12, 24]] * 3
    segs = plan_segments(t, keys)
    assert [(s.kind, s.item) for s in segs] == [("copy", 0), ("blend", 0), ("copy", 1), ("blend", 1), ("copy", 2)]
    assert (segs[0].first, segs[0].end) == (0, 24)            # last keyframe before the tail (frame 30)
    assert (segs[1].tail_from, segs[1].head_to) == (24, 12)   # first keyframe after the head (frame 6)
    assert sum(s.frames(t) for s in segs) == t.frames
    # A clip with no whole GOP between its joins is split inside the re-encoded part.
    short = build_timeline(_rows(36, 14, 36), Fraction(12), default=Transition(type="crossfade", duration=0.5))
    segs = plan_segments(short, [[0, 12, 24], [0, 12], [0, 12, 24]])
    assert [s.kind for s in segs] == ["copy", "blend", "blend", "copy"]
    assert sum(s.frames(short) for s in segs) == short.frames


def test_audio_graph_concats_cuts_and_crossfades_overlaps_by_exact_samples():
    t = build_timeline(_rows(24, 24, 24), Fraction(12), transitions={"s2": Transition(type="crossfade", duration=0.25)})
    graph = audio_graph(t, 1)
    assert "[1:a][2:a]concat=n=2:v=0:a=1[j0]" in graph
    assert "[j0][3:a]acrossfade=ns=12000" in graph and graph.endswith("[joined]")


def test_a_dip_fades_each_side_to_silence_at_its_middle_in_exact_samples():
    t = build_timeline(_rows(24, 24, 24), Fraction(12), default=Transition(type="dip", duration=0.5),
                       transitions={"s1": Transition(type="crossfade", duration=0.25)})
    graph = audio_graph(t, 1)
    n = t.samples_at(6)                                   # 24000 samples of dip into s2
    length = t.samples_at(24)
    assert "[1:a][d1]acrossfade=ns=12000" in graph
    assert (f"[2:a]afade=t=out:start_sample={length - n}:nb_samples={n // 2}:curve=qua,"
            f"atrim=start_sample=0:end_sample={length - n // 2},asetpts=PTS-STARTPTS[d1]") in graph
    assert (f"[3:a]afade=t=in:start_sample={n // 2}:nb_samples={n // 2}:curve=qua,"
            f"atrim=start_sample={n // 2}:end_sample={length},asetpts=PTS-STARTPTS[d2]") in graph
    assert "[j0][d2]concat=n=2:v=0:a=1[j1]" in graph
    # Samples out = sum of clips - the dip's overlap - the crossfade's overlap.
    assert (length - n // 2) + (length - n // 2) + length - 12000 == t.samples_at(t.frames)


@pytest.mark.slow
def test_a_dip_goes_through_silence_and_a_crossfade_does_not(tmp_path):
    import numpy as np

    from tests.media import audio_pcm, tone_clip

    paths = [tone_clip(tmp_path / f"t{i}.mov", freq=f, seconds=1.5) for i, f in enumerate((440, 660))]
    levels = {}
    for kind in ("dip", "crossfade"):
        store, normalized, keys = _stitch(paths, tmp_path / kind, Edit(transition=Transition(type=kind, duration=0.5)))
        timeline = keys["timeline"]
        joined = tmp_path / kind / "joined.wav"                        # the join graph alone: exact in samples
        ffmpeg.run([*(a for n in normalized for a in ("-i", str(store.path(n.key)))),
                    "-filter_complex", audio_graph(timeline, 0), "-map", "[joined]", "-c:a", "pcm_s16le", str(joined)])
        assert len(audio_pcm(joined)[0]) == timeline.samples
        pcm, rate = audio_pcm(store.path(keys["video"]))
        assert abs(len(pcm) / rate - timeline.duration) <= 1 / FPS
        middle = timeline.seconds(timeline.items[1].start) + timeline.seconds(timeline.joins[0].frames) / 2
        window = pcm[int((middle - 0.005) * rate):int((middle + 0.005) * rate)]
        levels[kind] = 20 * np.log10(max(1e-9, float(np.sqrt((window ** 2).mean()))))
        steady = pcm[int(0.4 * rate):int(0.6 * rate)]
        assert 20 * np.log10(np.sqrt((steady ** 2).mean())) > -20     # the tones themselves are loud
    assert levels["dip"] < -50 and levels["crossfade"] > -30, levels

    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").write_text(
        "title: T\ntransition: {type: crossfade, duration: 0.5}\nscenes:\n"
        "  - id: a\n    action: x\n  - id: b\n    action: y\n    transition: {type: wipe}\n"
    )
    with pytest.raises(ProjectError) as err:
        load_project(folder)
    assert "project.yaml:8: scenes[1].transition.type:" in str(err.value)
    (folder / "project.yaml").write_text(
        "title: T\ntransition: {type: crossfade, duration: 0.5}\nscenes:\n"
        "  - id: a\n    action: x\n    chapter: Start\n  - id: b\n    action: y\n    transition: {type: dip, duration: 1}\n"
    )
    edit = load_project(folder).edit()
    assert edit.transition.type == "crossfade" and edit.transitions["b"].type == "dip"
    assert edit.chapters == {"a": "Start"}


def test_a_transition_on_the_first_scene_is_an_error_unless_a_title_card_precedes_it(tmp_path):
    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    folder.mkdir()
    body = ("scenes:\n  - id: a\n    action: x\n    transition: {type: dip, duration: 0.5}\n"
            "  - id: b\n    action: y\n")
    (folder / "project.yaml").write_text("title: T\n" + body)
    with pytest.raises(ProjectError) as err:
        load_project(folder)
    assert "project.yaml:5: scenes[0].transition: the first scene has no join before it" in str(err.value)
    assert "title_card" in str(err.value)
    # After a title card it is the join from the card, and the timeline uses it.
    (folder / "project.yaml").write_text("title: T\ntitle_card: {text: Hi, duration: 1}\n" + body)
    edit = load_project(folder).edit()
    rows = [dict(scene_id="title card", key="k", frames=12, kind="card"),
            dict(scene_id="a", key="ka", frames=12), dict(scene_id="b", key="kb", frames=12)]
    t = build_timeline(rows, Fraction(12), default=edit.transition, transitions=edit.transitions)
    assert [(j.type, j.frames) for j in t.joins] == [("dip", 6), ("cut", 0)]




@pytest.mark.slow
def test_hard_cuts_do_not_click(tmp_path):
    # Tones at frequencies that stop mid-cycle: an unfaded cut steps from one level to another.
    paths = [tone_clip(tmp_path / f"t{i}.mov", freq=f, seconds=1.0) for i, f in enumerate((441.7, 663.3, 552.9))]
    store, _, keys = _stitch(paths, tmp_path, None)
    pcm, rate = audio_pcm(store.path(keys["video"]))
    # Measured on the stitch before edge fades (main at e1a1a76): 0.0108 and 0.0120 at the joins;
    # with 4 ms fades 0.0006-0.0007; the tones alone read 0.0005-0.0011 mid-clip.
    joins = [click_energy(pcm, rate, t) for t in (1.0, 2.0)]
    assert max(joins) < 0.003, joins
    assert click_energy(pcm, rate, 0.5) > 0.0002          # the measure hears the tone itself


MARKED = [dict(seconds=2.0), dict(seconds=2.5), dict(seconds=3.0, audio_rate=None), dict(seconds=2.0)]


@pytest.mark.slow
def test_crossfades_and_dips_keep_sync_and_exact_duration(tmp_path):
    paths = [marked_clip(tmp_path / f"m{i}.mp4", width=200, height=200, fps=FPS, at=1.0, **shape)
             for i, shape in enumerate(MARKED)]
    edit = Edit(transition=Transition(type="crossfade", duration=0.5),
                transitions={"s2": Transition(type="dip", duration=0.5), "s3": Transition(type="cut")})
    store, normalized, keys = _stitch(paths, tmp_path, edit, speech=["a", "b", "c", "d"])
    timeline = keys["timeline"]
    assert [j.frames for j in timeline.joins] == [6, 6, 0]
    assert timeline.frames == 24 + 30 + 36 + 24 - 12

    final = store.path(keys["video"])
    info = probe(final, count_frames=True)
    assert info.video_frames == timeline.frames
    assert keys["duration"] == pytest.approx(timeline.frames / FPS)
    luma, fps = frame_luma(final)
    pcm, rate = audio_pcm(final)
    assert len(luma) == timeline.frames
    assert abs(len(pcm) / rate - timeline.frames / FPS) <= 1 / FPS
    marks = [timeline.seconds(item.start) + 1.0 for item in timeline.items]
    assert flash_onsets(luma, fps) == pytest.approx(marks, abs=0.5 / FPS)
    with_audio = [m for m, shape in zip(marks, MARKED) if shape.get("audio_rate", 1)]
    beeps = beep_onsets(pcm, rate)
    assert len(beeps) == len(with_audio)
    for beep, mark in zip(beeps, with_audio):
        assert abs(beep - mark) <= 1 / FPS, (beep, mark)
    # The editor handoff: final.otio reads back with one clip per item at the same frames.
    import opentimelineio as otio

    cut = otio.adapters.read_from_file(str(store.path(keys["otio"])))
    clips = list(cut.find_clips())
    assert [c.name for c in clips] == ["s0", "s1", "s2", "s3"]
    for clip, item in zip(clips, timeline.items):
        placed = clip.trimmed_range_in_parent()
        assert placed.start_time.to_frames() == item.start
        assert Path(clip.media_reference.target_url.removeprefix("file://")) == store.path(item.key)
        assert clip.markers[0].name == item.scene_id
    assert cut.duration().to_frames() == timeline.frames
    assert [(t.name, t.out_offset.to_frames()) for t in cut.tracks[0]
            if isinstance(t, otio.schema.Transition)] == [("crossfade", 6), ("dip", 6)]
    # ...and the CMX 3600 EDL (timecode at 24: two ticks per 12 fps frame) parses with its reader.
    edl = otio.adapters.read_from_file(str(store.path(keys["edl"])), adapter_name="cmx_3600", rate=24)
    assert [c.trimmed_range_in_parent().start_time.to_frames() for c in edl.find_clips()] == \
        [2 * item.start for item in timeline.items]
    assert edl.duration().to_frames() == 2 * timeline.frames
    # Subtitle cues follow the new starts.
    import pysubs2

    cues = pysubs2.load(str(store.path(keys["subtitles"])))
    assert [e.start / 1000 for e in cues] == pytest.approx([timeline.seconds(i.start) for i in timeline.items], abs=0.002)
