"""Luma AI's Dream Machine API under ``/luma/dream-machine/v1`` (files under ``/luma/files/``).

Wire format from lumaai-python (resources/generations/{image,video,generations}.py, types/generation.py):
``POST /generations/image`` ``{model: photon-1 | photon-flash-1, prompt, aspect_ratio, format: jpg | png}`` and
``POST /generations/video`` (or ``POST /generations``) ``{model: ray-2 | ray-flash-2, prompt, aspect_ratio,
duration: "5s" | "9s", resolution: 540p | 720p | 1080p | 4k, loop, keyframes}`` answer 201 with a Generation
``{id, generation_type, state, failure_reason, created_at, assets, model, request}``; ``GET /generations/{id}``
polls it (state queued -> dreaming -> completed | failed; ``assets.image`` / ``assets.video`` once completed);
``DELETE /generations/{id}`` removes it. ``Authorization: Bearer``. UNVERIFIED: the pixel sizes (a 1080p class
for Photon; the tier's height as the short side for Ray), the wording of moderation failures and the
``{"detail": ...}`` error bodies.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from aiohttp import web

from . import faults, jobs, render, video
from .jobs import Job
from .state import JSON_BODY, LOG_ENTRY, get_state, serve_file

PREFIX = "/luma"
API = f"{PREFIX}/dream-machine/v1"
RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")
IMAGE_MODELS = ("photon-1", "photon-flash-1")
VIDEO_MODELS = ("ray-2", "ray-flash-2")
PHOTON_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1536, 1536), "16:9": (1920, 1080), "9:16": (1080, 1920), "4:3": (1440, 1080), "3:4": (1080, 1440),
    "21:9": (2520, 1080), "9:21": (1080, 2520),
}
RAY_HEIGHTS = {"540p": 540, "720p": 720, "1080p": 1080, "4k": 2160}
DURATIONS = {"5s": 5, "9s": 9}
MAX_PROMPT_CHARS = 5000
JOB_FAULTS = frozenset({"safety", "fail", "noimage"})
MODERATION_FAILURE = "Generation failed: the output was flagged by content moderation"


def ray_frame(ratio: str, resolution: str) -> tuple[int, int]:
    """The frame of a Ray video: the tier's height as the short side, the long side by the ratio (even)."""
    short = RAY_HEIGHTS[resolution]
    a, b = (int(x) for x in ratio.split(":"))
    long = int(round(short * max(a, b) / min(a, b) / 2)) * 2
    return (long, short) if a >= b else (short, long)


