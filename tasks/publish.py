"""Prefect artifacts for a render: storyboard table, progress, final report."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.models import ClipRef, RenderResult


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


@task(task_run_name="publish-{result.slug}")
def publish_artifacts(result: RenderResult) -> None:
    """Publish the storyboard table and a markdown report of the render."""
    key = f"render-{result.slug}".lower().replace("_", "-")
    create_table_artifact(storyboard_rows(result.clips, result.links), key=f"{key}-storyboard",
                          description=f"Clips of {result.slug}, render {result.render_id}")
    lines = [
        f"# {result.slug} — render {result.render_id}",
        "",
        f"- video: [{result.video_key}]({result.video})",
        f"- duration: {result.duration:.2f} s",
        f"- clips generated: {result.generated}, reused: {result.reused}",
    ]
    if result.subtitles:
        lines.append(f"- subtitles: `{result.subtitles}`")
    if result.contact_sheet:
        lines += ["", f"![contact sheet]({result.contact_sheet})"]
    if result.warnings:
        lines += ["", "## Warnings", *[f"- {w}" for w in result.warnings]]
    create_markdown_artifact("\n".join(lines), key=f"{key}-report", description="Render report")
