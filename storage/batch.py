"""Publish a set of objects that belong together (a render's outputs): all of them or none."""

from __future__ import annotations

import logging
from pathlib import Path

from storage.base import ClipStore

log = logging.getLogger("reelflow.storage")


def publish_all(store: ClipStore, files: list[tuple[str, str | Path]]) -> list[str]:
    """Put ``files`` (key, path) in order, the last one last (its presence means the set is complete).

    If any put fails, the ones already published are deleted before the error is raised, so
    a render's prefix never holds subtitles and a contact sheet without the video.
    """
    done: list[str] = []
    try:
        for key, path in files:
            store.put_file(key, path)
            done.append(key)
    except BaseException:
        for key in reversed(done):
            try:
                store.delete(key)
            except Exception as exc:  # noqa: BLE001 - the publish error is the one to report
                log.warning("could not withdraw %s after a failed publish: %s", key, exc)
        raise
    return done
