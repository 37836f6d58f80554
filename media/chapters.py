"""Chapters written into the MP4: an ffmetadata file from the timeline, mapped with ``-map_chapters``."""

from __future__ import annotations

import re
from pathlib import Path

from media.timeline import Timeline


def _escape(value: str) -> str:
    """ffmetadata escaping: ``= ; # \\`` and newlines take a backslash."""
    return re.sub(r"([=;#\\\n])", r"\\\1", value)


def ffmetadata(timeline: Timeline) -> str:
    """The ffmetadata text for one chapter per scene (or per ``chapter:`` label), in frames."""
    lines = [";FFMETADATA1"]
    for chapter in timeline.chapters():
        lines += ["[CHAPTER]", f"TIMEBASE={timeline.fps_den}/{timeline.fps_num}",
                  f"START={chapter.start}", f"END={chapter.end}", f"title={_escape(chapter.title)}"]
    return "\n".join(lines) + "\n"


def write_ffmetadata(timeline: Timeline, path: str | Path) -> Path:
    Path(path).write_text(ffmetadata(timeline), encoding="utf-8")
    return Path(path)


def read_chapters(path: str | Path) -> list[tuple[float, float, str]]:
    """(start s, end s, title) of every chapter in a media file, read with PyAV."""
    import av

    with av.open(str(path)) as container:
        return [(float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"]), c["metadata"].get("title", ""))
                for c in container.chapters()]
