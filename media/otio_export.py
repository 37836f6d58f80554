"""The cut for an editor: ``final.otio`` (OpenTimelineIO) and ``final.edl`` (CMX 3600).

Read from the same timeline as the video. One video track, one clip per timeline item
(scenes and cards) referencing its normalised media, a scene marker on every clip, and
each crossfade or dip as an OTIO transition. A transition sits right after the cut
(``in_offset`` 0, ``out_offset`` = the overlap), so every clip starts in the OTIO track
exactly where it starts in final.mp4, and the outgoing clip plays its last ``overlap``
frames as the transition's handle.

``opentimelineio`` and the CMX 3600 adapter are base dependencies, imported only here.
Kdenlive opens ``.otio`` directly; DaVinci Resolve and Premiere Pro import the EDL (or
the OTIO in Resolve 18+).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from media.timeline import Timeline

MARKER_COLOR = "GREEN"


def _link(url: str) -> str:
    """A media URL an editor can open: local paths become file:// URIs."""
    return Path(url).resolve().as_uri() if "://" not in url else url


SMPTE_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
               Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60))


def timecode_scale(rate: Fraction) -> int | None:
    """The smallest k with rate * k a SMPTE timecode rate (12 fps -> 2: EDL at 24), or None."""
    for k in range(1, 13):
        if rate * k in SMPTE_RATES:
            return k
    return None


def build_otio(timeline: Timeline, name: str, link_for: Callable[[str], str], scale: int = 1):
    """An ``opentimelineio.schema.Timeline`` of ``timeline``; ``link_for(key)`` gives each media URL.

    ``scale`` counts every frame as that many ticks of ``rate * scale`` (for EDL timecode).
    """
    import opentimelineio as otio

    rate = float(timeline.rate * scale)

    def frames(n: int):
        return otio.opentime.RationalTime(n * scale, rate)

    def span(start: int, length: int):
        return otio.opentime.TimeRange(frames(start), frames(length))

    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for i, item in enumerate(timeline.items):
        shown = item.frames - timeline.tail(i)
        reference = otio.schema.ExternalReference(target_url=_link(link_for(item.key)),
                                                  available_range=span(0, item.frames))
        clip = otio.schema.Clip(name=item.scene_id, media_reference=reference, source_range=span(0, shown))
        clip.metadata["reelflow"] = {"scene": item.scene_id, "kind": item.kind, "key": item.key,
                                     "start_frame": item.start, "frames": item.frames,
                                     "chapter": item.chapter or item.scene_id, "speech": item.speech or ""}
        clip.markers.append(otio.schema.Marker(name=item.scene_id, marked_range=span(0, 1), color=MARKER_COLOR))
        if i > 0 and timeline.head(i):
            join = timeline.joins[i - 1]
            kind = (otio.schema.TransitionTypes.SMPTE_Dissolve if join.type == "crossfade"
                    else otio.schema.TransitionTypes.Custom)
            transition = otio.schema.Transition(name=join.type, transition_type=kind,
                                                in_offset=frames(0), out_offset=frames(join.frames))
            transition.metadata["reelflow"] = {"type": join.type, "frames": join.frames}
            track.append(transition)
        track.append(clip)
    out = otio.schema.Timeline(name=name, global_start_time=frames(0))
    out.tracks.append(track)
    out.metadata["reelflow"] = {"fps": f"{timeline.fps_num}/{timeline.fps_den}", "frames": timeline.frames}
    return out


def write_handoff(timeline: Timeline, name: str, link_for: Callable[[str], str], folder: Path) -> dict[str, Path]:
    """Write ``final.otio`` and (at a rate timecode can count) ``final.edl`` into ``folder``."""
    import opentimelineio as otio

    paths = {"otio": folder / "final.otio"}
    otio.adapters.write_to_file(build_otio(timeline, name, link_for), str(paths["otio"]))
    scale = timecode_scale(timeline.rate)
    if scale is not None:
        paths["edl"] = folder / "final.edl"
        edl = build_otio(timeline, name, link_for, scale)
        for child in edl.tracks[0]:
            if isinstance(child, otio.schema.Transition):   # an EDL has dissolves only: a dip becomes one
                child.transition_type = otio.schema.TransitionTypes.SMPTE_Dissolve
        otio.adapters.write_to_file(edl, str(paths["edl"]), adapter_name="cmx_3600")
    return paths
