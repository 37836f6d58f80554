"""``reelflow storyboard`` and ``reelflow serve``: look at a production before and after a render.

Registered on :data:`reelflow.cli.app`. Neither command imports Prefect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reelflow.cli import ProjectArg, _check_engine, _load_or_exit, app, err, out
from reelflow.errors import InputError
from reelflow.out_folder import check_out


def default_storyboard_dir(slug: str) -> Path:
    """``.reelflow/storyboards/<slug>/`` beside the work folder (``REELFLOW_WORK_DIR``'s parent)."""
    from reelflow.settings import get_settings

    return Path(get_settings().work_dir).parent / "storyboards" / slug


@app.command()
def storyboard(
    project: ProjectArg,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for storyboard.png and storyboard.html "
                                                    "(default: storyboards/<slug>/ beside REELFLOW_WORK_DIR: .reelflow/storyboards/<slug>/).")] = None,
    engine: Annotated[Optional[str], typer.Option(help="Plan for this engine (overrides project.yaml).")] = None,
) -> None:
    """Draw every scene before paying for a render: picture, timing, speech, engine, cost. No engine call."""
    from reelflow.settings import get_settings
    from storage import open_store
    from tasks.storyboard import HTML_NAME, PNG_NAME, make_storyboard

    _check_engine(engine)
    spec = _load_or_exit(project)
    settings = get_settings()
    dest = out_dir or default_storyboard_dir(spec.slug)
    check_out(dest, (PNG_NAME, HTML_NAME))
    try:
        png, page = make_storyboard(spec, open_store(settings.storage), settings, dest, engine)
    except OSError as exc:      # the folder checked out, yet a file could not be written (disk full, ...)
        raise InputError(f"--out {dest}: cannot write {Path(exc.filename or dest).name} ({exc.strerror or exc})") from None
    out.print(f"{spec.slug}: storyboard of {len(spec.scenes)} scenes", highlight=False)
    print(png.resolve())
    print(page.resolve())


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one).")] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 to reach it from other machines).")] = "127.0.0.1",
) -> None:
    """Serve the store read-only over HTTP, with a review page per render (set REELFLOW_PUBLIC_URL to this)."""
    from reelflow.serve import make_server
    from reelflow.settings import get_settings
    from reelflow.urls import mask_url

    import socket

    settings = get_settings()
    try:
        server = make_server(settings.storage, host, port)
    except socket.gaierror as exc:          # not an address or a name this machine can bind
        raise InputError(f"--host {host!r}: {exc.strerror or exc}") from None
    except OSError as exc:
        err.print(f"cannot listen on {host}:{port}: {exc.strerror or exc} (try another --port)", highlight=False)
        raise typer.Exit(3) from None
    url = f"http://{host or '0.0.0.0'}:{server.server_address[1]}"
    err.print(f"serving {mask_url(settings.storage)} read-only at {url}/ (every render, with its review "
              f"page); Ctrl+C stops", highlight=False)
    if not settings.public_url:
        err.print(f"artifacts link here once REELFLOW_PUBLIC_URL={url} is set for renders", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
