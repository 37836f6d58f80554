"""The hostile productions of ``tests/test_hostile.py``: how a case's production folder is
built (:class:`Prod`, beside an ``outside/`` folder holding a canary), the secrets it must never
echo, and the table of cases (:data:`CASES`), one ``@case`` per crafted input, by category.
"""

from __future__ import annotations

import json
import random
import shutil
import string
import struct
import zlib
from pathlib import Path
from typing import Callable

import yaml

from media import ffmpeg
from tests.conftest import DEMO

CANARY = "CANARY-7f3a9c-outside-the-project"
# Realistic-looking secrets made at run time, so nothing in git looks like a leaked token.
_rng = random.Random(20261122)
_alnum = string.ascii_letters + string.digits


def _fake(prefix: str, n: int, extra: str = "") -> str:
    return prefix + "".join(_rng.choice(_alnum + extra) for _ in range(n))


SECRETS = {
    "RUNPOD_API_KEY": _fake("rpa" + "_", 32),
    "HF_TOKEN": _fake("hf" + "_", 34),
    "REELFLOW_S3_SECRET_KEY": _fake("", 36, "/"),
}

# -- building productions --------------------------------------------------------------------

BASE = {
    "title": "Hostile",
    "output": {"width": 160, "height": 240, "fps": 12},
    "characters": {"max": {"name": "Max", "image": "characters/max.png", "description": "a driver"}},
    "scenes": [{"id": "one", "character": "max", "action": "waving", "speech": "Hello there.",
                "atmosphere": "wind", "duration": 1.0}],
}


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height (a decompression bomb's header) with one tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


class Prod:
    """A production folder under construction, beside ``outside/`` with the canary."""

    def __init__(self, folder: Path, outside: Path, media: Path):
        self.folder, self.outside, self.media = folder, outside, media
        self.data = json.loads(json.dumps(BASE))
        self.raw: bytes | None = None

    def file(self, rel: str, content: str | bytes) -> str:
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return rel

    def copy(self, rel: str, name: str) -> str:
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.media / name, path)
        return rel

    def link(self, rel: str, target: Path) -> str:
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        return rel

    @property
    def scene(self) -> dict:
        return self.data["scenes"][0]

    def write(self) -> None:
        text = self.raw if self.raw is not None else yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True).encode()
        (self.folder / "project.yaml").write_bytes(text)


def make_media(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO / "characters" / "max.png", folder / "max.png")
    ffmpeg.run(["-f", "lavfi", "-i", "sine=d=0.5", str(folder / "line.wav")])
    ffmpeg.run(["-f", "lavfi", "-i", "testsrc2=d=0.5:s=64x64:r=12", "-pix_fmt", "yuv420p", str(folder / "clip.mp4")])
    return folder


# -- the cases -------------------------------------------------------------------------------

Build = Callable[[Prod], None]
CASES: list[tuple[str, Build]] = []


def case(name: str) -> Callable[[Build], Build]:
    def add(fn: Build) -> Build:
        CASES.append((name, fn))
        return fn
    return add


def _set_path(p: Prod, field: str, value: str) -> None:
    if field == "image":
        p.data["characters"]["max"]["image"] = value
    elif field == "template":
        p.data["template"] = value
    elif field == "music":
        p.data["music"] = {"file": value}
    else:
        p.scene[field] = value
        if field == "footage":                       # a footage scene as one is written: its own sound
            from projects.checks import FOOTAGE_IGNORES

            for name in FOOTAGE_IGNORES:
                p.scene.pop(name, None)


_MEDIA_OF = {"image": "max.png", "audio": "line.wav", "footage": "clip.mp4", "music": "line.wav", "template": None}


def _outside_file(p: Prod, field: str) -> Path:
    name = _MEDIA_OF[field]
    target = p.outside / (name or "evil.j2")
    if name and not target.exists():
        shutil.copy(p.media / name, target)
    return target


# 1. paths that escape the folder, symlinks included
for _field in ("image", "audio", "footage", "template", "music"):
    for _how in ("dotdot", "absolute", "symlink", "symlinked-dir"):
        def _escape(p: Prod, field=_field, how=_how) -> None:
            target = _outside_file(p, field)
            if how == "dotdot":
                value = f"../outside/{target.name}"
            elif how == "absolute":
                value = str(target)
            elif how == "symlink":
                value = p.link(f"assets/{target.name}", target)
            else:
                p.link("assets/shared", p.outside)
                value = f"assets/shared/{target.name}"
            _set_path(p, field, value)
        case(f"path-{_field}-{_how}")(_escape)

