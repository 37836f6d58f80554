"""Benchmark workloads built with ffmpeg's own sources: mixed-shape footage productions.

``footage_production(folder, clips=24, seconds=5)`` writes ``clips`` footage files in four
shapes (what reference 003 mixes: Ovi's 576x896@24 with 16 kHz mono audio, 960x960@25,
silent 720x720@30 B-roll, 1280x720@30 at 44.1 kHz) and a ``project.yaml`` that cuts them
into one 576x896@24 video with subtitles. Files are reused when already there.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from media import ffmpeg

SHAPES = [
    dict(width=576, height=896, fps=24, audio_rate=16000, channels=1),
    dict(width=960, height=960, fps=25, audio_rate=48000, channels=2),
    dict(width=720, height=720, fps=30, audio_rate=None, channels=0),
    dict(width=1280, height=720, fps=30, audio_rate=44100, channels=2),
]


def clip_args(out: Path, index: int, seconds: float, shape: dict, variant: int = 0) -> list[str]:
    """ffmpeg arguments for one test clip: testsrc2 (or a colour for a variant) plus a sine tone."""
    w, h, fps = shape["width"], shape["height"], shape["fps"]
    if variant:
        video = f"color=c=0x{(variant * 2654435761) & 0xFFFFFF:06x}:s={w}x{h}:r={fps}:d={seconds}"
    else:
        video = f"testsrc2=s={w}x{h}:r={fps}:d={seconds}"
    args = ["-f", "lavfi", "-i", video]
    if shape["audio_rate"]:
        freq = 220 + 40 * (index % 12) + 7 * variant      # an edit changes the sound too
        args += ["-f", "lavfi", "-i", f"sine=f={freq}:r={shape['audio_rate']}:d={seconds}"]
        args += ["-ac", str(shape["channels"]), "-c:a", "aac", "-b:a", "96k"]
    return [*args, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p",
            "-shortest", str(out)]


def make_clip(out: Path, index: int, seconds: float, variant: int = 0, small: bool = False) -> Path:
    shape = dict(SHAPES[index % len(SHAPES)])
    if small:
        shape.update(width=shape["width"] // 8 * 2, height=shape["height"] // 8 * 2)
    if not out.is_file():
        part = out.with_name(f".{out.name}.part.mp4")
        ffmpeg.run(clip_args(part, index, seconds, shape, variant))
        part.replace(out)
    return out


def footage_production(
    folder: Path, clips: int = 24, seconds: float = 5.0, width: int = 576, height: int = 896, fps: float = 24,
    subtitles: str = "srt", small: bool = False,
) -> Path:
    """A production folder of ``clips`` footage scenes; returns the folder."""
    media = folder / "footage"
    media.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i in range(clips):
        make_clip(media / f"clip{i:04d}.mp4", i, seconds, small=small)
        scenes.append({"id": f"s{i:04d}", "footage": f"footage/clip{i:04d}.mp4", "duration": seconds,
                       "speech": f"This is line number {i} of the production."})
    spec = {"title": f"Bench {clips}", "output": {"width": width, "height": height, "fps": fps,
                                                  "subtitles": subtitles}, "scenes": scenes}
    (folder / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def edit_clip(folder: Path, index: int, seconds: float, variant: int, small: bool = False) -> None:
    """Replace footage clip ``index`` with a different picture (an edit of one scene)."""
    path = folder / "footage" / f"clip{index:04d}.mp4"
    path.unlink(missing_ok=True)
    make_clip(path, index, seconds, variant=variant, small=small)


def footage_paths(folder: Path) -> list[Path]:
    spec = yaml.safe_load((folder / "project.yaml").read_text())
    return [folder / s["footage"] for s in spec["scenes"]]
