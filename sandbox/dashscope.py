"""Alibaba Cloud Model Studio (DashScope) image and video tasks under ``/dashscope/api/v1`` (files under
``/dashscope/files/``, standing in for the signed OSS result URLs).

Wire format from alibabacloud.com/help/en/model-studio/text-to-image-v2-api-reference and dashscope-sdk-python
(client/base_api.py, aigc/image_synthesis.py, aigc/video_synthesis.py):

* ``POST /services/aigc/text2image/image-synthesis`` and ``POST /services/aigc/video-generation/video-synthesis``
  with ``X-DashScope-Async: enable`` (without it: 403 AccessDenied, "current user api does not support synchronous
  calls") and ``{model, input: {prompt, negative_prompt, img_url}, parameters: {size "W*H", n, seed,
  prompt_extend, watermark, duration, resolution}}`` answer ``{request_id, output: {task_id, task_status: PENDING}}``;
* ``GET /tasks/{task_id}`` polls: PENDING -> RUNNING -> SUCCEEDED | FAILED | CANCELED, images in
  ``output.results[].url`` (a withheld image is ``{code, message}`` instead), a video in ``output.video_url``,
  ``usage`` counting what is billed;
* ``POST /tasks/{task_id}/cancel`` cancels a PENDING task only.

Errors are ``{request_id, code, message}``. UNVERIFIED: the exact error wording and the qwen-image size list copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import faults, jobs, render, video
from .fal_video import image_dimensions
from .jobs import Job
from .state import JSON_BODY, LOG_ENTRY, get_state, serve_file

PREFIX = "/dashscope"
API = f"{PREFIX}/api/v1"
MAX_PROMPT_CHARS = 2000
MAX_N = 4
WITHHELD = {"code": "DataInspectionFailed", "message": "Output data may contain inappropriate content."}

Size = tuple[int, int]


@dataclass(frozen=True)
class ImageModel:
    """How one image model takes sizes: a fixed list, per-side limits or a pixel-count range."""

    default: Size
    fixed: tuple[Size, ...] = ()
    side: tuple[int, int] | None = None
    pixels: tuple[int, int] | None = None
    max_n: int = MAX_N
    default_n: int = 4


IMAGE_MODELS: dict[str, ImageModel] = {
    "wan2.5-t2i-preview": ImageModel(default=(1280, 1280), pixels=(768 * 768, 1440 * 1440)),
    "wan2.2-t2i-flash": ImageModel(default=(1024, 1024), side=(512, 1440)),
    "wan2.2-t2i-plus": ImageModel(default=(1024, 1024), side=(512, 1440)),
    "qwen-image": ImageModel(default=(1664, 928), fixed=((1664, 928), (1472, 1140), (1328, 1328), (1140, 1472),
                                                         (928, 1664)), max_n=1, default_n=1),
    "qwen-image-plus": ImageModel(default=(1664, 928), fixed=((1664, 928), (1472, 1140), (1328, 1328), (1140, 1472),
                                                              (928, 1664)), max_n=1, default_n=1),
}
SIZES_480P: tuple[Size, ...] = ((832, 480), (480, 832), (624, 624))
SIZES_720P: tuple[Size, ...] = ((1280, 720), (720, 1280), (960, 960), (1088, 832), (832, 1088))
SIZES_1080P: tuple[Size, ...] = ((1920, 1080), (1080, 1920), (1440, 1440), (1632, 1248), (1248, 1632))
# model -> (sizes by tier, durations, default size)
VIDEO_MODELS: dict[str, tuple[dict[str, tuple[Size, ...]], tuple[int, ...], Size]] = {
    "wan2.5-t2v-preview": ({"480P": SIZES_480P, "720P": SIZES_720P, "1080P": SIZES_1080P}, (5, 10), (1920, 1080)),
    "wan2.2-t2v-plus": ({"480P": SIZES_480P, "1080P": SIZES_1080P}, (5,), (1920, 1080)),
    "wanx2.1-t2v-turbo": ({"480P": SIZES_480P, "720P": SIZES_720P[:3]}, (5,), (1280, 720)),
}
# image-to-video models: the frame follows the input image (img_url) at a resolution tier, no size
I2V_MODELS: dict[str, tuple[dict[str, tuple[Size, ...]], tuple[int, ...], str]] = {
    "wan2.5-i2v-preview": ({"480P": SIZES_480P, "720P": SIZES_720P, "1080P": SIZES_1080P}, (5, 10), "1080P"),
}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"request_id": str(uuid.uuid4()), "code": code, "message": message},
                             status=status, headers=headers)


def _invalid(message: str) -> web.Response:
    return _error(400, "InvalidParameter", message)


def _stamp(at: float | None) -> str | None:
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _check_auth(request: web.Request) -> web.Response | None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip() or auth[7:].startswith("bad"):
        return _error(401, "InvalidApiKey", "Invalid API-key provided.")
    return None


def _size(value: Any, default: Size) -> Size | None:
    if value is None:
        return default
    if not isinstance(value, str):
        return None
    w, sep, h = value.partition("*")
    return (int(w), int(h)) if sep and w.isdigit() and h.isdigit() else None


def _image_plan(model: str, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | web.Response:
    spec = IMAGE_MODELS[model]
    size = _size(params.get("size"), spec.default)
    if size is None:
        return _invalid("parameters.size must be a string like 1024*1024")
    w, h = size
    if spec.fixed and size not in spec.fixed:
        return _invalid(f"The size {w}*{h} is not supported; use one of "
                        + ", ".join(f"{a}*{b}" for a, b in spec.fixed))
    if spec.side and not all(spec.side[0] <= s <= spec.side[1] for s in size):
        return _invalid(f"The width and height of size must each be between {spec.side[0]} and {spec.side[1]}")
    if spec.pixels and not (spec.pixels[0] <= w * h <= spec.pixels[1] and 0.25 <= w / h <= 4):
        return _invalid("size must have between 768*768 and 1440*1440 pixels and an aspect ratio within [1:4, 4:1]")
    n = params.get("n", spec.default_n)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= spec.max_n:
        return _invalid(f"parameters.n must be an integer between 1 and {spec.max_n}")
    return {"kind": "image", "width": w, "height": h, "count": n}


def _i2v_plan(model: str, inputs: dict[str, Any], params: dict[str, Any], lookup: Any) -> dict[str, Any] | web.Response:
    tiers, durations, default_tier = I2V_MODELS[model]
    img = inputs.get("img_url")
    if not isinstance(img, str) or not img:
        return _invalid("input.img_url is required for image-to-video")
    if "size" in params:
        return _invalid("parameters.size is not supported by image-to-video models; use resolution")
    tier = params.get("resolution", default_tier)
    if tier not in tiers:
        return _invalid(f"parameters.resolution must be one of {', '.join(tiers)}")
    seconds = params.get("duration", durations[0])
    if isinstance(seconds, bool) or seconds not in durations:
        return _invalid(f"parameters.duration must be one of {', '.join(str(d) for d in durations)}")
    source = image_dimensions(img, lookup)
    if source is None:
        return _invalid("input.img_url could not be read as an image")
    width, height = min(tiers[tier], key=lambda wh: abs(wh[0] / wh[1] - source[0] / source[1]))
    return {"kind": "video", "width": width, "height": height, "seconds": seconds, "count": 1}


def _video_plan(model: str, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | web.Response:
    tiers, durations, default = VIDEO_MODELS[model]
    resolution = params.get("resolution")
    if resolution is not None and resolution not in tiers:
        return _invalid(f"parameters.resolution must be one of {', '.join(tiers)}")
    size = _size(params.get("size"), tiers[resolution][0] if resolution else default)
    allowed = [s for sizes in tiers.values() for s in sizes]
    if size is None or size not in allowed:
        return _invalid("parameters.size must be one of " + ", ".join(f"{a}*{b}" for a, b in allowed))
    seconds = params.get("duration", durations[0])
    if isinstance(seconds, bool) or seconds not in durations:
        return _invalid(f"parameters.duration must be one of {', '.join(str(d) for d in durations)}")
    return {"kind": "video", "width": size[0], "height": size[1], "seconds": seconds, "count": 1}


async def _outputs(request: web.Request, job: Job) -> dict[str, Any]:
    """Render the task's files once (off the loop) and return the output fields they fill."""
    async with job.render_lock:
        if job.outputs is None:
            plan = job.params["plan"]
            files = get_state(request).files
            base = f"{request.scheme}://{request.host}{PREFIX}/files/"
            prompt = job.prompt
            extended = job.params["prompt_extend"]
            if plan["kind"] == "video":
                data = await video.render_mp4_async(plan["width"], plan["height"], plan["seconds"], prompt)
                job.outputs = {"video_url": base + files.put(data, "mp4", video.MIME_MP4, prefix="vid"),
                               "orig_prompt": prompt, **({"actual_prompt": prompt + ", cinematic"} if extended else {})}
            else:
                count = plan["count"]
                texts = [f"{prompt} #{i + 1}" if count > 1 else prompt for i in range(count)]
                datas = await asyncio.gather(*(render.render_async(plan["width"], plan["height"], t, "png")
                                               for t in texts))
                results: list[dict[str, Any]] = []
                for data in datas:
                    if job.fault == "noimage":
                        results.append(dict(WITHHELD))
                        continue
                    item = {"orig_prompt": prompt, "url": base + files.put(data, "png", "image/png")}
                    if extended:
                        item["actual_prompt"] = prompt + ", highly detailed"
                    results.append(item)
                job.outputs = {"results": results}
        return dict(job.outputs)


