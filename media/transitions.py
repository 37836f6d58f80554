"""Crossfades and dips that re-encode only the frames around each join.

Normalised clips carry a keyframe every second (closed GOPs), so each clip splits into

    [0, a)  head: re-encoded with the join before it   (a: first keyframe >= its head overlap)
    [a, b)  body: whole GOPs, copied packet for packet  (b: last keyframe <= its tail start)
    [b, F)  tail: re-encoded with the join after it

and a join becomes one short segment: the previous clip's tail and the next clip's head
through ``xfade``, encoded with the same x264 settings as every normalised clip, so the
segments still join by stream copy (concat demuxer). Audio is joined in one filter graph
over the whole clips: ``concat`` at cuts, ``acrossfade`` over a crossfade's exact samples,
and at a dip each side fades to silence at the overlap's middle (with the black frame)
before a ``concat``; it is encoded once with the loudness pass.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from media import ffmpeg
from media.timeline import Timeline

XFADE = {"crossfade": "fade", "dip": "fadeblack"}
DIP_CURVE = "qua"      # quadratic: smooth, and well under -50 dBFS around the silent middle


class Segment(BaseModel):
    """A piece of the final video: copied from one clip, or blended across one join."""

    kind: str                  # "copy" | "blend"
    item: int                  # the clip copied, or the clip before the join
    first: int = 0             # copy: frames [first, end) of the clip
    end: int = 0
    tail_from: int = 0         # blend: frames [tail_from, F) of item, then [0, head_to) of item + 1
    head_to: int = 0
    overlap: int = 0
    type: str = "crossfade"

    def frames(self, timeline: Timeline) -> int:
        if self.kind == "copy":
            return self.end - self.first
        return timeline.items[self.item].frames - self.tail_from + self.head_to - self.overlap


def keyframes(path: str | Path, rate) -> list[int]:
    """Frame indices of the keyframes of a file's first video stream (demux only, no decode)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        found = {round(p.pts * stream.time_base * rate) for p in container.demux(stream)
                 if p.pts is not None and p.is_keyframe}
    return sorted(found)


def plan_segments(timeline: Timeline, keys: list[list[int]]) -> list[Segment]:
    """Split the timeline into copied bodies and blended joins (pure)."""
    bounds = []
    for i, item in enumerate(timeline.items):
        head, tail, frames = timeline.head(i), timeline.tail(i), item.frames
        a = 0 if head == 0 else next((k for k in keys[i] if k >= head), frames)
        b = frames if tail == 0 else max((k for k in keys[i] if k <= frames - tail), default=-1)
        if b < a:              # no whole GOP between the joins: split the re-encoded part anywhere
            a = b = head
        bounds.append((a, b))
    segments: list[Segment] = []
    for i, (a, b) in enumerate(bounds):
        if i > 0 and timeline.head(i):
            segments.append(Segment(kind="blend", item=i - 1, tail_from=bounds[i - 1][1], head_to=a,
                                    overlap=timeline.head(i), type=timeline.joins[i - 1].type))
        if b > a:
            segments.append(Segment(kind="copy", item=i, first=a, end=b))
    return segments


def blend_args(seg: Segment, timeline: Timeline, src_a: str, src_b: str, out: str, encoder: list[str]) -> list[str]:
    """ffmpeg arguments for one blended join segment, video only (pure)."""
    rate = timeline.rate
    n_a = timeline.items[seg.item].frames
    before = n_a - seg.tail_from - seg.overlap            # frames of A shown before the blend starts
    # xfade starts on the first frame at or after ``offset``: a quarter frame early absorbs rounding.
    offset = max(0.0, float((before - 0.25) / rate))
    duration = float(seg.overlap / rate)
    graph = (
        f"[0:v]trim=start_frame={seg.tail_from}:end_frame={n_a},setpts=PTS-STARTPTS[x];"
        f"[1:v]trim=end_frame={seg.head_to},setpts=PTS-STARTPTS[y];"
        f"[x][y]xfade=transition={XFADE.get(seg.type, 'fade')}:duration={duration:.6f}:offset={offset:.6f},"
        f"format=yuv420p[v]"
    )
    r = f"{rate.numerator}/{rate.denominator}"
    return ["-i", src_a, "-i", src_b, "-filter_complex", graph, "-map", "[v]",
            "-frames:v", str(seg.frames(timeline)), "-r", r, *encoder, "-an",
            "-map_metadata", "-1", "-fflags", "+bitexact", "-f", "mov", out]


