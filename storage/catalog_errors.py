"""The catalog's error, importable without SQLAlchemy (``storage.catalog_sqlite`` raises it too)."""

from __future__ import annotations

from reelflow.errors import InfrastructureError

HINT = "check REELFLOW_DATABASE_URL and that the database server is running"

# Seconds one statement waits for a SQLite catalog another connection holds locked (the
# driver's busy timeout); a render's writer tries again for longer (``tasks.catalog``).
BUSY_TIMEOUT = 30.0


class CatalogError(InfrastructureError):
    """The catalog database cannot be reached, or refuses us."""


def is_locked(exc: BaseException) -> bool:
    """Did a write fail only because another connection held the SQLite catalog locked?"""
    text = str(exc)
    return isinstance(exc, CatalogError) and ("database is locked" in text or "database is busy" in text)
