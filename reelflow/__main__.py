"""``python -m reelflow`` is the ``reelflow`` command."""

from reelflow.cli import main

main()
