"""Links a person can open in a browser, whatever the store."""

from __future__ import annotations

from urllib.parse import quote

from storage.base import ClipStore, check_key
from storage.local import LocalStore


def browser_link(store: ClipStore, key: str, public_url: str | None = None) -> str | None:
    """``<public_url>/<key>`` when set (``reelflow serve`` or a public bucket), else a presigned
    link for S3; None for a local folder nobody serves (a path is no link: the UI would 404)."""
    check_key(key)
    if public_url:
        return f"{public_url.rstrip('/')}/{quote(key)}"
    if isinstance(store, LocalStore):
        return None
    return store.url(key)


def review_link(slug: str, render_id: str, public_url: str | None) -> str | None:
    """The render's page on ``reelflow serve`` (only known when REELFLOW_PUBLIC_URL is set)."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/review/{quote(slug)}/{quote(render_id)}"