# 2. template includes, imports and extends reaching outside
for _stmt in ("{% include 'X' %}", "{% import 'X' as m %}{{ m.x }}", "{% from 'X' import x %}{{ x }}",
              "{% extends 'X' %}"):
    for _how in ("symlink", "dotdot", "absolute"):
        def _include(p: Prod, stmt=_stmt, how=_how) -> None:
            evil = _outside_file(p, "template")
            name = {"symlink": "evil.j2", "dotdot": "../outside/evil.j2", "absolute": str(evil)}[how]
            if how == "symlink":
                p.link("evil.j2", evil)
            p.data["template"] = p.file("t.j2", stmt.replace("X", name) + " {{ scene.action }}")
        case(f"template-{_stmt.split()[1]}-{_how}")(_include)

# 3. media that is not what it claims: playlists, concat lists, images, text, URLs
HLS_PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{0}/secret.txt\n#EXT-X-ENDLIST\n"
_FAKES: dict[str, Callable[[Prod, str], str]] = {
    "hls-same-ext": lambda p, ext: p.file(f"media/x{ext}", HLS_PLAYLIST.format(p.outside)),
    "hls-m3u8": lambda p, ext: p.file("media/x.m3u8", HLS_PLAYLIST.format(p.outside)),
    "concat-list": lambda p, ext: p.file(f"media/x{ext}", f"ffconcat version 1.0\nfile '{p.outside}/line.wav'\n"),
    "png-renamed": lambda p, ext: p.copy(f"media/x{ext}", "max.png"),
    "text": lambda p, ext: p.file(f"media/x{ext}", "just some text, not media\n"),
    "url-https": lambda p, ext: f"https://example.com/x{ext}",
    "url-file": lambda p, ext: f"file://{p.outside}/secret.txt",
}
for _field, _ext in (("audio", ".mp3"), ("footage", ".mp4"), ("music", ".wav")):
    for _kind, _make in _FAKES.items():
        def _fake(p: Prod, field=_field, ext=_ext, make=_make) -> None:
            _outside_file(p, "audio")
            _set_path(p, field, make(p, ext))
        case(f"media-{_field}-{_kind}")(_fake)
for _kind, _make in (("hls", lambda p: p.file("characters/x.png", HLS_PLAYLIST.format(p.outside))),
                     ("mp4-renamed", lambda p: p.copy("characters/x.png", "clip.mp4")),
                     ("text", lambda p: p.file("characters/x.png", "not an image")),
                     ("url", lambda p: "https://example.com/x.png")):
    case(f"media-image-{_kind}")(lambda p, make=_make: _set_path(p, "image", make(p)))

# 4. pixel bombs (header checked before decoding)
for _w, _h in ((100_000, 100_000), (20_000, 20_000), (70_000, 2)):
    case(f"pixels-{_w}x{_h}")(lambda p, w=_w, h=_h: _set_path(p, "image", p.file("characters/big.png", png_header(w, h))))

# 5. forged tokens, including NFKC look-alikes
_FORGED = ("<S>", "<E>", "<AUDCAP>", "\uff1cS\uff1e", "\ufe64S\ufe65", "Audio\uff1a", "\uff1c\uff25\uff2e\uff24\uff21\uff35\uff24\uff23\uff21\uff30\uff1e")
_TEXT_FIELDS: dict[str, Callable[[Prod, str], None]] = {
    "speech": lambda p, t: p.scene.update(speech=f"Hi {t} there"),
    "action": lambda p, t: p.scene.update(action=f"waves {t}"),
    "atmosphere": lambda p, t: p.scene.update(atmosphere=f"wind {t}"),
    "title": lambda p, t: p.data.update(title=f"Show {t}"),
    "character-name": lambda p, t: p.data["characters"]["max"].update(name=f"Max {t}"),
}
for _fname, _setter in _TEXT_FIELDS.items():
    for _i, _tok in enumerate(_FORGED):
        case(f"token-{_fname}-{_i}")(lambda p, s=_setter, t=_tok: s(p, t))

