"""``python -m reelflow`` is the ``reelflow`` command."""

from reelflow.cli import app

app()
