"""Captions: lower thirds and the word-by-word karaoke highlight from the TTS word timings."""

from __future__ import annotations

import pytest

from media.timeline import Edit, Transition
from storage import LocalStore
from tasks.models import ClipRef
from tasks.stitch import normalize_stored, stitch_render
from tests.media import tone_clip
from tests.cut_helpers import FPS, SMALL


def test_lower_third_names_whoever_speaks(tmp_path):
    from projects import load_project

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").write_text(
        "title: T\nlower_third: true\ncharacters:\n  max: {name: Max}\n  lena: {name: Lena}\nscenes:\n"
        "  - {id: a, character: max, speech: Hi.}\n  - {id: b, character: max, action: waves}\n"
        "  - {id: c, character: lena, speech: Hello., speaker2: {character: max, speech: Hey.}}\n")
    spec = load_project(folder)
    assert spec.lower_third.duration == 3.0
    assert spec.speaker_names() == {"a": "Max", "c": "Lena & Max"}


@pytest.mark.slow
def test_lower_third_is_drawn_over_the_first_seconds_only(tmp_path):
    import av

    from media.cards import LowerThird

    store = LocalStore(tmp_path / "store")
    path = tone_clip(tmp_path / "c.mov", seconds=2.0, color="gray")
    ref = ClipRef(scene_id="a", index=0, key=store.put_file("footage/c.mov", path), engine=None, cached=False,
                  duration=2.0)
    plain = normalize_stored(ref, SMALL, store, tmp_path / "w")
    named = normalize_stored(ref, SMALL, store, tmp_path / "w", lower_third=("Max", LowerThird(duration=1)))
    assert named.key != plain.key and named.frames == plain.frames == 24
    with av.open(str(store.path(named.key))) as c:
        frames = [f.to_ndarray(format="gray").astype(float) for f in c.decode(video=0)]
    band = slice(int(240 * 0.6), int(240 * 0.75))
    assert frames[3][band].max() > 200 and frames[3][band].min() < 60      # white name on a dark bar
    assert frames[18][band].max() < 160                                    # gone after a second
    assert frames[3][:int(240 * 0.6)].std() < 3                            # nothing drawn elsewhere


# -- word-by-word highlight ---------------------------------------------------------------------

_KF = r"\{\\kf?(\d+)\}"


def _karaoke(text: str) -> tuple[list[str], list[int], int]:
    """(words, their \\kf centiseconds, the silent lead-in) of one karaoke event's text."""
    import re

    lead = re.match(r"^\{\\k(\d+)\}(?=\{)", text)
    words = re.findall(r"\{\\kf(\d+)\}([^{\\]+)", text.replace(r"\N", " "))
    return [w.strip() for _, w in words], [int(d) for d, _ in words], int(lead.group(1)) if lead else 0


