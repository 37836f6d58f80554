"""``reelflow worker``: a Prefect task worker that makes clips (one per GPU).

With ``REELFLOW_CLIP_WORKERS=task-workers`` a render does not make its clips itself: each
clip is a Prefect background task (``generate_clip.delay``) that any running worker picks
up. Start one worker per GPU (``--gpu``), on this or other machines, all pointed at the
same Prefect server (``PREFECT_API_URL``), store (``REELFLOW_STORAGE``) and catalog
(``REELFLOW_DATABASE_URL``); Prefect hands each clip to one worker, and the GPU's limit
``gpu:<index>`` keeps one clip per GPU. No scheduler of our own.
"""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from reelflow.cli import app, err


@app.command()
def worker(
    gpu: Annotated[Optional[int], typer.Option(help="This worker's GPU index (sets REELFLOW_GPU and "
                                               "CUDA_VISIBLE_DEVICES).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Clips at once in this worker.")] = 1,
    timeout: Annotated[Optional[float], typer.Option(help="Exit after this many seconds (default: run until "
                                                     "stopped).")] = None,
) -> None:
    """Serve clip generation as a Prefect task worker (renders with REELFLOW_CLIP_WORKERS=task-workers)."""
    if gpu is not None:
        os.environ["REELFLOW_GPU"] = str(gpu)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    from prefect.task_worker import serve

    from reelflow.settings import reload_settings
    from tasks.clip import generate_clip

    settings = reload_settings()
    err.print(f"clip worker on gpu:{settings.gpu}: serving generate_clip (limit {limit})", highlight=False)
    serve(generate_clip.task, limit=limit, timeout=timeout)
