"""Loading and validating project.yaml, through the library and through `reelflow validate`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from projects import ProjectError, load_project
from reelflow.cli import app
from tests.conftest import DEMO
from tests.media import marked_clip

runner = CliRunner()


def write_spec(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "characters").mkdir(exist_ok=True)
    (folder / "characters" / "max.png").write_bytes((DEMO / "characters" / "max.png").read_bytes())
    (folder / "project.yaml").write_text(text)
    return folder


GOOD = """\
title: Test
characters:
  max: {name: Max, image: characters/max.png}
scenes:
  - id: one
    character: max
    action: waving
    speech: Hello there.
    duration: 3
"""


def test_demo_loads_with_six_scenes_and_thirty_seconds():
    project = load_project(DEMO)
    assert project.slug == "demo"
    assert len(project.scenes) == 6 and len(project.characters) == 2
    assert sum(project.scene_duration(s) for s in project.scenes) == 30
    assert all(s.speech and s.atmosphere for s in project.scenes)


def test_validate_demo_exits_zero():
    result = runner.invoke(app, ["validate", str(DEMO)])
    assert result.exit_code == 0, result.output
    assert "6 scenes OK" in result.output


# (case, the YAML edit, the field path expected in the message, a word from the message)
BROKEN = [
    ("missing field", lambda d: d.pop("title"), "title", "required"),
    ("wrong type", lambda d: d["scenes"][0].update(duration="five"), "scenes[0].duration", "number"),
    ("unknown key", lambda d: d["scenes"][0].update(colour="red"), "scenes[0].colour", "unknown key"),
    ("token in speech", lambda d: d["scenes"][0].update(speech="Hi <S>there<E>"), "scenes[0].speech", "token"),
    ("audcap in atmosphere", lambda d: d["scenes"][0].update(atmosphere="<AUDCAP>x"), "scenes[0].atmosphere", "token"),
    ("image outside", lambda d: d["characters"]["max"].update(image="../../etc/passwd"), "characters.max.image", "outside"),
    ("absolute image", lambda d: d["characters"]["max"].update(image="/etc/passwd"), "characters.max.image", "outside"),
    ("missing image", lambda d: d["characters"]["max"].update(image="characters/nope.png"), "characters.max.image", "not found"),
    ("unknown character", lambda d: d["scenes"][0].update(character="bob"), "scenes[0].character", "unknown character"),
    ("negative duration", lambda d: d["scenes"][0].update(duration=-2), "scenes[0].duration", "greater than 0"),
    ("unknown voice", lambda d: d["characters"]["max"].update(voice="klingon"), "characters.max.voice", "voice"),
    ("bad fit", lambda d: d.update(output={"fit": "stretch"}), "output.fit", "pad"),
    ("duplicate id", lambda d: d["scenes"].append(dict(d["scenes"][0])), "scenes[1].id", "duplicate"),
    ("loader field", lambda d: d.update(slug="x"), "slug", "unknown key"),
]


@pytest.mark.parametrize("case,edit,field,word", BROKEN, ids=[b[0] for b in BROKEN])
def test_validate_reports_one_line_naming_file_line_and_field(tmp_path, case, edit, field, word):
    data = yaml.safe_load(GOOD)
    edit(data)
    folder = write_spec(tmp_path / "p", yaml.safe_dump(data, sort_keys=False))
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert re.match(rf"^{re.escape(str(folder / 'project.yaml'))}:\d+: {re.escape(field)}: ", lines[0]), lines[0]
    assert word in lines[0]


def test_line_numbers_point_at_the_offending_key(tmp_path):
    folder = write_spec(tmp_path / "p", GOOD.replace("duration: 3", "duration: -1"))
    with pytest.raises(ProjectError) as info:
        load_project(folder)
    [problem] = info.value.problems
    assert problem.line == GOOD.splitlines().index("    duration: 3") + 1


def test_bad_yaml_is_one_line_with_its_line_number(tmp_path):
    folder = write_spec(tmp_path / "p", GOOD + "  - id: [unclosed\n")
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2
    [line] = [line for line in result.output.splitlines() if line.strip()]
    assert "invalid YAML" in line and re.search(r"project\.yaml:\d+:", line)


def test_every_problem_is_listed_at_once(tmp_path):
    data = yaml.safe_load(GOOD)
    data["scenes"][0].update(duration=-1, colour="red")
    data["characters"]["max"]["image"] = "../x.png"
    folder = write_spec(tmp_path / "p", yaml.safe_dump(data))
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2
    # schema and semantic problems together, in one pass
    assert len([line for line in result.output.splitlines() if line.strip()]) == 3


def test_missing_project_folder_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "no such file" in result.output and "Traceback" not in result.output


def test_speech_too_fast_for_the_clip_warns_with_numbers(tmp_path):
    fast = GOOD.replace("speech: Hello there.", "speech: " + " ".join(["word"] * 15))
    folder = write_spec(tmp_path / "p", fast)
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0
    assert "15 words in 3 s is 5.0 words/s" in result.output


@pytest.mark.parametrize("command", ["validate", "prompts"])
def test_validate_and_prompts_warn_at_the_pace_the_render_warns_at(tmp_path, monkeypatch, command):
    """REELFLOW_MAX_WORDS_PER_SECOND decides the warning in every command (validate and prompts
    used 3 words/s whatever it said, so they and the render disagreed)."""
    from reelflow.settings import reload_settings

    fast = GOOD.replace("speech: Hello there.", "speech: " + " ".join(["word"] * 15))
    folder = write_spec(tmp_path / "p", fast)
    monkeypatch.setenv("REELFLOW_MAX_WORDS_PER_SECOND", "6")
    reload_settings()
    assert "words/s" not in runner.invoke(app, [command, str(folder)]).output      # 5 words/s is under 6
    monkeypatch.setenv("REELFLOW_MAX_WORDS_PER_SECOND", "4")
    reload_settings()
    warned = runner.invoke(app, [command, str(folder)])
    assert "15 words in 3 s is 5.0 words/s, above the ~4 words/s" in warned.output, warned.output


def test_a_scene_s_audio_longer_than_the_scene_warns(tmp_path):
    from media import ffmpeg

    folder = write_spec(tmp_path / "p", GOOD.replace("    duration: 3\n", "    duration: 3\n    audio: line.wav\n"))
    ffmpeg.run(["-f", "lavfi", "-i", "sine=sample_rate=48000:d=8", str(folder / "line.wav")])
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0
    assert "scene 'one': audio line.wav is 8.0 s, the scene 3 s: its last 5.0 s are not heard" in result.output


def test_a_footage_scene_longer_than_its_footage_warns(tmp_path):
    """The scene's end was the footage's last frame frozen, in silence, without a word anywhere.
    Footage of the scene's length to the output frame, or a scene without a duration (it takes
    the footage's), does not warn; footage whose sound runs on is not said to be silent."""
    from media import ffmpeg
    from projects import load_project
    from tasks.plan import plan_project

    scenes = "".join(f"  - {{id: {sid}, footage: clips/{clip}{f', duration: {d}' if d else ''}}}\n"
                     for sid, clip, d in [("broll", "broll.mp4", 5), ("exact", "broll.mp4", 2),
                                          ("frame", "broll.mp4", 2.01), ("own", "broll.mp4", None),
                                          ("talk", "talk.mp4", 4)])
    folder = write_spec(tmp_path / "p", GOOD + scenes)
    (folder / "clips").mkdir()
    marked_clip(folder / "clips" / "broll.mp4", width=160, height=288, fps=12, seconds=2, audio_rate=None)
    ffmpeg.run(["-f", "lavfi", "-i", "color=c=gray:s=160x288:r=12:d=2", "-f", "lavfi", "-i", "sine=d=3",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(folder / "clips" / "talk.mp4")])
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
    held = "scene 'broll': footage clips/broll.mp4 is 2.0 s, the scene 5 s: its last 3.0 s are its last frame held, in silence"
    talk = "scene 'talk': footage clips/talk.mp4 is 2.0 s, the scene 4 s: its last 2.0 s are its last frame held"
    assert held in result.output and talk in result.output and f"{talk}, in silence" not in result.output
    assert result.output.count("footage") == 2, result.output
    warned = {chain[0].scene_id: chain[0].warnings for chain in plan_project(load_project(folder))}   # render, render.json, storyboard
    assert warned == {"one": [], "broll": [held], "exact": [], "frame": [], "own": [], "talk": [talk]}