def test_espeak_word_timings_are_monotonic_and_inside_the_spoken_audio(tmp_path):
    import wave

    from media import tts

    text = "Max takes the lead in lap 12, and the crowd goes wild!"
    speech = tts.speak(text, tmp_path / "a.wav", "en-us")
    with wave.open(str(tmp_path / "a.wav")) as w:
        seconds = w.getnframes() / w.getframerate()
    assert speech.duration == pytest.approx(seconds)
    spoken = [w.text for w in speech.words]
    assert spoken[:4] == ["Max", "takes", "the", "lead"] and "wild" in spoken
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts) and starts[0] < 0.2 and starts[-1] < seconds
    assert all(0 <= w.start <= w.end <= seconds for w in speech.words)
    assert all(text[w.offset:].startswith(w.text) for w in speech.words)
    # Deterministic: the same line gives the same timings (and the same bytes).
    again = tts.speak(text, tmp_path / "b.wav", "en-us")
    assert again == speech and (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_karaoke_has_one_kf_per_word_summing_to_the_cue():
    from media.karaoke import SpokenLine, WordTiming
    from media.subtitles import build_karaoke

    line = SpokenLine(text="Hello there, my old friend.", words=[
        WordTiming(text="Hello", offset=0, start=0.30, end=0.62), WordTiming(text="there", offset=6, start=0.62, end=1.2),
        WordTiming(text="my", offset=13, start=1.2, end=1.35), WordTiming(text="old", offset=16, start=1.35, end=1.6),
        WordTiming(text="friend", offset=20, start=1.6, end=2.4)])
    cues = [(1.5, 4.0, "Hello there, my old friend.", line),            # TTS timings
            (4.0, 6.25, "No timings here, so words share it by length", None)]   # proportional fallback
    subs = build_karaoke(cues)
    assert subs.styles["Default"].primarycolor != subs.styles["Default"].secondarycolor
    first, second = subs
    words, ticks, lead = _karaoke(first.text)
    assert words == ["Hello", "there,", "my", "old", "friend."]
    assert lead == 30 and ticks == [32, 58, 15, 25, 90]   # each from its own start; the last holds to the end
    assert lead + sum(ticks) == (first.end - first.start) // 10 == 250
    words, ticks, lead = _karaoke(second.text)
    assert len(words) == 9 and lead == 0 and sum(ticks) == 225
    assert ticks[words.index("length")] > ticks[words.index("by")]
    # Timings that do not fit the cue's text fall back to proportional ones.
    other = build_karaoke([(0.0, 2.0, "Completely different words", line)])[0]
    assert sum(_karaoke(other.text)[1]) == 200 and _karaoke(other.text)[2] == 0


def test_a_dash_the_voice_does_not_speak_takes_no_word_s_time():
    """'move - yes': the dash got move's start, so 'move' lit up for no time and the dash held it."""
    from media.karaoke import SpokenLine, WordTiming
    from media.subtitles import build_karaoke

    line = SpokenLine(text="move - yes -- no", words=[
        WordTiming(text="move", offset=0, start=0.0, end=0.5), WordTiming(text="yes", offset=7, start=0.6, end=1.0),
        WordTiming(text="no", offset=14, start=1.2, end=1.5)])
    words, ticks, lead = _karaoke(build_karaoke([(0.0, 2.0, "move - yes -- no -", line)])[0].text)
    assert words == ["move", "-", "yes", "--", "no", "-"]
    assert ticks == [60, 0, 60, 0, 80, 0]              # each spoken word until the next; dashes take none


def test_highlight_needs_burned_subtitles(tmp_path):
    from projects import load_project
    from projects.loader import ProjectError

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").write_text(
        "title: T\noutput:\n  subtitles: srt\n  highlight: word\nscenes:\n  - id: a\n    action: x\n")
    with pytest.raises(ProjectError) as err:
        load_project(folder)
    assert "project.yaml:4: output.highlight:" in str(err.value) and "subtitles: burn" in str(err.value)
    (folder / "project.yaml").write_text(
        "title: T\noutput:\n  subtitles: burn\n  highlight: word\nscenes:\n  - id: a\n    action: x\n")
    assert load_project(folder).output.highlight == "word"


