"""What a person sees: a render's artifacts opened in the real Prefect UI by headless Chromium
(Debian's package, driven by Playwright, no browser download), the links served by
``reelflow serve``, and a review page whose video plays."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_deployment import free_port, prefect_server, start, stop  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SHOTS = Path(os.environ.get("REELFLOW_SCREENSHOTS", "/tmp/reelflow-screenshots"))


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield chromium.new_page(viewport={"width": 1280, "height": 900})
        finally:
            chromium.close()


@pytest.fixture
def served_store(prefect_server):
    """``reelflow serve`` on the server fixture's store, as a subprocess (stopped in teardown)."""
    env, tmp = prefect_server
    (tmp / "store").mkdir(exist_ok=True)
    port = free_port()
    log = tmp / "serve.log"
    proc = start([sys.executable, "-m", "reelflow", "serve", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"reelflow serve did not start:\n{log.read_text()}")
            time.sleep(0.2)
    try:
        yield url
    finally:
        stop(proc)


def render(env: dict, folder: Path, *args: str, **extra: str) -> str:
    env = {**env, "REELFLOW_DATABASE_URL": f"sqlite:///{folder.parent / 'catalog.db'}", **extra}
    proc = subprocess.run([sys.executable, "-m", "reelflow", "render", str(folder), *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=400, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def artifact_id(api: str, key: str) -> str:
    body = json.dumps({"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}).encode()
    req = urllib.request.Request(f"{api}/artifacts/filter", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        found = json.loads(r.read())
    assert found, f"no artifact {key}"
    return found[0]["id"]


def open_artifact(page, ui: str, api: str, key: str, shot: str):
    page.goto(f"{ui}/artifacts/artifact/{artifact_id(api, key)}", wait_until="domcontentloaded")
    page.wait_for_selector("img", timeout=60_000)
    page.wait_for_function("[...document.images].every(i => i.complete)", timeout=30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / shot), full_page=True)


def image_width(page, alt: str) -> int:
    return page.eval_on_selector(f'img[alt="{alt}"]', "i => i.naturalWidth")


@pytest.mark.slow
def test_report_in_the_prefect_ui_opens_its_links_and_the_review_video_plays(prefect_server, served_store,
                                                                               small_project, browser):
    env, _ = prefect_server
    api = env["PREFECT_API_URL"]
    ui = api.removesuffix("/api")
    render(env, small_project, REELFLOW_PUBLIC_URL=served_store)

    page = browser
    open_artifact(page, ui, api, "render-small-report", "report-artifact.png")
    assert image_width(page, "contact sheet") > 0
    video = page.eval_on_selector('a[href$="final.mp4"]', "a => a.href")
    review = page.eval_on_selector('a[href*="/review/small/"]', "a => a.href")
    assert review.startswith(served_store + "/review/small/")
    assert video.startswith(served_store + "/renders/small/")
    req = urllib.request.Request(video, headers={"Range": "bytes=0-1023"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 206 and r.headers["Accept-Ranges"] == "bytes" and len(r.read()) == 1024
    with urllib.request.urlopen(video, timeout=30) as r:
        assert r.status == 200 and r.headers["Accept-Ranges"] == "bytes" and r.headers["Content-Type"] == "video/mp4"

    open_artifact(page, ui, api, "render-small-storyboard", "storyboard-artifact.png")
    assert image_width(page, "storyboard") > 0

    page.goto(f"{served_store}/", wait_until="domcontentloaded")
    assert page.eval_on_selector_all("a", "as => as.map(a => a.href)").count(review) == 1
    page.goto(review, wait_until="domcontentloaded")
    page.wait_for_function("document.querySelector('video#final') && document.querySelector('video#final').readyState >= 2",
                           timeout=60_000)
    takes = page.eval_on_selector_all("figure.take video", "vs => vs.length")
    assert takes == 3 and page.locator("figure.take.picked").count() == 3
    page.wait_for_function("[...document.querySelectorAll('figure.take video')].every(v => v.readyState >= 1)",
                           timeout=60_000)
    page.screenshot(path=str(SHOTS / "review-page.png"), full_page=True)

    # Without REELFLOW_PUBLIC_URL the report cannot link a local file: the contact sheet is
    # inline and the text says how to open the video.
    render(env, small_project, "--force")
    open_artifact(page, ui, api, "render-small-report", "report-inline.png")
    assert image_width(page, "contact sheet") > 0
    text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    assert "reelflow serve" in text and "final.mp4" in text and "REELFLOW_PUBLIC_URL" in text