def test_text_drawn_in_glyphs_the_font_lacks_warns_once_per_place(tmp_path):
    """Roboto has Latin, Greek and Cyrillic; kana, kanji, arrows and emoji would be boxes."""
    spec = (GOOD.replace("name: Max", "name: マックス").replace("action: waving", "action: 手を振る waving")
            .replace("speech: Hello there.", "speech: Привет, hello → there.")
            .replace("scenes:", "title_card: {text: Ελλάδα ok}\nend_card: {text: bye 😀}\nlower_third: true\n"
                     "output: {subtitles: burn}\nscenes:")
            + "  - id: two\n    character: max\n    speech: Again.\n    action: nodding\n")
    result = runner.invoke(app, ["validate", str(write_spec(tmp_path / "p", spec))])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: scene 'one': the lower third: the font (Roboto) has no glyph for マックス: drawn as boxes",
        "warning: scene 'one': the burned subtitles: the font (Roboto) has no glyph for →: drawn as boxes",
        "warning: scene 'one': the animatic engine's caption: the font (Roboto) has no glyph for 手を振る: drawn as boxes",
        "warning: end_card.text: the font (Roboto) has no glyph for 😀: drawn as boxes",
    ]


def test_text_over_footage_in_glyphs_the_font_lacks_warns_too(tmp_path):
    """A footage scene's burned subtitles and end card were drawn as boxes without a warning:
    its plan dropped the on-screen warnings every generated scene's carries."""
    spec = GOOD.replace("scenes:", "end_card: {text: bye 😀}\noutput: {subtitles: burn}\nscenes:") \
        + "  - {id: broll, footage: clips/broll.mp4, speech: Wow → now.}\n"
    folder = write_spec(tmp_path / "p", spec)
    (folder / "clips").mkdir()
    marked_clip(folder / "clips" / "broll.mp4", width=160, height=288, fps=12, seconds=1, audio_rate=None)
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if line.startswith("warning:")] == [
        "warning: end_card.text: the font (Roboto) has no glyph for 😀: drawn as boxes",
        "warning: scene 'broll': the burned subtitles: the font (Roboto) has no glyph for →: drawn as boxes",
    ]


