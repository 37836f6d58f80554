"""``reelflow worker``: a Prefect task worker that makes clips (one per GPU).

With ``REELFLOW_CLIP_WORKERS=task-workers`` a render does not make its clips itself: each
clip is a Prefect background task (``generate_clip.delay``) that any running worker picks
up. Start one worker per GPU (``--gpu``), on this or other machines, all pointed at the
same Prefect server (``PREFECT_API_URL``), store (``REELFLOW_STORAGE``) and catalog
(``REELFLOW_DATABASE_URL``); Prefect hands each clip to one worker, and the GPU's limit
``gpu:<index>`` keeps one clip per GPU. No scheduler of our own.
"""

from __future__ import annotations

import math
import os
import signal
import sys
from typing import Annotated, Optional

import typer

from reelflow.cli import app, err
from reelflow.errors import InputError


@app.command()
def worker(
    gpu: Annotated[Optional[int], typer.Option(min=0, help="This worker's GPU index (sets REELFLOW_GPU and "
                                               "CUDA_VISIBLE_DEVICES).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Clips at once in this worker.")] = 1,
    timeout: Annotated[Optional[float], typer.Option(help="Exit after this many seconds (default: run until "
                                                     "stopped).")] = None,
) -> None:
    """Serve clip generation as a Prefect task worker (renders with REELFLOW_CLIP_WORKERS=task-workers)."""
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise InputError(f"--timeout: {timeout:g} is not a number of seconds above 0 (leave it out to run "
                         "until stopped)")
    if gpu is not None:
        os.environ["REELFLOW_GPU"] = str(gpu)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    from reelflow.clip_worker import require_api, serve_clips
    from reelflow.settings import reload_settings
    from reelflow.urls import mask_url

    try:
        settings = reload_settings()
        url = require_api()
        err.print(f"clip worker on gpu:{settings.gpu}: serving generate_clip from {mask_url(url)} (limit {limit})",
                  markup=False, highlight=False)
        stopped = serve_clips(limit, timeout)
    except KeyboardInterrupt as exc:         # before serving (Ctrl-C, SIGTERM): nothing was taken on
        from reelflow.process import stop_signal

        err.print("clip worker interrupted before serving", highlight=False)
        raise typer.Exit(128 + stop_signal(exc)) from None
    if stopped is None:
        return
    name = signal.Signals(stopped.signum).name
    err.print(f"clip worker stopped ({name}): {stopped.crashed} clip(s) in progress marked crashed; "
              "their renders queue them for another worker", highlight=False)
    sys.stderr.flush()
    sys.stdout.flush()
    # At once: a clip's engine thread is still running, and the interpreter's exit would wait
    # for it. Its children (ffmpeg, TTS, engines) die with us (PR_SET_PDEATHSIG), its leases too.
    os._exit(128 + stopped.signum)
