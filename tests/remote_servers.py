"""Real local servers with the remote engines' HTTP contracts, and fault injection:

* ``RunPodServer``: RunPod's REST routes (``/v2/{id}/run|status|cancel|health|runsync``)
  running our own worker handler (Ovi, reference 000) and handlers with the MultiTalk,
  InfiniteTalk and OmniAvatar request/response shapes (references 004, 002, 001).
* ``SpaceServer``: a gradio app exposing ``/generate_scene(text_prompt, sample_steps, image)``
  like ``alexnasa/Ovi-ZEROGPU`` (reference 003).

Faults: ``faults.http`` (statuses for the next requests: 429, 500, ...), ``faults.slow``
(seconds a job takes), ``faults.jobs`` (a list of what the next jobs do: "fail", "none",
"truncate", "mute" (no audio stream), "quota", "ok"), ``faults.rate`` (a share of requests failing with 500, seeded),
``faults.answers`` (raw (content type, body) answers to the next requests: an HTML error page,
JSON that is not an object), ``faults.drip`` (every answer's body a byte at a time, this many
seconds apart).
"""

from __future__ import annotations

import base64
import json
import random
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from engines.animatic import AnimaticEngine
from engines.base import ClipRequest
from engines.runpod_worker import handler as ovi_worker
from tests.servers import free_port, wait_for_port


@dataclass
class Faults:
    http: list[int] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    slow: float = 0.0
    rate: float = 0.0
    answers: list[tuple[str, str]] = field(default_factory=list)   # raw (content type, body) for the next requests
    drip: float = 0.0                                                # seconds between bytes of every answer
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_http(self) -> int | None:
        with self.lock:
            if self.http:
                return self.http.pop(0)
            if self.rate and self.rng.random() < self.rate:
                return 500
        return None

    def next_answer(self) -> tuple[str, str] | None:
        with self.lock:
            return self.answers.pop(0) if self.answers else None

    def next_job(self) -> str:
        with self.lock:
            return self.jobs.pop(0) if self.jobs else "ok"


def _load(value: str, suffix: str, folder: Path) -> str:
    """A base64 payload or a URL, saved to a file."""
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    if value.startswith(("http://", "https://")):
        with urllib.request.urlopen(value, timeout=30) as r:
            path.write_bytes(r.read())
    else:
        path.write_bytes(base64.b64decode(value))
    return str(path)


def _talking_head(inp: dict, image_key: str, audio_key: str, seconds: float) -> dict:
    """Image + audio -> a clip (the animatic, driven by the given audio): base64 out."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if image_key not in inp or audio_key not in inp:
            return {"error": f"invalid input: {image_key} and {audio_key} are required"}
        request = ClipRequest(scene_id="talk", prompt=inp.get("prompt", ""), image=_load(inp[image_key], ".png", folder),
                              audio=_load(inp[audio_key], ".wav", folder), width=320, height=320, fps=24,
                              duration=seconds, seed=int(inp.get("seed", 0)))
        clip = AnimaticEngine().generate(request, folder / "out")
        return {"video_base64": base64.b64encode(Path(clip.path).read_bytes()).decode()}


FAMILY_HANDLERS = {
    "ovi": lambda job: ovi_worker(job),
    "multitalk": lambda job: _talking_head(job["input"], "reference_image", "audio_1",
                                           job["input"].get("num_frames", 100) / job["input"].get("fps", 8)),
    "infinitetalk": lambda job: _talking_head(job["input"], "image", "audio", 2.0),
    "omniavatar": lambda job: _talking_head(job["input"], "image", "audio", 2.0),
}


class ThreadedApp:
    """An ASGI app served by uvicorn on a free loopback port, in a thread, as a context manager."""

    def serve(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _trickled(response, pause: float) -> StreamingResponse:
    """``response``'s body a byte at a time, ``pause`` seconds apart."""
    async def body():
        import asyncio

        data = b"".join([chunk async for chunk in response.body_iterator])
        for byte in data:
            yield bytes([byte])
            await asyncio.sleep(pause)

    return StreamingResponse(body(), status_code=response.status_code, media_type="application/json")


