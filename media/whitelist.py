"""Opening user media safely: local files only, allowed containers only, sane sizes.

A production's media is untrusted. FFmpeg will follow an HLS playlist or a concat list to
any file or URL it names, so every open (PyAV here, the ffmpeg CLI through ``input_args``)
allows only the ``file`` protocol and the demuxers in ``DEMUXERS``; a PNG named ``.mp4`` or
a playlist named ``.mp3`` is not opened at all. Images are checked with Pillow: format,
then the pixel count from the header, before anything is decoded (decompression bombs).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from storage.file_memo import FileMemo

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


CHECK_VERSION = 1          # bump when what _check_media accepts changes: older answers are ignored
_CHECKS = FileMemo("media-checks", CHECK_VERSION)


def check_media(path: Path, kind: str) -> str | None:
    """A problem with user audio or footage (``kind``: "audio" or "video"), or None.

    Probing and test-decoding every file costs about 15 ms each, at every command. The answer is
    kept by the file's identity (``storage.file_memo``: any write or rename over it changes it)
    for later commands."""
    return _CHECKS.answer(path, lambda: _check_media(path, kind) or "", kind) or None


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