def _detail(status: int, detail: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_auth(request: web.Request) -> web.Response | None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip() or auth[7:].startswith("bad"):
        return _detail(401, "Invalid API key")
    return None


def _invalid(field: str, message: str) -> web.Response:
    return _detail(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


def _plan(body: dict[str, Any], kind: str) -> dict[str, Any] | web.Response:
    """Validate a create body; the plan holds what the job renders."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        return _invalid("prompt", f"prompt must be 1 to {MAX_PROMPT_CHARS} characters")
    models = IMAGE_MODELS if kind == "image" else VIDEO_MODELS
    model = body.get("model")
    if model not in models:
        return _invalid("model", f"model must be one of {', '.join(models)}")
    ratio = body.get("aspect_ratio", "16:9")
    if ratio not in RATIOS:
        return _invalid("aspect_ratio", f"aspect_ratio must be one of {', '.join(RATIOS)}")
    if kind == "image":
        fmt = body.get("format", "jpg")
        if fmt not in ("jpg", "png"):
            return _invalid("format", "format must be one of jpg, png")
        width, height = PHOTON_SIZES[ratio]
        return {"prompt": prompt, "model": model, "width": width, "height": height, "fmt": render.normalize_format(fmt)}
    keyframes = body.get("keyframes")
    if keyframes is not None:
        frames = keyframes if isinstance(keyframes, dict) else {"": None}
        for name, frame in frames.items():
            ok = name in ("frame0", "frame1") and isinstance(frame, dict) and (
                (frame.get("type") == "image" and isinstance(frame.get("url"), str) and frame["url"])
                or (frame.get("type") == "generation" and isinstance(frame.get("id"), str)))
            if not ok:
                return _invalid("keyframes", "keyframes takes frame0 / frame1, each {type: image, url} or "
                                "{type: generation, id}")
    resolution = body.get("resolution", "720p")
    duration = body.get("duration", "5s")
    if resolution not in RAY_HEIGHTS:
        return _invalid("resolution", "resolution must be one of 540p, 720p, 1080p, 4k")
    if duration not in DURATIONS:
        return _invalid("duration", "duration must be one of 5s, 9s")
    width, height = ray_frame(ratio, resolution)
    if width * height > video.MAX_PIXELS:
        return _invalid("resolution", f"{resolution} is not available at aspect ratio {ratio}")
    return {"prompt": prompt, "model": model, "width": width, "height": height, "seconds": DURATIONS[duration]}


async def _assets(request: web.Request, job: Job) -> dict[str, Any]:
    """Render the job's file once (off the loop) and return the assets object."""
    async with job.render_lock:
        if job.outputs is None:
            plan = job.params["plan"]
            files = get_state(request).files
            if job.fault == "noimage":
                job.outputs = {}
            elif job.params["kind"] == "image":
                data = await render.render_async(plan["width"], plan["height"], plan["prompt"], plan["fmt"])
                name = files.put(data, "jpg" if plan["fmt"] == "jpeg" else plan["fmt"], render.MIME_TYPES[plan["fmt"]])
                job.outputs = {"image": f"{request.scheme}://{request.host}{PREFIX}/files/{name}"}
            else:
                data = await video.render_mp4_async(plan["width"], plan["height"], plan["seconds"], plan["prompt"])
                name = files.put(data, "mp4", video.MIME_MP4, prefix="vid")
                job.outputs = {"video": f"{request.scheme}://{request.host}{PREFIX}/files/{name}",
                               "progress_video": None}
        return dict(job.outputs)


async def generation_json(request: web.Request, job: Job) -> dict[str, Any]:
    """The Generation object as of now."""
    phase = job.phase(time.time())
    state = {"queued": "queued", "running": "dreaming", "cancelled": "failed"}.get(phase, "completed")
    failure = None
    assets: dict[str, Any] | None = None
    if phase == "cancelled":
        failure = "Generation was cancelled"
    elif state == "completed" and job.fault in ("safety", "fail"):
        state = "failed"
        failure = MODERATION_FAILURE if job.fault == "safety" else "Generation failed: internal error"
    elif state == "completed":
        assets = await _assets(request, job)
    return {"id": job.id, "generation_type": job.params["kind"], "state": state, "failure_reason": failure,
            "created_at": _iso(job.created), "assets": assets, "model": job.model, "request": job.params["request"]}


async def _create(request: web.Request, kind: str) -> web.Response:
    denied = _check_auth(request)
    if denied is not None:
        return denied
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        return _detail(400, "Invalid JSON body")
    state = get_state(request)
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
    fault = await faults.resolve(state, "luma", prompt)
    if fault == "drop":
        return faults.drop_connection(request)
    if fault == "malformed":
        return faults.malformed_response({"id": str(uuid.uuid4()), "state": "queued", "assets": None})
    if fault == "429":
        return _detail(429, "Too many requests, please slow down", headers={"Retry-After": "1"})
    if fault in ("500", "503"):
        return _detail(int(fault), "Internal server error" if fault == "500" else "Service temporarily unavailable")
    if fault == "prompt-blocked":
        return _detail(400, "400: Prompt not allowed because it contains a term flagged by moderation")
    plan = _plan(body, kind)
    if isinstance(plan, web.Response):
        return plan
    job = Job(id=str(uuid.uuid4()), protocol="luma", model=plan["model"], prompt=plan["prompt"],
              params={"plan": plan, "kind": kind, "request": {**body, "generation_type": kind}},
              job_ms=jobs.job_duration_ms(state, plan["prompt"], video=kind == "video"), fault=fault)
    state.jobs.put(job.id, job)
    entry = request.get(LOG_ENTRY)
    if entry is not None:
        entry["generation_id"] = job.id
    return web.json_response(await generation_json(request, job), status=201)


async def create_image(request: web.Request) -> web.Response:
    """``POST /luma/dream-machine/v1/generations/image``."""
    return await _create(request, "image")


async def create_video(request: web.Request) -> web.Response:
    """``POST /luma/dream-machine/v1/generations/video`` (and the older ``POST /generations``)."""
    return await _create(request, "video")


def _find(request: web.Request) -> Job | None:
    job = get_state(request).jobs.get(request.match_info["id"])
    return job if isinstance(job, Job) and job.protocol == "luma" else None


async def get_generation(request: web.Request) -> web.Response:
    """``GET /luma/dream-machine/v1/generations/{id}``."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    job = _find(request)
    if job is None:
        return _detail(404, "Generation not found")
    return web.json_response(await generation_json(request, job))


async def delete_generation(request: web.Request) -> web.Response:
    """``DELETE /luma/dream-machine/v1/generations/{id}``: an unfinished job stops."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    job = _find(request)
    if job is None:
        return _detail(404, "Generation not found")
    entry = request.get(LOG_ENTRY)
    if entry is not None:
        entry["cancel"] = job.id
    job.cancel()
    return web.Response(status=204)



def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{API}/generations/image", create_image)
    app.router.add_post(f"{API}/generations/video", create_video)
    app.router.add_post(f"{API}/generations", create_video)
    app.router.add_get(f"{API}/generations/{{id}}", get_generation)
    app.router.add_delete(f"{API}/generations/{{id}}", delete_generation)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)