@pytest.mark.slow
def test_a_burned_render_highlights_words_from_the_animatic_tts(tmp_path):
    import av

    from engines.animatic import AnimaticEngine
    from engines.base import ClipRequest
    from media.karaoke import words_key, write_words
    from media.subtitles import build_karaoke

    store = LocalStore(tmp_path / "store")
    refs = []
    for i, line in enumerate(("Hello there, my friend.", "The race is on")):
        request = ClipRequest(scene_id=f"s{i}", prompt=f"a driver waving <S>{line}<E>", width=160, height=240,
                              fps=FPS, duration=2.0, seed=i, caption_at="top")
        result = AnimaticEngine().generate(request, tmp_path / f"g{i}")
        key = store.put_file(f"clips/c{i}.mp4", result.path)
        store.put_file(words_key(key), write_words(result.meta["words"], tmp_path / f"w{i}.json"))
        refs.append(ClipRef(scene_id=f"s{i}", index=i, key=key, engine="animatic", cached=False, duration=2.0,
                            speech=line))
    profile = SMALL.model_copy(update={"subtitles": "burn", "highlight": "word"})
    normalized = [normalize_stored(r, profile, store, tmp_path / "work") for r in refs]
    assert all(n.words and n.words.words for n in normalized)        # read back from beside the clip
    edit = Edit(transition=Transition(type="crossfade", duration=0.5))
    keys = stitch_render(normalized, profile, store, tmp_path / "work", "renders/t/1", edit)
    timeline = keys["timeline"]
    for (start, end, _text, line), event in zip(timeline.spoken_cues(), build_karaoke(timeline.spoken_cues())):
        words, ticks, lead = _karaoke(event.text)
        assert len(words) == len(line.words) and lead + sum(ticks) == round((end - start) * 100)
        assert lead == round(line.words[0].start * 100)                    # the 0.3 s lead-in before the line
    with av.open(str(store.path(keys["video"]))) as c:
        frames = [f.to_ndarray(format="rgb24").astype(float) for f in c.decode(video=0)]
    assert len(frames) == timeline.frames
    band = slice(240 * 2 // 3, 240)
    # The line's words turn yellow as they are spoken: none before the lead-in, some by 1.25 s.
    def yellow(frame):
        r, g, b = frame[band, :, 0], frame[band, :, 1], frame[band, :, 2]
        return int(((r > 150) & (g > 120) & (b < 100)).sum())
    assert yellow(frames[2]) == 0 and yellow(frames[15]) > 20, (yellow(frames[2]), yellow(frames[15]))


def test_speech_is_text_in_subtitle_files_not_markup(tmp_path):
    """In WebVTT, 'a<b' opened a bold tag and a line holding '-->' began a new cue; an SRT
    line holding '-->' is taken for a timing line by lenient players."""
    from media.subtitles import build_subtitles, write_subtitles

    subs = build_subtitles([(0, 2, "Tom & Jerry: a<b, <i>sic</i>"), (2, 5, "from 00:00:00,000 --> 00:00:09,000 on")])
    vtt = write_subtitles(subs, tmp_path / "s.vtt", "vtt").read_text()
    assert "Tom &amp; Jerry: a&lt;b, &lt;i&gt;sic&lt;/i&gt;" in vtt
    assert [line for line in vtt.splitlines() if "-->" in line] == ["00:00:00.000 --> 00:00:02.000",
                                                                  "00:00:02.000 --> 00:00:05.000"]
    srt = write_subtitles(subs, tmp_path / "s.srt", "srt").read_text()
    assert [line for line in srt.splitlines() if "-->" in line] == ["00:00:00,000 --> 00:00:02,000",
                                                                  "00:00:02,000 --> 00:00:05,000"]
    assert "from 00:00:00,000 \u2192 00:00:09,000 on" in srt
    assert "Tom & Jerry: a<\u200bb, <\u200bi>sic<\u200b/i>" in srt    # no '<' opens a tag (zero-width space)
    assert subs[0].text == "Tom & Jerry: a<b, <i>sic</i>"           # the cues themselves are untouched


def test_html_tags_in_speech_do_not_style_srt_or_burned_subtitles(tmp_path):
    """ffmpeg's SRT decoder, which burns the subtitles, made '<font size=60 color=red>' a huge red
    line across the picture; players style SRT tags too. What ffmpeg reads back is the text."""
    from media import ffmpeg
    from media.subtitles import build_subtitles, write_subtitles

    said = '<font size="60" color="#ff0000">HUGE</font> <b>bold</b> <u>u</u> 1 < 2 <3'
    srt = write_subtitles(build_subtitles([(0, 2, said)]), tmp_path / "s.srt", "srt")
    ffmpeg.run(["-i", str(srt), str(tmp_path / "s.ass")])
    dialogue = [line for line in (tmp_path / "s.ass").read_text(encoding="utf-8").splitlines() if line.startswith("Dialogue")]
    text = dialogue[0].split(",", 9)[9]
    assert "{" not in text and text.replace("\u200b", "").replace("\\N", " ") == said


def test_braces_and_backslashes_in_speech_are_kept_as_text_not_ass_tags(tmp_path):
    """Cues are ASS inside pysubs2: '{\\fs300}' was a style override (dropped from SRT, drawn
    when burned) and '\\N' a line break. They are text, as in the karaoke cues."""
    from media.subtitles import build_subtitles, write_subtitles

    subs = build_subtitles([(0, 2, r"{\fs300}BIG a\Nb")])
    assert write_subtitles(subs, tmp_path / "s.srt", "srt").read_text().splitlines()[2] == "(/fs300)BIG a/Nb"


def test_the_animatic_caption_stays_inside_the_frame_and_says_when_it_is_cut(tmp_path):
    """Captions were wrapped by a character count: wide letters ran off both edges, and a long
    action lost its end without a sign."""
    import numpy as np
    from PIL import Image

    from media.images import CAPTION_LINES, caption_lines, caption_png, load_font

    action = "W" * 40 + " celebrating victory, pumping his fist in the air while the whole crowd goes wild " * 3
    png = caption_png(action, 192, 320, tmp_path / "c.png")
    rgba = np.asarray(Image.open(png))
    white = (rgba[:, :, :3].min(axis=2) > 200) & (rgba[:, :, 3] > 200)
    cols = np.nonzero(white.any(axis=0))[0]
    assert cols.min() >= 192 // 24 - 1 and cols.max() <= 192 - 192 // 24
    font, room = load_font(max(14, 192 // 22)), 192 - 2 * (192 // 24)
    lines = caption_lines(action, font, room)
    assert len(lines) == CAPTION_LINES and lines[-1].endswith("\u2026")
    assert all(font.getlength(line) <= room for line in lines)
    assert caption_lines("waving", font, room) == ["waving"]
