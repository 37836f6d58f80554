"""Run the real ``reelflow`` CLI with an audit hook on ``open`` (and test engines registered).

``python -m tests.hostile_cli <reelflow args>``. With ``HOSTILE_WATCH`` set, every ``open`` of
a path under that folder is appended to ``HOSTILE_WATCH_LOG``: the hostile-input suite puts
its canary there and asserts the log stays empty. ``HOSTILE_LEAKY`` registers an engine
``leaky`` that fails with that text (an engine echoing secrets back).
"""

from __future__ import annotations

import os
import sys


def _audit(watch: str, log: str):
    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if os.path.realpath(path).startswith(watch) or os.path.abspath(path).startswith(watch):
                with open(log, "a", encoding="utf-8") as f:   # the log lives outside the watched folder
                    f.write(path + "\n")
    return hook


def main() -> None:
    watch = os.environ.get("HOSTILE_WATCH")
    if watch:
        sys.addaudithook(_audit(os.path.realpath(watch), os.environ["HOSTILE_WATCH_LOG"]))
    if leaky := os.environ.get("HOSTILE_LEAKY"):
        from engines import EngineInputError, registry
        from tests.engines_fake import FaultyEngine

        registry.register("leaky", lambda model=None, params=None: FaultyEngine("leaky", EngineInputError(leaky)))
    from reelflow.cli import app

    app(prog_name="reelflow")


if __name__ == "__main__":
    main()