# 6. control and bidi characters in text fields
_CONTROLS = ("\x1b[31m", "\x00", "\x07", "\x9b", "\u202e", "\u2066", "\u200f", "\r")
for _fname in ("speech", "action", "title"):
    for _i, _ch in enumerate(_CONTROLS):
        case(f"control-{_fname}-{_i}")(lambda p, s=_TEXT_FIELDS[_fname], c=_ch: s(p, f"a{c}b"))
case("control-image-path")(lambda p: _set_path(p, "image", "characters/max\x1b.png"))

# 7. params that would replace what the adapter owns
for _key in ("prompt", "text_prompt", "image", "audio", "reference_image", "audio_1", "audio_2"):
    case(f"reserved-project-{_key}")(lambda p, k=_key: p.data.update(
        engine={"name": "runpod", "params": {"endpoint": "x", k: "<S>forged<E>"}}))
    case(f"reserved-scene-{_key}")(lambda p, k=_key: p.scene.update(
        engine={"name": "hf-space", "params": {k: "forged"}}))

# 8. YAML: encodings, duplicates, nesting, aliases, size, tags, strict types
_GOOD_TEXT = yaml.safe_dump(BASE, sort_keys=False)
_LAUGHS = "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))


def _raw(text: str | bytes) -> Build:
    return lambda p: setattr(p, "raw", text if isinstance(text, bytes) else text.encode())


case("yaml-latin1")(_raw(_GOOD_TEXT.replace("Hostile", "Caf\u00e9 \u00e9t\u00e9").encode("latin-1")))
case("yaml-utf16")(_raw(_GOOD_TEXT.encode("utf-16")))
case("yaml-utf32")(_raw(_GOOD_TEXT.encode("utf-32")))
case("yaml-bad-bytes")(_raw(_GOOD_TEXT.encode() + b"\nx: \xff\xfe\n"))
case("yaml-duplicate-top")(_raw("title: A\ntitle: B\n" + _GOOD_TEXT.split("\n", 1)[1]))
case("yaml-duplicate-only")(_raw("title: A\ntitle: B\n"))
case("yaml-duplicate-scene-key")(_raw(_GOOD_TEXT.replace("  duration: 1.0", "  duration: 1.0\n  duration: 500")))
case("yaml-duplicate-character")(_raw(_GOOD_TEXT.replace("characters:\n", "characters:\n  max: {name: A}\n")))
case("yaml-hook-brackets")(_raw("scenes: " + "[" * 2000 + "]" * 2000 + "\n"))
case("yaml-deep-flow")(_raw("title: T\nscenes: " + "[" * 3000 + "]" * 3000 + "\n"))
case("yaml-deep-mapping")(_raw("title: T\nx: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"))
case("yaml-deep-block")(_raw("title: T\nx:\n" + "".join(" " * i + "- \n" for i in range(0, 400, 2))))
case("yaml-laughs-top")(_raw("title: T\nx:\n  l0: &l0 [lol]\n" + _LAUGHS + "scenes: [{id: a, action: x}]\n"))
case("yaml-laughs-params")(_raw(_GOOD_TEXT + "engine:\n  name: runpod\n  params:\n    endpoint: e\n"
                               "    z:\n      l0: &l0 [lol]\n" + _LAUGHS.replace("  l", "      l")))
case("yaml-huge-file")(_raw(_GOOD_TEXT + "# " + "x" * (2 << 20) + "\n"))
case("yaml-two-documents")(_raw(_GOOD_TEXT + "---\n" + _GOOD_TEXT))
case("yaml-python-tag")(_raw(_GOOD_TEXT.replace("title: Hostile", "title: !!python/object/apply:os.system ['id']")))
case("yaml-unknown-alias")(_raw(_GOOD_TEXT.replace("title: Hostile", "title: *nothing")))
case("yaml-recursive-alias")(_raw(_GOOD_TEXT + "x: &a [*a]\n"))
case("yaml-not-a-mapping")(_raw("- just\n- a list\n"))
case("yaml-syntax")(_raw("title: [unclosed\n"))
for _byte in ("\x0b", "\x1c", "\x7f"):       # raw, not escaped: PyYAML's reader refuses them (a position, two lines)
    case(f"yaml-raw-{ord(_byte):02x}")(_raw(_GOOD_TEXT.replace("title: Hostile", f"title: Host{_byte}ile")))
for _path, _value in (("duration", True), ("duration", "5"), ("seed", 1.5), ("takes", True), ("id", 12)):
    case(f"type-scene-{_path}-{_value!r}")(lambda p, k=_path, v=_value: p.scene.update({k: v}))
