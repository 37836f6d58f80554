"""Opening user media safely: local files only, allowed containers only, sane sizes.

A production's media is untrusted. FFmpeg will follow an HLS playlist or a concat list to
any file or URL it names, so every open (PyAV here, the ffmpeg CLI through ``input_args``)
allows only the ``file`` protocol and the demuxers in ``DEMUXERS``; a PNG named ``.mp4`` or
a playlist named ``.mp3`` is not opened at all. Images are checked with Pillow: format,
then the pixel count from the header, before anything is decoded (decompression bombs).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image

DEMUXERS = "mov,matroska,avi,wav,mp3,ogg,flac,aac"      # mov covers mp4/m4a, matroska covers webm
OPEN_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": DEMUXERS}
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_PIXELS = 40_000_000        # a 40 MP still is plenty for any video frame
MAX_SIDE = 16384
MAX_VIDEO_SIDE = 8192
MAX_MEDIA_SECONDS = 3600.0
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"#EXTM3U", "an HLS playlist"),
          (b"ffconcat", "an ffmpeg concat list"), (b"GIF8", "a GIF image"), (b"%PDF", "a PDF"))
KINDS = {"video": "a video (mp4, mov, mkv, webm, avi)", "audio": "audio (wav, mp3, m4a, ogg, flac, aac)"}


def input_args(path: str | Path) -> list[str]:
    """ffmpeg CLI arguments that open ``path`` as one input, under the same whitelist."""
    return ["-protocol_whitelist", "file", "-format_whitelist", DEMUXERS, "-i", str(path)]


def sniff(path: Path) -> str | None:
    """What a file that is not allowed media looks like (for the error message), if we can tell."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    for magic, what in _MAGIC:
        if head.lstrip().startswith(magic):
            return what
    return None


def check_image(path: Path) -> str | None:
    """A problem with a character image, or None: PNG/JPEG/WebP, at most MAX_PIXELS, decodable."""
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as img:
            width, height = img.size
            if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
                return (f"image is {width}x{height} pixels, over the limit of {MAX_PIXELS // 1_000_000} megapixels "
                        f"(and {MAX_SIDE} per side); scale it down")
            img.load()
    except Image.DecompressionBombError as exc:
        return f"image is too large to decode safely ({exc})"
    except (OSError, SyntaxError, ValueError) as exc:
        what = sniff(path)
        found = f"; it is {what}" if what else ""
        return f"not a readable {'/'.join(IMAGE_FORMATS)} image{found} ({type(exc).__name__})"
    return None


_CHECKED: dict[tuple, str | None] = {}
CHECK_VERSION = 1          # bump when what _check_media accepts changes: older answers are ignored


def check_media(path: Path, kind: str) -> str | None:
    """A problem with user audio or footage (``kind``: "audio" or "video"), or None.

    Probing and test-decoding every file costs about 15 ms each, at every command. The answer is
    kept by the file's identity: device, inode, size, mtime and ctime. Any write to the file,
    or a rename over it, changes that identity, and ctime cannot be set from user space. It is
    kept in memory for the process and as a small file under ``<work_dir>/cache/media-checks``
    for later commands."""
    try:
        st = Path(path).stat()
        identity = (os.path.realpath(path), kind, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                    CHECK_VERSION)
    except OSError:
        return _check_media(path, kind)
    if identity in _CHECKED:
        return _CHECKED[identity]
    remembered = _remembered(identity)
    if remembered is not None:
        problem = remembered or None
    else:
        problem = _check_media(path, kind)
        _remember(identity, problem)
    _CHECKED[identity] = problem
    return problem


def _answer_file(identity: tuple) -> Path:
    from reelflow.settings import get_settings

    name = hashlib.sha256(repr(identity).encode()).hexdigest()[:40]
    return Path(get_settings().work_dir) / "cache" / "media-checks" / name


def _remembered(identity: tuple) -> str | None:
    """The kept answer: "" for a file that passed, the problem's text, or None if none is kept."""
    try:
        return _answer_file(identity).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _remember(identity: tuple, problem: str | None) -> None:
    target = _answer_file(identity)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f"{target.name}.{os.getpid()}.part")
        part.write_text(problem or "", encoding="utf-8")
        os.replace(part, target)
    except OSError:
        pass                      # a read-only or full disk costs the next command a probe, nothing else


def _check_media(path: Path, kind: str) -> str | None:
    from media.probe import ProbeError, decodes, probe

    try:
        info = probe(path)
    except ProbeError:
        what = sniff(path)
        found = f"; it is {what}" if what else ""
        return f"not {KINDS[kind]} in an allowed format{found}"
    if kind == "video" and not info.has_video:
        return "has no video stream; footage must be a video"
    if kind == "audio" and not info.has_audio:
        return "has no audio stream"
    if info.has_video and max(info.width or 0, info.height or 0) > MAX_VIDEO_SIDE:
        return f"video is {info.width}x{info.height}, over the limit of {MAX_VIDEO_SIDE} pixels per side"
    if info.duration > MAX_MEDIA_SECONDS:
        return f"is {info.duration:.0f} s long, over the limit of {MAX_MEDIA_SECONDS:.0f} s"
    if not decodes(path, kind):
        return f"its {kind} stream cannot be decoded"
    return None