async def task_json(request: web.Request, job: Job) -> dict[str, Any]:
    """The task as ``GET /tasks/{id}`` shows it now."""
    phase = job.phase(time.time())
    plan = job.params["plan"]
    status = {"queued": "PENDING", "running": "RUNNING", "cancelled": "CANCELED"}.get(phase, "SUCCEEDED")
    if status == "SUCCEEDED" and job.fault in ("safety", "fail"):
        status = "FAILED"
    output: dict[str, Any] = {"task_id": job.id, "task_status": status, "submit_time": _stamp(job.created)}
    body: dict[str, Any] = {"request_id": str(uuid.uuid4()), "output": output}
    if status != "PENDING":
        output["scheduled_time"] = _stamp(job.started_at)
    if status in ("SUCCEEDED", "FAILED"):
        output["end_time"] = _stamp(job.completed_at)
    if status == "FAILED":
        output.update(WITHHELD if job.fault == "safety" else
                      {"code": "InternalError.Algo", "message": "An internal error occurred during generation."})
    elif status == "SUCCEEDED":
        output.update(await _outputs(request, job))
        if plan["kind"] == "video":
            body["usage"] = {"video_duration": plan["seconds"], "video_ratio": f"{plan['width']}*{plan['height']}",
                             "video_count": 1}
        else:
            made = sum(1 for r in output["results"] if "url" in r)
            output["task_metrics"] = {"TOTAL": plan["count"], "SUCCEEDED": made, "FAILED": plan["count"] - made}
            body["usage"] = {"image_count": made}
    return body