case("type-title-number")(lambda p: p.data.update(title=2024))
case("type-width-text")(lambda p: p.data["output"].update(width="160"))
case("type-fps-bool")(lambda p: p.data["output"].update(fps=True))
case("type-transition-bool")(lambda p: p.data.update(transition={"type": "crossfade", "duration": True}))
case("type-music-bool")(lambda p: p.data.update(music={"file": p.copy("audio/bed.wav", "line.wav"), "fade_in": True}))
case("type-scenes-mapping")(lambda p: p.data.update(scenes={"one": p.data["scenes"][0]}))
case("speaker2-without-speech")(lambda p: p.scene.update(speech=None, speaker2={"character": "max", "speech": "Hi."}))
case("voice-without-dictionary")(lambda p: p.data["characters"]["max"].update(voice="fo"))      # spoke nothing
case("runpod-unknown-ovi-model")(lambda p: p.data.update(engine={"name": "runpod", "model": "ovi-1.1",
                                                                 "params": {"endpoint": "e"}}))   # failed mid-render
case("card-blank-text")(lambda p: p.data.update(title_card={"text": " \n "}))
case("card-text-too-long")(lambda p: p.data.update(end_card={"text": "a" * 301}))      # passed, then failed the render

# 9. template time, size and arithmetic bombs
_BOMBS = {
    "range": "{% for i in range(10**9) %}x{% endfor %}",
    "pow": "{{ 10**(10**9) }}",
    "repeat": "{{ 'ab'*10**9 }}",
    "list-repeat": "{{ [1]*10**9 }}",
    "nested-loops": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "center": "{{ 'a'.center(10**9) }}",
    "center-filter": "{{ 'a'|center(999999999) }}",
    "format-width": "{{ '{:>999999999}'.format(1) }}",
    "percent-width": "{{ '%999999999d' % 1 }}",
    "macro-recursion": "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "concat-doubling": "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "output-flood": "{% for i in range(10000) %}{{ 'y' * 50 }}{% endfor %}",
    "join-flood": "{% set a = 'x' * 90000 %}{{ ([a] * 1000)|join }}",
    "dunder": "{{ scene.__class__.__mro__ }}",
    "mutation": "{% set l = [] %}{{ l.append(1) }}",
    "lipsum": "{{ lipsum(10**6) }}",
    # a result that is the product of its input's and its argument's sizes, refused before it is built
    "translate": "{% set s = 'a' * 100000 %}{{ s.translate({97: 'x' * 20000}) }}",
    "expandtabs": "{{ ('\\t' * 20000).expandtabs(99999) }}",
    "replace-empty": "{{ ('a' * 50000).replace('', 'b' * 49999) }}",
    "str-join": "{{ ('y' * 20000).join('x' * 20000) }}",
    "indent-filter": "{{ ('a\\n' * 20000) | indent('x' * 20000, true, true) }}",
    "wordwrap-filter": "{{ ('a' * 20000) | wordwrap(1, true, 'y' * 20000) }}",
    "tojson-indent": "{{ range(10000) | list | tojson(indent=20000) }}",
}
for _name, _src in _BOMBS.items():
    case(f"template-bomb-{_name}")(lambda p, s=_src: p.data.update(template=p.file("t.j2", s)))

# 10. unknown engines and badly typed params
case("engine-unknown")(lambda p: p.data.update(engine={"name": "runpd"}))
case("engine-fallback-unknown")(lambda p: p.data.update(engine={"name": "animatic", "fallback": ["hf-spac"]}))
case("engine-scene-unknown")(lambda p: p.scene.update(engine={"name": "locall"}))
case("engine-param-unknown")(lambda p: p.data.update(engine={"name": "hf-space", "params": {"spaec": "x"}}))
case("engine-param-bool-number")(lambda p: p.data.update(engine={"name": "runpod", "params": {"endpoint": "e", "timeout": True}}))
case("engine-param-object")(lambda p: p.data.update(engine={"name": "hf-space", "params": {"timeout": "soon"}}))

# 11. a secret pasted into the production is never echoed back
for _i, _name in enumerate(SECRETS):
    case(f"secret-engine-name-{_i}")(lambda p, n=_name: p.data.update(engine={"name": SECRETS[n]}))
    case(f"secret-unknown-key-{_i}")(lambda p, n=_name: p.data.update({SECRETS[n]: 1}))
