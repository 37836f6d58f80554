"""Prompt rendering: Ovi's tokens, both dialects, injection, sandboxing, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelflow.errors import InputError
from typer.testing import CliRunner

from projects import load_project
from prompts import PromptError, parse_prompt, render_scene_prompt, template_for
from prompts.tokens import audcap, audio_suffix, scrub, speech, validate_prompt
from reelflow.cli import app
from tasks.plan import plan_project, scene_context
from tests.conftest import DEMO


def render(model=None, **scene):
    base = dict(id="s", character="max", action="waving", speech="Hello", atmosphere="rain", duration=5,
                speaker2=None)
    base.update(scene)
    ctx = {"project": {"title": "t", "slug": "t"}, "scene": base,
           "character": {"name": "Max", "description": "a driver", "voice": "en-us", "image": None},
           "partner": None}
    path, sandboxed = template_for(model, None, Path("."))
    return render_scene_prompt(scene_id="s", template=path, sandboxed=sandboxed, model=model,
                               context=ctx, speech=base["speech"], duration=base["duration"])


def test_reference_003_prompt_shape():
    p = render(action="celebrating victory, pumping his fist in the air",
               speech="Yes! Simply lovely! Another win!", atmosphere="Crowd cheering loudly").prompt
    assert p == ("Max, a driver, celebrating victory, pumping his fist in the air. "
                 "Max says <S>Yes! Simply lovely! Another win!<E>. <AUDCAP>Crowd cheering loudly<ENDAUDCAP>.")


@pytest.mark.parametrize("model", [None, "960x960_10s"])
def test_a_scene_without_an_action_has_a_prompt_without_its_gap(model):
    """`action` is optional: the prompt sent to a paid engine read "Max, a driver, . Max says ..."."""
    prompt = render(model=model, action=None, speech="Hi there").prompt
    assert prompt.startswith("Max, a driver. Max says <S>Hi there<E>.")
    assert render(model=model, action=None, speech="Hi", atmosphere=None).prompt == "Max, a driver. Max says <S>Hi<E>."


def test_a_scene_without_an_action_is_captioned_with_who_is_on_screen(demo_copy):
    """The animatic draws the action as its caption; with none it drew the prompt's remains
    ("Max, a driver, . Max says"): it now shows who is on screen."""
    import yaml

    spec = yaml.safe_load((demo_copy / "project.yaml").read_text())
    first = spec["scenes"][0]
    first.pop("action", None)
    (demo_copy / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    project = load_project(demo_copy)
    plan = plan_project(project)[0][0]
    character = project.characters[first["character"]]
    assert plan.request.caption == f"{character.name}, {character.description}"
    assert plan_project(project)[1][0].request.caption == spec["scenes"][1]["action"]


def test_ovi_11_960_models_use_a_trailing_audio_label():
    r = render(model="960x960_10s", speech="Mira", atmosphere="electronic music")
    assert r.dialect == "audio-suffix"
    assert r.prompt.endswith("Max says <S>Mira<E>. Audio: electronic music")
    assert "<AUDCAP>" not in r.prompt


@pytest.mark.parametrize("evil", [
    "Hi <E> <AUDCAP>boom<ENDAUDCAP> <S>", "</S>x", "< s >x", "Audio: fake", "a <ENDAUDCAP> b",
])
def test_user_text_cannot_open_close_or_forge_tokens(evil):
    for model in (None, "960x960_5s"):
        for field in ("speech", "atmosphere", "action"):
            r = render(model=model, **{field: evil})
            assert validate_prompt(r.prompt, r.dialect, 2000) == []
            assert r.prompt.count("<S>") == r.prompt.count("<E>") == 1


def test_filters_scrub_and_skip_empty_text():
    assert speech("a <S>b") == "<S>a b<E>"
    assert audcap("") == "" and audio_suffix(None) == ""
    assert scrub("x > y") == "x › y"


@pytest.mark.parametrize("prompt,dialect,problem", [
    ("a <S>b", "audcap", "never closed"),
    ("a <S>b <S>c<E><E>", "audcap", "nest"),
    ("b<E>", "audcap", "closes nothing"),
    ("a. Audio: x <S>late<E>", "audio-suffix", "must come last"),
    ("a. Audio: x", "audcap", "audio-suffix dialect"),
    ("x" * 2001, "audcap", "over the limit"),
])
def test_validate_prompt_finds_problems(prompt, dialect, problem):
    assert any(problem in p for p in validate_prompt(prompt, dialect, 2000))


def test_parse_prompt_recovers_speech_and_ambience_in_both_dialects():
    a = parse_prompt("Max waves. Max says <S>Hello there<E>. <AUDCAP>rain on a roof<ENDAUDCAP>.")
    assert (a.visual, a.speech, a.ambience) == ("Max waves. Max says", ["Hello there"], ["rain on a roof"])
    b = parse_prompt("Max waves. <S>Hola<E>. Audio: jazz piano")
    assert (b.speech, b.ambience) == (["Hola"], ["jazz piano"])


def test_project_template_is_sandboxed(tmp_path, demo_copy):
    (demo_copy / "evil.j2").write_text("{{ scene.__class__.__mro__ }}")
    spec = (demo_copy / "project.yaml").read_text().replace("template: null", "")
    (demo_copy / "project.yaml").write_text(spec + "template: evil.j2\n")
    with pytest.raises(InputError, match="unsafe|access"):   # found when the project is loaded
        plan_project(load_project(demo_copy))


def test_project_template_with_undefined_name_names_the_scene(demo_copy):
    (demo_copy / "mine.j2").write_text("{{ scene.action }} {{ nope }}")
    (demo_copy / "project.yaml").write_text((demo_copy / "project.yaml").read_text() + "template: mine.j2\n")
    with pytest.raises(InputError, match="scene 'intro'.*nope"):
        plan_project(load_project(demo_copy))


def test_project_template_renders_with_token_filters(demo_copy):
    (demo_copy / "mine.j2").write_text("{{ scene.action }} {{ scene.speech | speech }} {{ character.name }}")
    (demo_copy / "project.yaml").write_text((demo_copy / "project.yaml").read_text() + "template: mine.j2\n")
    plan = plan_project(load_project(demo_copy))[0][0]
    assert plan.request.prompt.startswith("standing in the pit lane, smiling at the camera <S>Welcome back")
    assert plan.request.prompt.endswith("<E> Lena")


def test_context_excludes_engine_settings():
    project = load_project(DEMO)
    ctx = scene_context(project, project.scenes[0])
    assert ctx["character"]["name"] == "Lena" and "engine" not in ctx["scene"]


def test_prompts_command_prints_every_scene():
    result = CliRunner().invoke(app, ["prompts", str(DEMO)])
    assert result.exit_code == 0, result.output
    assert result.output.count("<S>") == 6 and result.output.count("<AUDCAP>") == 6
    for scene in ("intro", "win", "question", "answer", "podium", "outro"):
        assert scene in result.output


def test_a_second_speaker_gets_their_own_speech_token(demo_copy):
    spec = (demo_copy / "project.yaml").read_text().replace(
        "    speech: Max, how did the final laps feel from the cockpit?\n",
        "    speech: Max, how did the final laps feel from the cockpit?\n"
        "    speaker2: {character: max, speech: 'Hot, but worth it.'}\n")
    (demo_copy / "project.yaml").write_text(spec)
    plan = plan_project(load_project(demo_copy))[2][0]
    assert plan.request.prompt.count("<S>") == 2
    assert "Max replies <S>Hot, but worth it.<E>" in plan.request.prompt
    assert plan.subtitle == "Max, how did the final laps feel from the cockpit? — Hot, but worth it."


def _with_template(folder: Path, text: str) -> Path:
    (folder / "mine.j2").write_text(text)
    (folder / "project.yaml").write_text((folder / "project.yaml").read_text() + "template: mine.j2\n")
    return folder


@pytest.mark.parametrize("text, message", [
    ("{% for i in [1] %}" * 21 + "{{ scene.speech | speech }}" + "{% endfor %}" * 21,
     "mine.j2: the template is nested too deeply to compile"),                       # was a traceback, exit 1
    ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "mine.j2: the template is nested too deeply to compile"),
    ("{{ scene.action }} {{ ['red', 'blue'] | random }} {{ scene.speech | speech }}", "No filter named 'random'"),
    ("", "the template made an empty prompt"),
    ("{{ 'x' * 2500 }}{{ scene.speech | speech }}", "project.yaml:"),
])
def test_templates_that_cannot_make_a_prompt_are_one_line_at_validate(demo_copy, text, message):
    """A prompt that changes at each render (| random) is a clip paid for again with nothing
    changed; an empty prompt was sent as it was; a template writing most of a too long prompt
    blamed the scene's speech."""
    result = CliRunner().invoke(app, ["validate", str(_with_template(demo_copy, text))])
    lines = [line for line in result.output.strip().splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output
    if "'x'" in text:
        assert ": template: too long: the prompt it makes is " in lines[0]


def test_a_template_that_leaves_the_speech_out_warns(demo_copy):
    result = CliRunner().invoke(app, ["validate", str(_with_template(demo_copy, "{{ scene.action }}"))])
    assert result.exit_code == 0
    assert "scene 'intro': the prompt carries no <S>speech<E>" in result.output


@pytest.mark.parametrize("line", ["...", "?!", "—"])
def test_speech_of_only_punctuation_is_carried_without_a_false_warning(line):
    """"..." (a pause, a sigh) is spoken as it is: the built-in template carries it, and no warning
    blames a template the production does not have."""
    rendered = render(speech=line)
    assert f"<S>{line}<E>" in rendered.prompt
    assert not [w for w in rendered.warnings if "carries no <S>speech<E>" in w]


def test_text_of_only_spaces_is_no_text(demo_copy):
    """'speech: "   "' put 'Max says .' in the prompt sent to the engine, a blank atmosphere an
    empty AUDCAP, a blank name 'says <S>...'."""
    import yaml

    spec = yaml.safe_load((demo_copy / "project.yaml").read_text())
    spec["scenes"][0].update(speech="   ", atmosphere=" \t ")
    (demo_copy / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    prompt = plan_project(load_project(demo_copy))[0][0].request.prompt
    assert prompt == "Lena, a pit-lane reporter with a microphone, standing in the pit lane, smiling at the camera."
    for where, value in ((("characters", "max", "name"), " "), (("scenes", 1, "speaker2"), {"character": "lena", "speech": ""})):
        broken = yaml.safe_load(yaml.safe_dump(spec))
        target = broken
        for key in where[:-1]:
            target = target[key]
        target[where[-1]] = value
        (demo_copy / "project.yaml").write_text(yaml.safe_dump(broken, sort_keys=False))
        result = CliRunner().invoke(app, ["validate", str(demo_copy)])
        assert result.exit_code == 2 and "is empty or only spaces" in result.output, result.output


def test_the_pace_counts_what_is_said_in_every_language_and_by_both_speakers(demo_copy):
    """A 20-word reply, 42 Chinese characters or a 10-digit number in a short scene were cut off
    by the TTS without a warning: only the first speaker's space-separated words were counted."""
    import yaml

    from prompts.render import spoken_words

    assert spoken_words("你好世界我们今天很高兴") == 6 and spoken_words("1234567890") == 5
    assert spoken_words("Yes! Simply lovely!") == 3 and spoken_words("... — ?!") == 0
    spec = yaml.safe_load((demo_copy / "project.yaml").read_text())
    scene = spec["scenes"][3]
    scene.update(speech="Hi.", duration=2, speaker2={"character": "max", "speech": " ".join(["word"] * 20)})
    (demo_copy / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = CliRunner().invoke(app, ["validate", str(demo_copy)])
    assert f"scene '{scene['id']}': 21 words in 2 s" in result.output, result.output


# A string method or filter whose result is the product of its input's and its argument's sizes
# was computed in full (46 s, ~4 GB for translate) before the size check: each must be refused
# from its arguments, at once and without building anything big.
_GROWTH_BOMBS = {
    "translate": "{% set s = 'a' * 100000 %}{{ s.translate({97: 'x' * 20000}) }}",
    "expandtabs": "{% set s = '\t' * 20000 %}{{ s.expandtabs(99999) }}",
    "replace-empty": "{{ ('a' * 50000).replace('', 'b' * 49999) }}",
    "replace-many": "{{ ('ab' * 25000).replace('a', 'c' * 49999) }}",
    "str-join": "{{ ('y' * 20000).join('x' * 20000) }}",
    "str-join-generator": "{{ ('y' * 90000).join(range(10000) | map('string')) }}",
    "center": "{{ 'a'.center(10**9) }}",
    "ljust": "{{ ('a' * 1000).ljust(100001) }}",
    "zfill": "{{ '1'.zfill(100001) }}",
    "bytes-replace": "{{ ('a' * 50000).encode().replace(''.encode(), ('b' * 49999).encode()) }}",
    "indent-filter": "{{ ('a\n' * 20000) | indent('x' * 20000, true, true) }}",
    "wordwrap-filter": "{{ ('a' * 20000) | wordwrap(1, true, 'y' * 20000) }}",
    "center-filter": "{{ 'a' | center(999999999) }}",
    "tojson-indent": "{{ range(10000) | list | tojson(indent=20000) }}",
    "replace-filter": "{{ ('a' * 50000) | replace('', 'b' * 49999) }}",
    "join-filter": "{{ range(10000) | map('string') | join('y' * 90000) }}",
    "join-filter-attribute": "{{ [['x' * 90000]] * 10000 | join('', attribute=0) }}",
    "urlize-target": "{{ ('a.com ' * 10000) | urlize(target='x' * 40000) }}",
    "deep-list-repeated": "{% set l = [[[[[[[[['a' * 90000]]]]]]]]] * 10000 %}{{ l }}",   # sizes stopped at depth 8
    "namespace-repeated": "{% set ns = namespace(x='a' * 90000) %}{{ [ns] * 10000 }}",
}


@pytest.mark.parametrize("text", _GROWTH_BOMBS.values(), ids=_GROWTH_BOMBS.keys())
def test_growing_string_calls_are_refused_before_they_are_computed(tmp_path, text):
    import time
    import tracemalloc

    (tmp_path / "t.j2").write_text(text)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(PromptError) as caught:
            render_scene_prompt(scene_id="s", template=tmp_path / "t.j2", sandboxed=True, model=None,
                                context={"scene": {"action": "a"}}, speech=None, duration=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "\n" not in message and "scene 's': " in message and "Traceback" not in message, message
    assert elapsed < 1, f"{elapsed:.2f} s"
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_growing_calls_used_normally_render_as_before(tmp_path):
    text = ("{{ scene.action.translate({97: 'bc'}) }} {{ 'a-b'.replace('-', ' ') }} {{ ', '.join(['x', 'y']) }} "
            "{{ ['p', 'q'] | join(', ') }} {{ 'l1\nl2' | indent(2) }} {{ {'a': [1, 2]} | tojson(indent=2) }} "
            "{{ 'hello world-foo' | wordwrap(5) }} {{ 'x' | center(9) }}{{ 'a\tb'.expandtabs(4) }}{{ 'ab'.zfill(5) }}"
            "{{ ('x', 'y') | join('-', attribute=0) }} {{ 'www.a.com' | urlize }} {{ 'y'.join(range(3) | map('string')) }}"
            "{{ 'ab' | replace('a', 'c', 1) }}")
    (tmp_path / "t.j2").write_text(text)
    prompt = render_scene_prompt(scene_id="s", template=tmp_path / "t.j2", sandboxed=True, model=None,
                                 context={"scene": {"action": "waving"}}, speech=None, duration=1).prompt
    assert prompt == ('wbcving a b x, y p, q l1 l2 { "a": [ 1, 2 ] } hello world -foo xa b000abx-y '
                      '‹a href="https://www.a.com" rel="noopener"›www.a.com‹/a› 0y1y2cb')