class RunPodServer(ThreadedApp):
    def __init__(self, api_key: str):
        self.api_key = api_key
        self.faults = Faults()
        self.jobs: dict[str, dict] = {}
        self.cancelled: list[str] = []
        self.requests: list[str] = []
        self.in_progress = 0
        self.max_in_progress = 0
        self._count = threading.Lock()
        app = FastAPI()
        server = self

        @app.middleware("http")
        async def gate(request: Request, call_next):
            server.requests.append(f"{request.method} {request.url.path}")
            if request.headers.get("authorization") != f"Bearer {server.api_key}":
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
            status = server.faults.next_http()
            if status:
                return JSONResponse({"error": f"injected {status}"}, status_code=status)
            if raw := server.faults.next_answer():
                return Response(raw[1], media_type=raw[0])
            if server.faults.drip:
                return _trickled(await call_next(request), server.faults.drip)
            return await call_next(request)

        @app.post("/v2/{endpoint}/run")
        async def run(endpoint: str, request: Request):
            body = await request.json()
            job_id = uuid.uuid4().hex
            server.jobs[job_id] = {"id": job_id, "status": "IN_QUEUE", "endpoint": endpoint}
            threading.Thread(target=server._work, args=(job_id, body.get("input", {})), daemon=True).start()
            return {"id": job_id, "status": "IN_QUEUE"}

        @app.post("/v2/{endpoint}/runsync")
        async def runsync(endpoint: str, request: Request):
            body = await request.json()
            job_id = uuid.uuid4().hex
            server.jobs[job_id] = {"id": job_id, "status": "IN_QUEUE", "endpoint": endpoint}
            await __import__("asyncio").to_thread(server._work, job_id, body.get("input", {}))
            return server._public(job_id)

        @app.get("/v2/{endpoint}/status/{job_id}")
        async def status(endpoint: str, job_id: str):
            if job_id not in server.jobs:
                return JSONResponse({"error": "job not found"}, status_code=404)
            return server._public(job_id)

        @app.post("/v2/{endpoint}/cancel/{job_id}")
        async def cancel(endpoint: str, job_id: str):
            server.cancelled.append(job_id)
            if job_id in server.jobs and server.jobs[job_id]["status"] in ("IN_QUEUE", "IN_PROGRESS"):
                server.jobs[job_id]["status"] = "CANCELLED"
            return {"id": job_id, "status": "CANCELLED"}

        @app.get("/v2/{endpoint}/health")
        async def health(endpoint: str):
            counts: dict[str, int] = {}
            for job in server.jobs.values():
                counts[job["status"]] = counts.get(job["status"], 0) + 1
            return {"jobs": counts, "workers": {"idle": 1, "running": counts.get("IN_PROGRESS", 0)}}

        self.serve(app)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def _public(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        return {k: v for k, v in job.items() if k in ("id", "status", "output", "error")}

    def _work(self, job_id: str, payload: dict) -> None:
        with self._count:
            self.in_progress += 1
            self.max_in_progress = max(self.max_in_progress, self.in_progress)
        try:
            self._run_job(job_id, payload)
        finally:
            with self._count:
                self.in_progress -= 1

    def _run_job(self, job_id: str, payload: dict) -> None:
        job = self.jobs[job_id]
        fault = self.faults.next_job()
        job["status"] = "IN_PROGRESS"
        deadline = time.monotonic() + self.faults.slow
        while time.monotonic() < deadline:
            if job["status"] == "CANCELLED":
                return
            time.sleep(0.05)
        if job["status"] == "CANCELLED":
            return
        if fault == "fail":
            job.update(status="FAILED", error="CUDA out of memory (injected)")
            return
        if fault == "none":
            job.update(status="COMPLETED", output=None)
            return
        if fault.startswith("answer:"):      # a hostile answer: this JSON as the output
            job.update(status="COMPLETED", output=json.loads(fault.removeprefix("answer:")))
            return
        if fault.startswith("error:"):       # a FAILED job with this error text
            job.update(status="FAILED", error=fault.removeprefix("error:"))
            return
        output = FAMILY_HANDLERS[job["endpoint"]]({"id": job_id, "input": payload})
        if output.get("error"):
            job.update(status="FAILED", error=output["error"])
            return
        if fault == "mute":                  # the video without its sound
            key = "video_base64" if "video_base64" in output else None
            with tempfile.TemporaryDirectory() as tmp:
                src, dst = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
                src.write_bytes(base64.b64decode(output[key] if key else output["data"][0]["b64_json"]))
                from media import ffmpeg
                ffmpeg.run(["-i", str(src), "-map", "0:v", "-c", "copy", str(dst)])
                muted = base64.b64encode(dst.read_bytes()).decode()
            if key:
                output[key] = muted
            else:
                output["data"][0]["b64_json"] = muted
        if fault == "truncate":
            key = "video_base64" if "video_base64" in output else None
            raw = base64.b64decode(output[key] if key else output["data"][0]["b64_json"])
            cut = base64.b64encode(raw[: len(raw) // 3]).decode()
            if key:
                output[key] = cut
            else:
                output["data"][0]["b64_json"] = cut
        job.update(status="COMPLETED", output=output)



class SpaceServer(ThreadedApp):
    """A gradio app with the Ovi Space's signature, answering with animatic clips (5 s, 576x896)."""

    def __init__(self):
        import gradio as gr

        self.faults = Faults()
        self.calls: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="space-"))
        server = self

        def generate_scene(text_prompt: str, sample_steps: int, image: str | None):
            server.calls.append(text_prompt)
            fault = server.faults.next_job()
            if server.faults.slow:
                time.sleep(server.faults.slow)
            if fault == "quota":
                raise gr.Error("You have exceeded your GPU quota (60s requested vs. 0s left). "
                               "Create a free account to get more usage quota. Retry in 0:00:03")
            if fault == "fail":
                raise gr.Error("CUDA error: an illegal memory access was encountered")
            if fault == "none":
                return None
            request = ClipRequest(scene_id=uuid.uuid4().hex[:8], prompt=text_prompt, image=image,
                                  width=576, height=896, fps=24, duration=5.0, seed=int(sample_steps))
            clip = AnimaticEngine().generate(request, server.tmp / request.scene_id)
            if fault == "truncate":
                data = Path(clip.path).read_bytes()
                Path(clip.path).write_bytes(data[: len(data) // 3])
            return clip.path

        def generate_scene_seeded(text_prompt: str, sample_steps: int, image: str | None, seed: float):
            return generate_scene(text_prompt, sample_steps, image)

        with gr.Blocks(analytics_enabled=False) as demo:
            prompt = gr.Textbox(label="text_prompt")
            steps = gr.Slider(10, 100, value=40, step=1, label="sample_steps")
            image = gr.Image(type="filepath", label="image")
            video = gr.Video(label="video")
            gr.Button("Generate").click(generate_scene, [prompt, steps, image], video, api_name="generate_scene")
            seed = gr.Number(label="seed")             # the same endpoint, grown a required argument
            gr.Button("Seeded").click(generate_scene_seeded, [prompt, steps, image, seed], video,
                                      api_name="generate_scene_seeded")
        demo.queue(default_concurrency_limit=4)

        app = FastAPI()

        @app.middleware("http")
        async def gate(request: Request, call_next):
            if "/queue/join" in request.url.path or "/call/" in request.url.path:
                status = server.faults.next_http()
                if status:
                    return JSONResponse({"error": f"injected {status}"}, status_code=status)
            return await call_next(request)

        self.serve(gr.mount_gradio_app(app, demo, path="", allowed_paths=[str(self.tmp)]))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