def test_text_the_font_draws_gives_no_glyph_warning():
    from media.images import undrawable

    assert undrawable("Zoë, Ελλάδα, Привет — “ok” … €5\u200b\u00a0") == ""
    assert undrawable("a 日本 b 日") == "日本"


def test_footage_scene_needs_no_character(tmp_path):
    folder = write_spec(tmp_path / "p", GOOD + "  - id: broll\n    footage: clips/b.mp4\n")
    (folder / "clips").mkdir()
    marked_clip(folder / "clips" / "b.mp4", width=64, height=64, fps=24, seconds=0.5)
    project = load_project(folder)
    assert project.scenes[1].footage == "clips/b.mp4"


def test_a_path_that_cannot_be_resolved_is_one_line(tmp_path):
    """A symlink loop or a name longer than the system allows was a traceback (exit 1)."""
    folder = write_spec(tmp_path / "p", GOOD.replace("image: characters/max.png", "image: loop/x.png"))
    (folder / "loop").symlink_to("loop")
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "characters.max.image: 'loop/x.png' cannot be resolved (a symlink loop)" in result.output
    included = write_spec(tmp_path / "i", GOOD.replace("title: Test", "title: Test\ntemplate: t.j2"))
    (included / "t.j2").write_text("{% include ('a' * 300) %}")
    result = runner.invoke(app, ["validate", str(included)])
    assert result.exit_code == 2 and "(cannot be resolved)" in result.output and "Traceback" not in result.output
    long = write_spec(tmp_path / "q", GOOD.replace("image: characters/max.png", f"image: {'a' * 300}.png"))
    result = runner.invoke(app, ["validate", str(long)])
    assert result.exit_code == 2 and "cannot be resolved (File name too long)" in result.output


def test_a_project_yaml_linked_to_a_file_outside_is_not_read(tmp_path):
    outside = tmp_path / "secret.yaml"
    outside.write_text("api_key: hunter2\n")
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "project.yaml").symlink_to(outside)
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2 and "api_key" not in result.output
    assert "project.yaml: must be a file inside the project folder" in result.output
