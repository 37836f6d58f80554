"""reelflow: written productions -> clips from an engine -> one stitched video."""

__version__ = "0.1.0"