async def _submit(request: web.Request, kind: str) -> web.Response:
    denied = _check_auth(request)
    if denied is not None:
        return denied
    if request.headers.get("X-DashScope-Async", "").lower() != "enable":
        return _error(403, "AccessDenied", "current user api does not support synchronous calls")
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        return _invalid("The request body is not valid JSON.")
    inputs = body.get("input") if isinstance(body.get("input"), dict) else {}
    params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    prompt = inputs.get("prompt") if isinstance(inputs.get("prompt"), str) else ""
    state = get_state(request)
    fault = await faults.resolve(state, "dashscope", prompt)
    if fault == "drop":
        return faults.drop_connection(request)
    if fault == "malformed":
        return faults.malformed_response({"request_id": "x", "output": {"task_id": "x" * 36, "task_status": "PENDING"}})
    if fault == "429":
        return _error(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.",
                      headers={"Retry-After": "1"})
    if fault == "500":
        return _error(500, "InternalError", "An internal error has occured, please try again later.")
    if fault == "503":
        return _error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
    if fault == "prompt-blocked":
        return _error(400, "DataInspectionFailed", "Input data may contain inappropriate content.")
    models = IMAGE_MODELS if kind == "image" else {**VIDEO_MODELS, **I2V_MODELS}
    model = body.get("model")
    if model not in models:
        return _invalid("Model not exist.")
    if not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        return _invalid(f"input.prompt must be 1 to {MAX_PROMPT_CHARS} characters")
    if kind == "video" and "img_url" in inputs and model not in I2V_MODELS:
        return _invalid(f"input.img_url is not supported by {model}; use an image-to-video model")
    if model in I2V_MODELS:
        files = state.files
        plan = _i2v_plan(str(model), inputs, params, lambda name: (files.get(name) or (None, ""))[0])
    else:
        plan = (_image_plan if kind == "image" else _video_plan)(str(model), inputs, params)
    if isinstance(plan, web.Response):
        return plan
    job = Job(id=str(uuid.uuid4()), protocol="dashscope", model=str(model), prompt=prompt,
              params={"plan": plan, "prompt_extend": params.get("prompt_extend", True) is not False},
              job_ms=jobs.job_duration_ms(state, prompt, video=kind == "video"), fault=fault)
    state.jobs.put(job.id, job)
    entry = request.get(LOG_ENTRY)
    if entry is not None:
        entry["task_id"] = job.id
    return web.json_response({"request_id": str(uuid.uuid4()),
                              "output": {"task_id": job.id, "task_status": "PENDING"}})


