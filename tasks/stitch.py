"""Normalise stored clips and stitch them into the final video, subtitles and contact sheet."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from media import ffmpeg, images, stitch, transitions
from media.frame_cache import cached_middle_frame
from media.images import font_dir
from media.loudness import SILENT_PEAK
from media.karaoke import SpokenLine, read_words, words_key
from media.subtitles import build_karaoke, build_subtitles, write_subtitles
from media.chapters import write_ffmetadata
from media.color import ColorStats, measure as measure_colour
from media.cards import Card, LowerThird, card_digest, card_png, lower_third_png, render_card
from media.otio_export import write_handoff
from media.music import music_graph, music_inputs, timeline_speech
from media.timeline import Edit, timeline_for
from projects.schema import Output
from reelflow.context_pool import ContextPool
from reelflow.process import lower_thread_priority
from reelflow.scratch import scratch_dir
from reelflow.settings import get_settings
from storage import ClipStore, open_store
from storage.batch import publish_all
from tasks import audio_mix, events, intact
from tasks.catalog import catalog_ready
from tasks.limits import cpu_slot, cpu_slots
from tasks.models import ClipRef, NormalizedRef
from tasks.step import step


TITLE_CARD, END_CARD = "title card", "end card"   # not valid scene ids: they never collide


def normalized_key(ref: ClipRef, profile: Output, frames: int | None, match: ColorStats | None = None,
                   lower_third: tuple[str, LowerThird] | None = None) -> str:
    digest = ref.key.rsplit("/", 1)[-1].split(".")[0]
    length = frames if frames is not None else "auto"
    look = f"-c{match.digest()}" if match is not None else ""
    if lower_third is not None:
        look += f"-l{lower_third[1].digest(lower_third[0])}"
    return (f"normalized/{profile.video_key()}-n{stitch.NORMALIZE_VERSION}/"
            f"{digest}-{length}{look}{stitch.NORMALIZED_SUFFIX}")


def normalize_stored(ref: ClipRef, profile: Output, store: ClipStore, work_dir: Path,
                     match: ColorStats | None = None, lower_third: tuple[str, LowerThird] | None = None,
                     heard: Callable[[NormalizedRef, stitch.Sound], None] | None = None) -> NormalizedRef:
    """Normalise one stored clip to ``profile`` (cached in the store under its own key).

    A clip kept at its own length (footage without a duration) is keyed ``-auto``; the frame
    count it came out with is kept in the object's metadata, so a cache hit needs no download.
    ``match``: the colour statistics to match (the reference scene's); ``lower_third``: (name,
    style) drawn over the clip's first seconds. Both are part of the key. ``heard(normalised,
    sound)``: called when a clip being normalised has its sound (``media.stitch.Sound``; its PCM
    is deleted once the clip is stored) and its picture is still to be encoded. The sound's
    loudness blocks are kept on this machine (``tasks.audio_mix.keep_blocks``).
    """
    frames = profile.frames_for(ref.duration) if ref.duration else None
    key = normalized_key(ref, profile, frames, match, lower_third)
    words = stored_words(ref.key, store, work_dir) if ref.speech else None

    def normalized(frames: int, peak: float | None) -> NormalizedRef:
        return NormalizedRef(scene_id=ref.scene_id, index=ref.index, key=key, frames=frames, speech=ref.speech,
                             words=words, true_peak=peak)

    peak = None
    meta = store.metadata(key) if store.exists(key) else None
    kept = _number_or_none(meta.get("frames"), int) if meta is not None else None
    if meta is not None and _reusable(kept, frames) and (problem := intact.problem(store, key, kept or frames)):
        said = f"scene {ref.scene_id!r}: the stored normalised clip {key} is damaged ({problem}); it is made again"
        events.warn(said)
        meta = None
    if meta is not None and _reusable(kept, frames):
        frames = kept or frames
        peak = _number_or_none(meta.get("true_peak"), float)     # clips normalised before it was kept: None
    else:                    # not stored, or stored with other frames (older versions kept empty clips)
        work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
            out = Path(tmp) / "normalized.mov"
            overlay = None
            if lower_third is not None:
                name, style = lower_third
                png = lower_third_png(name, style, profile.width, profile.height, Path(tmp) / "lower-third.png")
                overlay = (str(png), style.duration)

            def made(sound: stitch.Sound) -> None:
                audio_mix.keep_blocks(key, sound.blocks)
                if heard is not None:
                    heard(normalized(sound.frames, sound.true_peak), sound)

            info, sound = stitch.normalize_clip(store.fetch(ref.key, tmp), out, profile, ref.duration,
                                                match=match, overlay=overlay, heard=made)
            frames, peak = info.video_frames, sound.true_peak          # what was asked: normalize_clip checks
            store.put_file(key, out, {"scene": ref.scene_id, "source": ref.key, "frames": str(frames),
                                      "true_peak": f"{peak:.2f}"})
            intact.vouch(store, key, frames)
    events.emit("normalized", scene=ref.scene_id)
    return normalized(frames, peak)


def _reusable(kept: int | None, frames: int | None) -> bool:
    """A stored normalisation is reused when it kept the frames asked (any, for a clip at its own
    length), or kept none (normalised before they were kept) at the frames its key names."""
    if kept is None:
        return frames is not None
    return kept >= 1 and frames in (None, kept)


def _number_or_none(value: str | None, kind: type[int] | type[float]) -> int | float | None:
    try:
        return kind(value) if value is not None else None
    except ValueError:
        return None


def stored_words(clip_key: str, store: ClipStore, work_dir: Path) -> SpokenLine | None:
    """The word timings kept beside a raw clip (the TTS's), or None: the highlight is then proportional."""
    key = words_key(clip_key)
    if not store.exists(key):
        return None
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        return read_words(store.fetch(key, tmp))


def reference_colour(clips: list[ClipRef], scene_id: str, store: ClipStore, work_dir: Path) -> ColorStats | None:
    """Colour statistics of ``scene_id``'s clip, or None when that scene is not in this render."""
    ref = next((c for c in clips if c.scene_id == scene_id), None)
    if ref is None:
        return None
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        return measure_colour(store.fetch(ref.key, tmp))


def card_ref(card: Card, name: str, profile: Output, store: ClipStore, work: Path) -> NormalizedRef:
    """A title or end card as a normalised clip, cached in the store by its pixels and length."""
    frames = profile.frames_for(card.duration)
    png = card_png(card, profile.width, profile.height, work / f"{name.replace(' ', '-')}.png")
    key = (f"normalized/{profile.video_key()}-n{stitch.NORMALIZE_VERSION}/"
           f"card-{card_digest(png, frames)}{stitch.NORMALIZED_SUFFIX}")
    if not store.exists(key):
        out = render_card(png, profile, frames, png.with_suffix(".mov"))
        store.put_file(key, out, {"scene": name, "frames": str(frames)})
    return NormalizedRef(scene_id=name, index=-1, key=key, frames=frames, true_peak=SILENT_PEAK)


def with_cards(edit: Edit | None, clips: list[NormalizedRef], profile: Output, store: ClipStore,
               work: Path) -> tuple[Edit | None, list]:
    """The clips with the title and end cards around them; a card shares its neighbour's chapter."""
    if edit is None or not (edit.title_card or edit.end_card):
        return edit, clips
    items, chapters = list(clips), dict(edit.chapters)
    if edit.title_card:
        items.insert(0, card_ref(edit.title_card, TITLE_CARD, profile, store, work))
        chapters[TITLE_CARD] = chapters.get(clips[0].scene_id, clips[0].scene_id)
    if edit.end_card:
        items.append(card_ref(edit.end_card, END_CARD, profile, store, work))
        chapters[END_CARD] = chapters.get(clips[-1].scene_id, clips[-1].scene_id)
    return edit.model_copy(update={"chapters": chapters}), items


def stitch_render(
    clips: list[NormalizedRef], profile: Output, store: ClipStore, work_dir: Path, dest_prefix: str,
    edit: Edit | None = None, ready: Callable[[], None] | None = None,
) -> dict:
    """Join normalised clips into ``<dest_prefix>/final.mp4`` (+ subtitles, contact sheet);
    ``ready()`` is called before anything is published (and may raise to stop it)."""
    clips = sorted(clips, key=lambda c: c.index)
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stitch-", dir=work_dir))
    mix = None
    try:
        edit, items = with_cards(edit, clips, profile, store, tmp)
        timeline = timeline_for(items, profile.rate, profile.audio_rate, edit)
        paths = [store.fetch(c.key, tmp / f"{i:04d}") for i, c in enumerate(items)]
        scene_paths = [p for c, p in zip(items, paths) if c.index >= 0]
        music = edit.music if edit else None
        joined = "[speech]" if music else "[joined]"
        audio_inputs: list[str] = []
        graph = None
        if timeline.all_cuts:
            pieces = paths
            if music:
                graph = f"[0:a:0]anull{joined}"
        else:
            events.emit("stitch", stage="transitions")
            (tmp / "segments").mkdir()
            pieces = transitions.video_segments(timeline, paths, tmp / "segments", stitch.X264)
            audio_inputs = [arg for p in paths for arg in ("-i", str(p))]
            graph = transitions.audio_graph(timeline, 1, joined)
        if music:
            spans = timeline_speech(timeline, paths) if music.duck else []
            bed = 1 + len(audio_inputs) // 2
            audio_inputs += music_inputs(music)
            graph += ";" + music_graph(music, bed, timeline.samples, profile.audio_rate, timeline.duration,
                                       spans, joined, "[joined]")
        list_file = tmp / "clips.ffconcat"
        list_file.write_text(stitch.concat_list(pieces))

        subs = build_subtitles(timeline.cues())
        sub_fmt = {"srt": "srt", "burn": "srt", "vtt": "vtt"}.get(profile.subtitles)
        sub_path = tmp / f"final.{sub_fmt}" if sub_fmt else None
        if sub_path:
            write_subtitles(subs, sub_path, sub_fmt)
        burn = sub_path if profile.subtitles == "burn" else None
        if burn and profile.highlight == "word":
            burn = write_subtitles(build_karaoke(timeline.spoken_cues()), tmp / "final.ass", "ass")

        events.emit("stitch", stage="loudness")
        # The contact sheet and the edit hand-off are made while ffmpeg works on the audio
        # (frames are cached per clip).
        slug = dest_prefix.rsplit("/", 2)[-2]
        side = ContextPool(1, thread_name_prefix="reelflow-sheet", initializer=lower_thread_priority)
        sheet_future = side.submit(contact_sheet, clips, scene_paths, profile, tmp / "contact-sheet.png")
        handoff_future = side.submit(write_handoff, timeline, slug, store.url, tmp)
        side.shutdown(wait=False)
        peaks = [c.true_peak for c in items]
        plain = graph is None and None not in peaks          # hard cuts, no music: can be mixed ahead
        mix = audio_mix.take(slug, audio_mix.mix_key(items, timeline.samples, profile) if plain else "")
        if mix is not None:
            track = mix.track
        elif plain:
            parts = [(path, profile.samples_for(item.frames)) for item, path in zip(items, paths)]
            blocks = [audio_mix.kept_blocks(item.key, item.true_peak, samples, profile.audio_rate)
                      for item, (_, samples) in zip(items, parts)]
            track = audio_mix.audio_track(lambda out, joined: stitch.join_parts(
                parts, profile, timeline.samples, out, peaks, joined, blocks), profile, slug, tmp)
        else:
            track = audio_mix.audio_track(lambda out, joined: stitch.join_audio(
                str(list_file), profile, timeline.samples, out, audio_inputs=audio_inputs, audio_graph=graph),
                profile, slug, tmp)
        events.emit("stitch", stage="encode")
        final = tmp / "final.mp4"
        chapters = str(write_ffmetadata(timeline, tmp / "chapters.txt")) if profile.chapters else None

        def mux(audio: Path) -> None:
            ffmpeg.run(stitch.finish_args(str(list_file), str(audio), profile, str(final),
                                          burn_subtitles=str(burn) if burn else None, font_dir=font_dir(),
                                          chapters=chapters))

        mux(track.path)
        if (limited := track.settle()) is not None:      # the AAC encode overshot the true-peak ceiling
            mux(limited)
        sheet = sheet_future.result()
        keys = {"video": f"{dest_prefix}/final.mp4", "contact_sheet": f"{dest_prefix}/contact-sheet.png"}
        files: list[tuple[str, Path]] = []
        for kind, path in handoff_future.result().items():
            keys[kind] = f"{dest_prefix}/{path.name}"
            files.append((keys[kind], path))
        if "edl" not in keys:
            timeline.warnings.append(f"no final.edl: EDL timecode cannot count {profile.fps:g} fps (24, 25, 30, "
                                     "48, 50, 60, the NTSC rates among them, and rates that divide one of "
                                     "them); final.otio holds the cut")
        if sub_path:
            keys["subtitles"] = f"{dest_prefix}/final.{sub_fmt}"
            files.append((keys["subtitles"], sub_path))
        files += [(keys["contact_sheet"], sheet), (keys["video"], final)]
        if ready is not None:
            ready()
        publish_all(store, files)   # all or none; the video last: its presence means the render is complete
        intact.vouch(store, keys["video"])    # an unchanged render returns it without probing it
        keys["duration"] = timeline.duration
        keys["timeline"] = timeline
        return keys
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if mix is not None:
            mix.discard()


def contact_sheet(clips: list[NormalizedRef], paths: list[Path], profile: Output, out: Path) -> Path:
    """One small frame from the middle of each clip, tiled: decoded, scaled and pasted one at a time."""
    columns, width = images.sheet_layout(len(clips))
    size = (width, max(1, round(width * profile.height / profile.width)))
    frames = ((c.scene_id, cached_middle_frame(c.key, p, size)) for c, p in zip(clips, paths))
    return images.contact_sheet(frames, out, columns=columns, thumb_width=width, count=len(clips),
                                aspect=size[1] / size[0])


def normalize_in_slot(ref: ClipRef, profile: Output, match: ColorStats | None = None, name: str | None = None,
                      style: LowerThird | None = None,
                      heard: Callable[[NormalizedRef, stitch.Sound], None] | None = None) -> NormalizedRef:
    """``normalize_stored`` with this render's store and work folder, holding one CPU slot."""
    settings = get_settings()
    with cpu_slot():
        return normalize_stored(ref, profile, open_store(settings.storage), scratch_dir("normalize"),
                                match, (name, style) if name and style else None, heard)


@step(task_run_name="normalize-clips")
def normalize_clips(clips: list[ClipRef], profile: Output, match: ColorStats | None = None,
                    lower_thirds: list[str | None] | None = None,
                    lower_style: LowerThird | None = None) -> list[NormalizedRef]:
    """Bring every clip to the output profile with exact frame and sample counts: one clip per
    CPU at once (each a cached ffmpeg run), in one step rather than a task per clip."""
    names = lower_thirds or [None] * len(clips)

    def one(ref: ClipRef, name: str | None) -> NormalizedRef:
        return normalize_in_slot(ref, profile, match, name, lower_style)

    if len(clips) <= 1:
        return [one(ref, name) for ref, name in zip(clips, names)]
    with ContextPool(min(len(clips), cpu_slots()), thread_name_prefix="reelflow-normalize") as pool:
        return list(pool.map(one, clips, names))


@step(task_run_name="colour-reference-{scene_id}")
def colour_reference(clips: list[ClipRef], scene_id: str) -> ColorStats | None:
    """Measure the colour every clip is matched to (``color_match:``)."""
    settings = get_settings()
    return reference_colour(clips, scene_id, open_store(settings.storage), scratch_dir("normalize"))


@step(task_run_name="stitch-{slug}")
def stitch_clips(clips: list[NormalizedRef], profile: Output, slug: str, render_id: str,
                 edit: Edit | None = None) -> dict:
    """Join the clips, normalise loudness, write subtitles and a contact sheet, publish."""
    settings = get_settings()
    # Nothing is published that the catalog cannot record: its opening (SQLAlchemy's import, on a
    # thread of lower priority) and the clips' attempt rows are waited for only now, not before
    # the stitch's work.
    return stitch_render(clips, profile, open_store(settings.storage), scratch_dir("stitch"),
                         f"renders/{slug}/{render_id}", edit, ready=lambda: catalog_ready(render_id, flush=True))
