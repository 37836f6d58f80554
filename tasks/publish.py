"""Prefect artifacts for a render: the storyboard at its start, the clip table and the report.

Every link in them opens in a browser: ``REELFLOW_PUBLIC_URL`` + key when set (``reelflow
serve``), presigned for S3. A local store nobody serves gets no links (a path in the UI is a
404): the report then shows the contact sheet inline and says how to open the video.
"""

from __future__ import annotations

import base64
import io
import re
import tempfile
from pathlib import Path

from tasks.step import in_prefect_run, run_logger, step

from projects import Project
from reelflow.scratch import scratch_dir
from reelflow.settings import get_settings
from storage import ClipStore, open_store
from storage.links import browser_link, review_link
from tasks.models import ClipPlan, ClipRef, RenderResult

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def md(text: str | None) -> str:
    """User text made inert in markdown: one line, every markup character escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join((text or "").split()))


def artifact_key(slug: str, what: str) -> str:
    return f"render-{slug}-{what}".lower().replace("_", "-")


def storyboard_rows(clips: list[ClipRef], links: dict[str, str] | None = None) -> list[dict]:
    links = links or {}
    return [
        {
            "scene": c.scene_id,
            "engine": c.engine or "footage",
            "status": "reused" if c.cached else "generated",
            "attempts": "; ".join(c.attempts),
            "seconds": round(c.seconds, 1),
            "clip": c.key,
            "link": links.get(c.scene_id, ""),
        }
        for c in sorted(clips, key=lambda c: c.index)
    ]


def inline_jpeg(store: ClipStore, key: str, width: int = 720, quality: int = 72) -> str | None:
    """A stored image as a small JPEG data URI (Prefect's UI renders it inside the markdown)."""
    from media.png_stream import thumbnail

    with tempfile.TemporaryDirectory(dir=_work_dir()) as tmp:
        # Our sheets are read a band at a time: a long cut's sheet (10-20 MB decoded) is never whole.
        img = thumbnail(store.fetch(key, tmp), width)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _data_uri_of(jpeg: Path) -> str | None:
    try:
        return "data:image/jpeg;base64," + base64.b64encode(jpeg.read_bytes()).decode("ascii")
    except OSError:
        return None


def _work_dir() -> Path:
    return scratch_dir("publish")


def how_to_open(store: ClipStore, key: str, slug: str, render_id: str) -> str:
    """The line a report shows when the store has no browser link."""
    return (f"`{store.url(key)}` — to watch it in a browser, run `reelflow serve` on this machine and open "
            f"http://127.0.0.1:8765/review/{slug}/{render_id} (set `REELFLOW_PUBLIC_URL=http://127.0.0.1:8765` "
            f"for renders and these links open from here)")


def storyboard_markdown(spec: Project, plans: list[ClipPlan], summary: str, store: ClipStore,
                        prefix: str, public_url: str | None, preview: str | None = None) -> str:
    """The storyboard artifact; ``preview``: a data URI of the sheet made while it was drawn
    (else, with no browser link to the PNG, the stored PNG is decoded for one)."""
    png, page = f"{prefix}/storyboard.png", f"{prefix}/storyboard.html"
    lines = [f"# {md(spec.title)} — storyboard", "", md(summary), ""]
    png_link, page_link = browser_link(store, png, public_url), browser_link(store, page, public_url)
    if page_link:      # (no review page link: that page opens once the render is done; the report links it)
        lines.append(f"[Open the storyboard page]({page_link})")
    lines += ["", f"![storyboard]({png_link or preview or inline_jpeg(store, png, width=960)})", ""]
    lines += ["| # | scene | engine | speech |", "| --- | --- | --- | --- |"]
    for i, plan in enumerate(plans):
        engine = " · ".join(x for x in (plan.engine or "footage", plan.model) if x)
        lines.append(f"| {i + 1} | {md(plan.scene_id)} | {md(engine)} | {md(plan.subtitle)} |")
    warnings = [w for p in plans for w in p.warnings]
    if warnings:
        lines += ["", "## Warnings", *[f"- {md(w)}" for w in warnings]]
    return "\n".join(lines)


@step(task_run_name="storyboard-{spec.slug}")
def publish_storyboard(spec: Project, chains: list[list[ClipPlan]], picked: dict[str, int], render_id: str) -> str | None:
    """Draw the storyboard, store it beside the render and show it as an artifact (before any clip)."""
    from storage.history import open_history
    from tasks.cost import estimate_chains
    from media.storyboard import preview_path
    from tasks.storyboard import draw_storyboard, picked_chains

    settings = get_settings()
    store = open_store(settings.storage)
    prefix = f"renders/{spec.slug}/{render_id}"
    try:
        costs = estimate_chains(chains, store, lambda: open_history(settings.database_url), settings)
        shown_in_ui = in_prefect_run()
        with tempfile.TemporaryDirectory(dir=_work_dir()) as tmp:
            png, page, line = draw_storyboard(spec, chains, costs, tmp, picked, preview=960 if shown_in_ui else None)
            store.put_file(f"{prefix}/storyboard.html", page)
            store.put_file(f"{prefix}/storyboard.png", png)
            preview = _data_uri_of(preview_path(png)) if shown_in_ui else None
        shown = picked_chains(chains, picked)
    except Exception as exc:  # noqa: BLE001 - a storyboard never costs the render itself
        run_logger().warning("no storyboard for %s: %s", spec.slug, exc)
        return None
    if not shown_in_ui:
        return None          # stored beside the render; the artifact is for the Prefect UI
    from prefect.artifacts import create_markdown_artifact

    text = storyboard_markdown(spec, [c[0] for c in shown], line, store, prefix, settings.public_url, preview)
    return str(create_markdown_artifact(text, key=artifact_key(spec.slug, "storyboard"),
                                        description=f"Storyboard of {spec.slug}, render {render_id}"))


def report_markdown(result: RenderResult, store: ClipStore, public_url: str | None) -> str:
    prefix = result.video_key.rsplit("/", 1)[0]
    link = lambda key: browser_link(store, key, public_url)  # noqa: E731
    video = link(result.video_key)
    lines = [f"# {md(result.slug)} — render {result.render_id}", ""]
    lines.append(f"- video: [final.mp4]({video})" if video else f"- video: {how_to_open(store, result.video_key, result.slug, result.render_id)}")
    if review := review_link(result.slug, result.render_id, public_url):
        lines.append(f"- review page (takes side by side): [{result.render_id}]({review})")
    lines += [
        f"- duration: {result.duration:.2f} s",
        f"- clips generated: {result.generated}, reused: {result.reused}",
    ]
    files = {k for k in store.list(prefix) if k.startswith(prefix + "/")}
    for name, label in (("final.srt", "subtitles"), ("final.vtt", "subtitles"), ("storyboard.html", "storyboard")):
        key = f"{prefix}/{name}"
        if key in files:
            lines.append(f"- {label}: " + (f"[{name}]({link(key)})" if link(key) else f"`{store.url(key)}`"))
    sheet = f"{prefix}/contact-sheet.png"
    if sheet in files:
        lines += ["", f"![contact sheet]({link(sheet) or inline_jpeg(store, sheet)})"]
    if result.warnings:
        lines += ["", "## Warnings", *[f"- {md(w)}" for w in result.warnings]]
    return "\n".join(lines)


@step(task_run_name="publish-{result.slug}")
def publish_artifacts(result: RenderResult) -> None:
    """Publish the clip table and a markdown report of the render whose links open (Prefect UI only)."""
    if not in_prefect_run():
        return
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    settings = get_settings()
    store = open_store(settings.storage)
    links = {c.scene_id: link for c in result.clips if (link := browser_link(store, c.key, settings.public_url))}
    create_table_artifact(storyboard_rows(result.clips, links), key=artifact_key(result.slug, "clips"),
                          description=f"Clips of {result.slug}, render {result.render_id}")
    create_markdown_artifact(report_markdown(result, store, settings.public_url),
                             key=artifact_key(result.slug, "report"), description="Render report")
