"""The catalog's error, importable without SQLAlchemy (``storage.catalog_sqlite`` raises it too)."""

from __future__ import annotations

from reelflow.errors import InfrastructureError

HINT = "check REELFLOW_DATABASE_URL and that the database server is running"


class CatalogError(InfrastructureError):
    """The catalog database cannot be reached, or refuses us."""
