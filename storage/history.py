"""The catalog as a source of history (engine speeds), opened only when it can hold some.

A SQLite catalog whose file does not exist yet has no history; opening it would import
SQLAlchemy (about 0.4 s of CPU) and create the file, only to read nothing. Estimates and
storyboards of a production never rendered on this machine skip both; on an existing SQLite
catalog they read it with sqlite3 (``storage.catalog_sqlite``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.catalog import Catalog
    from storage.catalog_sqlite import LiteCatalog

_SQLITE = re.compile(r"sqlite(?:\+\w+)?:///(?P<path>[^?]*)")


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, or None for another database or an in-memory one."""
    found = _SQLITE.fullmatch(url.split("?", 1)[0]) if url.startswith("sqlite") else None
    if found is None or found["path"] in ("", ":memory:"):
        return None
    return Path(found["path"])


def open_history(url: str) -> Catalog | LiteCatalog | None:
    """The catalog at ``url`` (``storage.catalog_sqlite``'s where it is a SQLite file with
    today's tables), or None where it can hold no history (a SQLite file not created yet, or an
    in-memory SQLite database, which a new process always finds empty)."""
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is None or not path.exists():
            return None
    from storage.catalog_sqlite import open_lite

    return open_lite(url)