async def image_synthesis(request: web.Request) -> web.Response:
    """``POST /dashscope/api/v1/services/aigc/text2image/image-synthesis``."""
    return await _submit(request, "image")


async def video_synthesis(request: web.Request) -> web.Response:
    """``POST /dashscope/api/v1/services/aigc/video-generation/video-synthesis``."""
    return await _submit(request, "video")


def _find(request: web.Request) -> Job | None:
    job = get_state(request).jobs.get(request.match_info["task_id"])
    return job if isinstance(job, Job) and job.protocol == "dashscope" else None


async def get_task(request: web.Request) -> web.Response:
    """``GET /dashscope/api/v1/tasks/{task_id}``."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    job = _find(request)
    if job is None:
        return web.json_response({"request_id": str(uuid.uuid4()),
                                  "output": {"task_id": request.match_info["task_id"], "task_status": "UNKNOWN"}})
    return web.json_response(await task_json(request, job))


async def cancel_task(request: web.Request) -> web.Response:
    """``POST /dashscope/api/v1/tasks/{task_id}/cancel``: PENDING tasks only."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    job = _find(request)
    entry = request.get(LOG_ENTRY)
    if entry is not None and job is not None:
        entry["cancel"] = job.id
    if job is None or job.phase() != "queued":
        return _error(400, "UnsupportedOperation",
                      "Failed to cancel the task, please confirm if the task is in PENDING status.")
    job.cancel()
    return web.json_response({"request_id": str(uuid.uuid4())})



def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{API}/services/aigc/text2image/image-synthesis", image_synthesis)
    app.router.add_post(f"{API}/services/aigc/video-generation/video-synthesis", video_synthesis)
    app.router.add_get(f"{API}/tasks/{{task_id}}", get_task)
    app.router.add_post(f"{API}/tasks/{{task_id}}/cancel", cancel_task)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)


def accepts_image_size(model: str, width: int, height: int) -> bool:
    """Whether this simulator's ``model`` takes ``width*height`` (for agreement tests with the model files)."""
    return not isinstance(_image_plan(model, {}, {"size": f"{width}*{height}", "n": 1}), web.Response)