def copy_frames(src: str | Path, out: str | Path, first: int, end: int, rate) -> None:
    """Copy frames [first, end) of a clip's video (whole closed GOPs) into ``out`` without decoding."""
    import av

    with av.open(str(src)) as inp, av.open(str(out), "w", format="mov") as dst:
        s_in = inp.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        shift = None
        for packet in inp.demux(s_in):
            if packet.pts is None:
                continue
            index = round(packet.pts * s_in.time_base * rate)
            if not first <= index < end:
                continue
            if shift is None:   # the first packet in decode order is the keyframe at ``first``
                shift = round(first / rate / s_in.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = s_out
            dst.mux(packet)


def video_segments(timeline: Timeline, paths: list[Path], work: Path, encoder: list[str]) -> list[Path]:
    """Write every segment of the final video into ``work``; returns them in order."""
    rate = timeline.rate
    keys = [keyframes(p, rate) for p in paths]
    out: list[Path] = []
    for n, seg in enumerate(plan_segments(timeline, keys)):
        target = work / f"seg{n:04d}.mov"
        if seg.kind == "copy":
            item = timeline.items[seg.item]
            if seg.first == 0 and seg.end == item.frames:
                out.append(paths[seg.item])
                continue
            copy_frames(paths[seg.item], target, seg.first, seg.end, rate)
        else:
            ffmpeg.run(blend_args(seg, timeline, str(paths[seg.item]), str(paths[seg.item + 1]),
                                  str(target), encoder))
        out.append(target)
    return out


def dip_edges(timeline: Timeline, i: int) -> str | None:
    """Filters that give item ``i``'s audio its half of each dip around it (None if there is none).

    A dip of ``n`` samples goes down to silence and back up, centred on the black frame: the
    clip before fades out over the overlap's first ``n // 2`` samples, the clip after fades in
    over the rest. What each fade leaves silent (the tail after the fade-out, the head before
    the fade-in) is trimmed off, so the two meet by ``concat`` and the join still takes out
    exactly ``n`` samples.
    """
    before = timeline.joins[i - 1] if i > 0 else None
    after = timeline.joins[i] if i < len(timeline.joins) else None
    length = timeline.samples_at(timeline.items[i].frames)
    chain, start, end = [], 0, length
    if after is not None and after.type == "dip" and after.frames:
        n = timeline.samples_at(after.frames)
        chain.append(f"afade=t=out:start_sample={length - n}:nb_samples={n // 2}:curve={DIP_CURVE}")
        end = length - n + n // 2
    if before is not None and before.type == "dip" and before.frames:
        n = timeline.samples_at(before.frames)
        chain.append(f"afade=t=in:start_sample={n // 2}:nb_samples={n - n // 2}:curve={DIP_CURVE}")
        start = n // 2
    if not chain:
        return None
    return ",".join(chain + [f"atrim=start_sample={start}:end_sample={end}", "asetpts=PTS-STARTPTS"])


def audio_graph(timeline: Timeline, first_input: int, out: str = "[joined]") -> str:
    """Filter graph joining every clip's audio (inputs ``first_input``...) into ``out`` (pure).

    Cuts are a plain ``concat``; a crossfade is an ``acrossfade`` of exactly its samples; a
    dip fades each side to silence (``dip_edges``) and joins them by ``concat``.
    """
    parts = []
    inputs = []
    for i in range(len(timeline.items)):
        label = f"[{first_input + i}:a]"
        if edges := dip_edges(timeline, i):
            parts.append(f"{label}{edges}[d{i}]")
            label = f"[d{i}]"
        inputs.append(label)
    current = inputs[0]
    for j in timeline.joins:
        nxt = inputs[j.index + 1]
        label = f"[j{j.index}]"
        if j.frames and j.type == "crossfade":
            parts.append(f"{current}{nxt}acrossfade=ns={timeline.samples_at(j.frames)}:o=1:c1=qsin:c2=qsin{label}")
        else:
            parts.append(f"{current}{nxt}concat=n=2:v=0:a=1{label}")
        current = label
    parts.append(f"{current}anull{out}")
    return ";".join(parts)
