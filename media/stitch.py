"""Normalise clips to one profile and join them with exact A/V sync.

Each normalised clip has exactly ``frames = round(duration * fps)`` video frames and
``frames * audio_rate / fps`` PCM samples, encoded with one fixed set of x264 settings,
so the video joins by stream copy (concat demuxer) and only the audio is re-encoded, with
EBU R128 loudness normalisation (``media.loudness``), in chunks that later renders reuse
(``media.aac``). A clip's sound is made before its picture (:func:`normalize_clip`), so a cut's
audio can be joined (:func:`join_parts`) and encoded while its pictures are. A keyframe every
second lets a crossfade re-encode only the seconds around its join (``media.transitions``),
and a few milliseconds of fade at each end of a clip's audio keep hard cuts from clicking.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

from media import ffmpeg, gating, mov_pcm
from media.aac import BYTES_PER_SAMPLE
from media.loudness import ebur128_summary, measure_loudness, peak_of, raw_input
from media.probe import MediaInfo, probe
from media.profile import OutputProfile
from media.whitelist import OPEN_OPTIONS, input_args

NORMALIZED_SUFFIX = ".mov"   # H.264 + PCM: sample-exact audio until the final encode
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-color_range", "tv",
        "-profile:v", "high"]
NORMALIZE_VERSION = 4        # bump when what normalisation makes from the same clip changes (and
                             # tasks.render_index.STITCH_VERSION: finished renders hold the old clips)
EDGE_FADE = 0.004            # seconds of audio fade at each end of a clip: hard cuts never click


def _rate(profile: OutputProfile) -> str:
    r: Fraction = profile.rate
    return f"{r.numerator}/{r.denominator}"


def filter_escape(value: str) -> str:
    """Escape a value for use inside an ffmpeg filter option (``:``, ``'``, ``\\``)."""
    return value.replace("\\", "\\\\").replace("'", "\\'").replace(":", "\\:").replace(",", "\\,")


# The picture's display shape in square pixels (anamorphic footage, SAR != 1, is widened or made
# taller, never narrowed), in limited ("tv") range: full-range footage (yuvj, MJPEG, many phones)
# is converted, so every clip of the stream-copied H.264 has one range. A no-op for most clips.
SQUARE = "scale=w='iw*max(sar,1)':h='ih/min(sar,1)':out_range=tv"


def _fit(profile: OutputProfile) -> str:
    w, h = profile.width, profile.height
    if profile.fit == "crop":
        return f"{SQUARE},scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}"
    return f"{SQUARE},scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black"


def _sound_source(src: str, info: MediaInfo, profile: OutputProfile) -> tuple[list[str], str]:
    """Input arguments and the label of the clip's audio: its own, or silence when it has none."""
    args = input_args(src)
    if info.has_audio:
        return args, "[0:a:0]"
    return [*args, "-f", "lavfi", "-i", f"anullsrc=r={profile.audio_rate}:cl=stereo"], "[1:a]"


def _sound_chain(profile: OutputProfile, frames: int) -> str:
    """The clip's audio at the profile's rate, exactly ``samples_for(frames)`` long, faded at its ends.

    Both streams keep their times from the file's start (ffmpeg subtracts the earliest stream's
    start, whichever streams a run reads): audio that starts late gets silence before it
    (aresample's first_pts), so footage whose streams start at different times stays in sync."""
    samples = profile.samples_for(frames)
    fade = round(EDGE_FADE * profile.audio_rate)
    edges = (f",afade=t=in:nb_samples={fade},afade=t=out:start_sample={samples - fade}:nb_samples={fade}"
             if samples > 4 * fade else "")
    return (f"aresample={profile.audio_rate}:async=1:first_pts=0,"
            f"aformat=sample_fmts=s16:channel_layouts=stereo,apad,atrim=end_sample={samples}{edges}")


def _picture(args: list[str], profile: OutputProfile, frames: int, look: str | None,
             overlay: tuple[str, float] | None) -> str:
    """The clip's picture graph ending in ``[v]`` after exactly ``frames`` frames (adds the
    overlay's input to ``args``): video that starts after its audio gets its first frame held from
    t=0 (fps's start_time), and its last frame held to the end."""
    # tpad first: a clip shorter than its scene has its last frame held; after fps, a clip of one
    # frame (shorter than an output frame) came out of fps with none, and the clip was empty.
    picture = (f"[0:v:0]tpad=stop=-1:stop_mode=clone,fps={_rate(profile)}:start_time=0,"
               f"{look + ',' if look else ''}{_fit(profile)},setsar=1,")
    if overlay:
        index = args.count("-i")
        args += ["-f", "image2", "-loop", "1", "-i", overlay[0]]
        picture += (f"format=yuva420p[base];[{index}:v]format=rgba[over];"
                    f"[base][over]overlay=0:0:enable='lt(t,{overlay[1]:.3f})',")
    # The trim ends the graph (last: an overlay's looped image would keep an earlier end going).
    return f"{picture}trim=end_frame={frames},format=yuv420p[v]"


def _video_out(profile: OutputProfile) -> list[str]:
    # No -frames:v: ffmpeg ends the whole file at such a limit, and at some rates (30000/1001,
    # 60000/1001) that cut the sound 70-80 ms short of the picture. The picture graph ends
    # itself after exactly its frames (:func:`_picture`), and the sound after its samples.
    r = _rate(profile)
    return ["-r", r, *X264, "-g", str(max(1, round(profile.rate))),
            "-c:a", "pcm_s16le", "-ar", str(profile.audio_rate), "-ac", "2",
            "-map_metadata", "-1", "-fflags", "+bitexact", "-f", "mov"]


def normalize_args(src: str, info: MediaInfo, profile: OutputProfile, frames: int, out: str,
                   look: str | None = None, overlay: tuple[str, float] | None = None) -> list[str]:
    """ffmpeg arguments that bring one clip to the profile with exact lengths in one run (pure).

    ``look`` is a video filter applied to the clip's own picture before it is scaled and
    padded (colour matching); ``overlay`` is (a full-frame RGBA PNG we drew, seconds) laid
    over the first seconds of the clip (a lower third). :func:`normalize_clip` makes the same
    clip in two runs, its sound first (:func:`sound_args`, :func:`picture_args`).
    """
    args, audio_src = _sound_source(src, info, profile)
    graph = f"{_picture(args, profile, frames, look, overlay)};{audio_src}{_sound_chain(profile, frames)}[a]"
    return [*args, "-filter_complex", graph, "-map", "[v]", "-map", "[a]", *_video_out(profile), out]


def sound_args(src: str, info: MediaInfo, profile: OutputProfile, frames: int, out: str,
               blocks: str | None = None) -> list[str]:
    """ffmpeg arguments for a clip's normalised audio alone, as :func:`normalize_args` makes it:
    raw PCM (s16le stereo at the profile's rate, ``samples_for(frames)`` long) in ``out``, its true
    peak measured in the same run (``ebur128``'s summary, at log level info) and, with ``blocks``
    (a file), its loudness blocks (``media.gating``)."""
    args, audio_src = _sound_source(src, info, profile)
    graph = (f"{audio_src}{_sound_chain(profile, frames)},asplit=2[a][tap];"
             f"[tap]{gating.meter(blocks, profile.audio_rate) if blocks else 'ebur128=peak=true:framelog=verbose'}[meter]")
    return [*args, "-filter_complex", graph, "-map", "[a]", "-c:a", "pcm_s16le", "-f", "s16le", out,
            "-map", "[meter]", "-f", "null", "-"]


def picture_args(src: str, profile: OutputProfile, frames: int, pcm: str, out: str,
                 look: str | None = None, overlay: tuple[str, float] | None = None) -> list[str]:
    """ffmpeg arguments that encode a clip's picture as :func:`normalize_args` does and mux it with
    ``pcm`` (raw s16le from :func:`sound_args`), whose samples go in as they are."""
    args = input_args(src)
    picture = _picture(args, profile, frames, look, overlay)
    sound = args.count("-i")
    args += ["-f", "s16le", "-ar", str(profile.audio_rate), "-ac", "2", "-i", pcm]
    return [*args, "-filter_complex", picture, "-map", "[v]", "-map", f"{sound}:a:0", *_video_out(profile), out]


@dataclass
class Sound:
    """A normalised clip's sound, made before its picture: raw PCM (s16le stereo), its true peak
    (dBTP), the clip's frames, and its loudness blocks (``media.gating``; None if not measured)."""
    pcm: Path
    true_peak: float
    frames: int
    blocks: gating.ClipBlocks | None


PICTURE_NICE = 5     # the picture encode yields the cores to the sound work of a cut being mixed beside it
_PLAIN_PATH = re.compile(r"[\w/.+@-]+")    # a path that goes into a filter graph as it is


def normalize_clip(src: str | Path, out: str | Path, profile: OutputProfile, duration: float | None = None,
                   match=None, overlay: tuple[str, float] | None = None,
                   heard: Callable[[Sound], None] | None = None) -> tuple[MediaInfo, Sound]:
    """Normalise ``src`` to ``profile``; ``duration`` (default: the clip's own) sets the frame count.

    ``match`` (``media.color.ColorStats``) moves the clip's colour to those statistics;
    ``overlay`` (PNG, seconds) is drawn over its first seconds. The sound is made first (a quick
    run, which also measures its true peak and loudness blocks) and ``heard(sound)`` called with
    it before the picture is encoded, so the audio of a cut can be mixed while its pictures are
    still being encoded. Returns the normalised clip's probe and its :class:`Sound` (whose PCM
    is left beside ``out``).
    """
    info = probe(src)
    if not info.has_video:
        raise ffmpeg.FFmpegError(f"{src}: no video stream to normalise")
    seconds = duration if duration is not None else info.video_end
    frames = profile.frames_for(seconds)
    look = None
    if match is not None:
        from media.color import match_filter, measure

        look = match_filter(measure(src), match)
    pcm, blocks = Path(out).with_suffix(".pcm"), Path(out).with_suffix(".blocks")
    metered = (_PLAIN_PATH.fullmatch(str(blocks)) is not None
               and gating.aligned(profile.samples_for(frames), profile.audio_rate))
    proc = ffmpeg.run(sound_args(str(src), info, profile, frames, str(pcm), str(blocks) if metered else None),
                      loglevel="info")
    sound = Sound(pcm, peak_of(ebur128_summary(proc.stderr.decode(errors="replace"))["input_tp"]), frames,
                  _blocks(blocks, profile, frames) if metered else None)
    if heard is not None:
        heard(sound)
    ffmpeg.run(picture_args(str(src), profile, frames, str(pcm), str(out), look, overlay), nice=PICTURE_NICE)
    return check_normalized(src, out, profile, frames), sound


def check_normalized(src: str | Path, out: str | Path, profile: OutputProfile, frames: int) -> MediaInfo:
    """The probe of ``out``, a normalised clip that has exactly ``frames`` frames and their
    samples of sound; else an error (such a clip is never stored, or every later render would
    reuse it)."""
    made = probe(out)
    samples, want = round((made.audio_duration or 0) * profile.audio_rate), profile.samples_for(frames)
    if made.video_frames != frames or samples != want:
        raise ffmpeg.FFmpegError(f"{src}: normalising made {made.video_frames or 0} frames and {samples} audio "
                                 f"samples where {frames} frames and {want} samples were asked")
    return made


def _blocks(path: Path, profile: OutputProfile, frames: int) -> gating.ClipBlocks | None:
    try:
        return gating.read_blocks(path, profile.audio_rate, profile.samples_for(frames))
    except (OSError, ValueError):
        return None                       # the cut's loudness is then measured on the joined audio


def concat_list(paths: list[str | Path]) -> str:
    """A concat-demuxer list file body for ``paths``."""
    lines = ["ffconcat version 1.0"]
    for p in paths:
        escaped = str(Path(p).resolve()).replace("'", "'\\''")
        lines.append(f"file '{escaped}'")
    return "\n".join(lines) + "\n"


def burn_style(profile: OutputProfile) -> str:
    """libass style for burned subtitles; vertical video keeps them inside a safe area.

    Margins are in the SRT script's 288-line space: 28 (about 10 %) above the bottom for
    landscape; for portrait 36 (12.5 %, clear of the controls phone apps lay over the
    bottom) and 30 on each side.
    """
    base = "FontName=Roboto,FontSize=14,Outline=1,Shadow=0"
    if profile.height > profile.width:
        return f"{base},MarginV=36,MarginL=30,MarginR=30"
    return f"{base},MarginV=28"


MIX_HEADROOM_DB = 12.0     # speech and a bed at full scale sum to +6 dB; a crossfade's overlap adds up to 3


def join_audio(list_file: str, profile: OutputProfile, total_samples: int, out: str | Path,
               audio_inputs: list[str] | None = None, audio_graph: str | None = None) -> dict:
    """Write the joined audio as raw PCM (s16le stereo at the profile's rate, exactly
    ``total_samples`` long) and measure its loudness and true peak, decoding: the ``ebur128``
    summary ``loudness_filter`` takes. By default the audio is the concat list's own; with
    ``audio_graph`` (over ``audio_inputs``, ending in ``[joined]``: crossfades, music) it is that
    graph's output. Hard cuts whose clips' true peaks are known join faster by :func:`join_parts`.

    A graph's sums (a bed under speech, a crossfade's overlap) can pass full scale: its output is
    lowered by ``MIX_HEADROOM_DB`` before it is rounded to 16 bits, so nothing clips there. The
    loudness pass measures this PCM, so its gain takes the headroom back (in floating point, in
    the encoder)."""
    shape = (f"aresample={profile.audio_rate},aformat=sample_fmts=s16:channel_layouts=stereo,"
             f"apad,atrim=end_sample={total_samples},asplit=2[pcm][tap];[tap]ebur128=peak=true[meter]")
    graph = (f"{audio_graph};[joined]volume={-MIX_HEADROOM_DB}dB,{shape}" if audio_graph
             else f"[0:a:0]{shape}")
    args = ["-f", "concat", "-safe", "0", "-i", list_file, *(audio_inputs or []), "-filter_complex", graph,
            "-map", "[pcm]", "-c:a", "pcm_s16le", "-f", "s16le", str(out), "-map", "[meter]", "-f", "null", "-"]
    proc = ffmpeg.run(args, loglevel="info")
    return ebur128_summary(proc.stderr.decode(errors="replace"))


def _copied(out: Path, profile: OutputProfile, total_samples: int, peaks: list[float],
            joined: Callable[[Path], None] | None, blocks: list[gating.ClipBlocks | None] | None) -> dict:
    # Clips round their own sample counts (1601.6 a frame at 29.97 fps): the sum can differ
    # from the timeline's by a few samples, which the end gains (silence) or loses.
    os.truncate(out, total_samples * BYTES_PER_SAMPLE)
    if joined is not None:
        joined(out)
    if blocks and None not in blocks:
        level = gating.cut_loudness(blocks)
        return {"input_i": f"{level:.2f}", "input_tp": f"{max(peaks):.2f}"}
    # Measured apart: one run that copies and decodes for the meter takes longer than both.
    return {**measure_loudness(raw_input(out, profile), profile, peak=False), "input_tp": f"{max(peaks):.2f}"}


def join_parts(parts: list[tuple[str | Path, int]], profile: OutputProfile, total_samples: int, out: str | Path,
               peaks: list[float], joined: Callable[[Path], None] | None = None,
               blocks: list[gating.ClipBlocks | None] | None = None) -> dict:
    """The joined audio of hard cuts whose true peaks are known, copied rather than decoded, and
    its loudness: what :func:`join_audio` returns. ``parts``: (a normalised clip, or a clip's sound
    as raw PCM from :func:`sound_args` (``.pcm``); its length in samples), in order.

    Each clip's audio fades in and out over a few milliseconds, so no join adds a peak: the
    joined true peak is the largest clip's (``peaks``), and only the integrated loudness is
    measured: from each clip's loudness ``blocks`` when every clip has them (``media.gating``),
    else on the joined audio. A clip's PCM is read straight from its sample tables
    (``media.mov_pcm``), or decoded by ffmpeg when they are not plain. ``joined(out)`` is called
    as soon as the PCM is written, before its loudness is measured."""
    out = Path(out)
    with open(out, "wb") as sink:
        for path, samples in parts:
            path = Path(path)
            if path.suffix == ".pcm":
                _append(sink, path, samples)
                continue
            start = sink.tell()
            try:
                mov_pcm.copy_pcm(path, sink, samples)
            except mov_pcm.NotPlainPcm:
                sink.seek(start)
                sink.truncate()
                piece = out.with_name(f"{out.stem}-{start}.part")
                ffmpeg.run(["-i", str(path), "-map", "0:a:0", "-c:a", "pcm_s16le", "-f", "s16le", str(piece)])
                _append(sink, piece, samples)
                piece.unlink()
    return _copied(out, profile, total_samples, peaks, joined, blocks)


def _append(sink, path: Path, samples: int) -> None:
    data = path.read_bytes()           # a clip's sound, read and written whole (see media.mov_pcm)
    if len(data) != samples * BYTES_PER_SAMPLE:
        raise ffmpeg.FFmpegError(f"{path}: {len(data) // BYTES_PER_SAMPLE} audio samples where {samples} were expected")
    sink.write(data)


def finish_args(
    list_file: str, audio: str, profile: OutputProfile, out: str,
    burn_subtitles: str | None = None, font_dir: str | None = None, chapters: str | None = None,
) -> list[str]:
    """The final MP4: the joined clips' video by stream copy (or re-encoded to burn subtitles)
    and ``audio`` (the encoded AAC track, ``media.aac``) by stream copy. ``chapters`` is an
    ffmetadata file whose chapters are written into the MP4."""
    args = ["-f", "concat", "-safe", "0", "-i", list_file, "-i", audio]
    index = 2
    if chapters:
        args += ["-f", "ffmetadata", "-i", chapters, "-map_chapters", str(index)]
    args += ["-map", "0:v:0", "-map", "1:a:0"]
    if burn_subtitles:
        style = burn_style(profile)
        vf = f"subtitles=filename={filter_escape(burn_subtitles)}:force_style='{style}'"
        if font_dir:
            vf += f":fontsdir={filter_escape(font_dir)}"
        args += ["-vf", vf, *X264, "-r", _rate(profile)]
    else:
        args += ["-c:v", "copy"]
    return [
        *args, "-c:a", "copy",
        # The ffmetadata file has no global tags; mapping it (not -1) keeps the chapter titles.
        "-map_metadata", str(index) if chapters else "-1", "-movflags", "+faststart", out,
    ]


def middle_frame(path: str | Path, size: tuple[int, int] | None = None, fit: tuple[int, int] | None = None):
    """The frame nearest the middle of a clip, as a PIL image, scaled while converted: to
    ``size``, or to fit inside ``fit`` keeping its display shape (non-square pixels included).

    Seeks to the keyframe before the middle and decodes only from there to it."""
    import av

    with av.open(str(path), options=dict(OPEN_OPTIONS)) as container:
        stream = container.streams.video[0]
        target = (container.duration or 0) / 2 / 1_000_000
        if target and stream.time_base:
            container.seek(int(target / stream.time_base), stream=stream)   # to the keyframe before it
        frame = None
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= target:
                break
        if frame is None:
            raise ffmpeg.FFmpegError(f"{path}: no video frames")
        if fit and not size and frame.width and frame.height:
            wide = frame.width * float(stream.sample_aspect_ratio or 1)    # its display shape (SAR)
            scale = min(1.0, fit[0] / wide, fit[1] / frame.height)
            size = (max(1, round(wide * scale)), max(1, round(frame.height * scale)))
        if size:
            return frame.to_image(width=size[0], height=size[1])
        return frame.to_image()
