"""Work started before the step that needs it, when the cut is known early (no review to change
the picks, no colour match waiting for its reference).

:class:`NormalizeAhead` normalises each picked clip as it lands, while the engines make the
rest; ``normalize_clips`` then finds them in the store. Each clip's sound is made before its
picture, and once every clip of the cut has its sound the cut's audio is mixed (joined,
measured, encoded: ``tasks.audio_mix``) beside the encoding of the last pictures, and offered to
``stitch_render``. A failure here is left for those steps to meet and report.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from concurrent.futures import Future
from functools import partial
from pathlib import Path

from media import stitch
from media.cards import LowerThird
from media.timeline import Edit, timeline_for
from projects.schema import Output
from reelflow.context_pool import ContextPool
from reelflow.scratch import scratch_dir
from reelflow.settings import get_settings
from storage import open_store
from tasks import audio_mix
from tasks.limits import cpu_slots
from tasks.models import ClipRef, NormalizedRef
from tasks.stitch import normalize_in_slot, with_cards

Sound = tuple[NormalizedRef, Path | None]    # a normalised clip; its sound as raw PCM while it has no picture yet


class NormalizeAhead:
    """Normalise the cut's clips as they land (``__call__``), then mix its audio (:meth:`mix`).
    :meth:`close` once the render has stitched (or failed)."""

    def __init__(self, profile: Output, picked: dict[str, int], lower_thirds: dict[str, str | None],
                 lower_style: LowerThird | None = None):
        self.profile, self.picked, self.names, self.style = profile, picked, lower_thirds, lower_style
        self.pool = ContextPool(cpu_slots(), thread_name_prefix="reelflow-normalize-ahead")
        self.futures: list[Future] = []
        self.sounds: dict[str, Future] = {}
        self.work = scratch_dir("stitch")
        self.folder: Path | None = None          # the sounds kept for the mix
        self.lock = threading.Lock()
        self.mixing: Future | None = None

    def __call__(self, ref: ClipRef) -> None:
        if ref.take != self.picked.get(ref.scene_id, 1):
            return
        sound: Future = Future()
        self.sounds[ref.scene_id] = sound
        job = self.pool.submit(normalize_in_slot, ref, self.profile, None, self.names.get(ref.scene_id), self.style,
                               partial(self._heard, sound, f"{ref.index:06d}-{ref.take}.pcm"))
        job.add_done_callback(partial(_settle, sound))
        self.futures.append(job)

    def _heard(self, sound: Future, name: str, normalized: NormalizedRef, made: stitch.Sound) -> None:
        try:
            with self.lock:
                if self.folder is None:
                    self.work.mkdir(parents=True, exist_ok=True)
                    self.folder = Path(tempfile.mkdtemp(prefix="sounds-", dir=self.work))
            kept = self.folder / name
            try:
                os.link(made.pcm, kept)    # the normalising removes its own copy once the clip is stored
            except OSError:
                shutil.copyfile(made.pcm, kept)
        except OSError:
            return                         # the mix takes this clip's sound from the stored clip instead
        sound.set_result((normalized, kept))

    def wait(self) -> None:
        """Wait for every normalisation (failures are ``normalize_clips``'s to report)."""
        for future in self.futures:
            future.exception()
        self.pool.shutdown(wait=True)

    def mix(self, clips: list[ClipRef], edit: Edit | None, slug: str) -> None:
        """Mix the audio of the cut ``clips`` as soon as each has its sound, and offer it to this
        render's stitch (``tasks.audio_mix.take``)."""
        if clips and all(c.scene_id in self.sounds for c in clips):
            self.mixing = audio_mix.offer(slug, partial(self._mix, clips, edit, slug))

    def _mix(self, clips: list[ClipRef], edit: Edit | None, slug: str) -> audio_mix.Mix | None:
        sounds: list[Sound] = [self.sounds[c.scene_id].result() for c in clips]
        store, profile = open_store(get_settings().storage), self.profile
        self.work.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="mix-", dir=self.work))
        try:
            edit, items = with_cards(edit, [normalized for normalized, _ in sounds], profile, store, folder)
            timeline = timeline_for(items, profile.rate, profile.audio_rate, edit)
            peaks = [item.true_peak for item in items]
            if not timeline.all_cuts or (edit is not None and edit.music) or None in peaks:
                shutil.rmtree(folder, ignore_errors=True)
                return None                # crossfades, music or an unknown peak: mixed by the stitch
            raw = {normalized.key: pcm for normalized, pcm in sounds if pcm is not None}
            parts = [(raw.get(item.key) or store.fetch(item.key, folder / f"{k:04d}"), profile.samples_for(item.frames))
                     for k, item in enumerate(items)]
            blocks = [audio_mix.kept_blocks(item.key, item.true_peak, samples, profile.audio_rate)
                      for item, (_, samples) in zip(items, parts)]
            track = audio_mix.audio_track(lambda out, joined: stitch.join_parts(
                parts, profile, timeline.samples, out, peaks, joined, blocks), profile, slug, folder)
            return audio_mix.Mix(audio_mix.mix_key(items, timeline.samples, profile), track, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def close(self) -> None:
        """Once the render has stitched or failed: a mix no stitch took is discarded, kept sounds removed."""
        self.wait()
        if self.mixing is not None:
            audio_mix.withdraw(self.mixing)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _settle(sound: Future, job: Future) -> None:
    """A clip's sound once its normalisation is over, if it was not heard before: the stored clip."""
    if sound.done():
        return
    if job.exception() is not None:
        sound.set_exception(job.exception())
    else:
        sound.set_result((job.result(), None))
