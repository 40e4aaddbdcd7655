"""BytePlus ModelArk (ByteDance): Seedream images and Seedance video tasks under ``/byteplus/api/v3/...``, output
files under ``/byteplus/files/...`` (standing in for ModelArk's object storage hosts).

Wire details follow the official ``byteplus-python-sdk-v2`` (``byteplussdkarkruntime``: ``_constants.py`` base
``https://ark.ap-southeast.bytepluses.com/api/v3``, ``resources/images/images.py``,
``resources/content_generation/tasks.py``, ``types/images/images.py``,
``types/content_generation/content_generation_task.py``) and docs.byteplus.com ModelArk (image generation API,
video generation API, error codes 1299023):

* ``Authorization: Bearer <ARK_API_KEY>``;
* ``POST /images/generations`` ``{model, prompt, image?, size, seed?, sequential_image_generation?,
  sequential_image_generation_options?: {max_images}, response_format: url | b64_json (default url), watermark
  (default true)}``; ``size`` is a tier ("1K" 4.0 only, "2K", "4K": the model picks the ratio, here 1:1) or
  "WxH" within the model's pixel range (seedream 4.0: 1280x720 to 4096x4096 pixels; 4.5: 2560x1440 to 4096x4096;
  ratio 1/16 to 16). Answers ``{model, created, data: [{url | b64_json, size}], usage: {generated_images,
  output_tokens, total_tokens}}``;
* ``POST /contents/generations/tasks`` ``{model, content: [{type: text, text}, {type: image_url, image_url: {url},
  role: first_frame}], ratio, resolution, duration, seed, watermark, camera_fixed}`` -> ``{"id"}``;
  ``GET /contents/generations/tasks/{id}``: ``queued`` -> ``running`` -> ``succeeded`` (``content.video_url``) |
  ``failed`` (``error: {code, message}``) | ``cancelled``; ``DELETE`` cancels a queued task or deletes a finished
  one (a running task cannot be cancelled: 409, UNVERIFIED);
* errors ``{"error": {"code", "message", "param", "type"}}``: 400 InvalidParameter / MissingParameter /
  InputTextSensitiveContentDetected / OutputImageSensitiveContentDetected, 401 AuthenticationError, 404
  InvalidEndpointOrModel.NotFound, 429 RateLimitExceeded.EndpointRPMExceeded, 500 InternalServiceError,
  503 ServerOverloaded.

Seedance frames per resolution and ratio are the table the video API documents (1080p 16:9 is 1920x1088).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import faults, jobs, render, video
from .jobs import Job
from .state import JSON_BODY, get_state

PREFIX = "/byteplus"
API = f"{PREFIX}/api/v3"
JOB_PROTOCOL = "byteplus-video"
MAX_IMAGES = 15
# model -> (tiers it takes, min pixels, max pixels)
SEEDREAM: dict[str, tuple[tuple[str, ...], int, int]] = {
    "seedream-4-0-250828": (("1K", "2K", "4K"), 1280 * 720, 4096 * 4096),
    "seedream-4-5-251128": (("2K", "4K"), 2560 * 1440, 4096 * 4096),
}
TIER_SIDE = {"1K": 1024, "2K": 2048, "4K": 4096}
FRAMES: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {"16:9": (864, 480), "4:3": (736, 544), "1:1": (640, 640), "3:4": (544, 736), "9:16": (480, 864),
             "21:9": (960, 416)},
    "720p": {"16:9": (1248, 704), "4:3": (1120, 832), "1:1": (960, 960), "3:4": (832, 1120), "9:16": (704, 1248),
             "21:9": (1504, 640)},
    "1080p": {"16:9": (1920, 1088), "4:3": (1664, 1248), "1:1": (1440, 1440), "3:4": (1248, 1664),
              "9:16": (1088, 1920), "21:9": (2176, 928)},
}
# model -> (default resolution, takes a first frame, takes text only)
SEEDANCE: dict[str, tuple[str, bool, bool]] = {
    "seedance-1-0-pro-250528": ("1080p", True, True),
    "seedance-1-0-pro-fast-251015": ("1080p", True, True),
    "seedance-1-0-lite-t2v-250428": ("720p", False, True),
    "seedance-1-0-lite-i2v-250428": ("720p", True, False),
}
DURATIONS = range(2, 13)
FPS = 24
_WXH = re.compile(r"^(\d{2,5})x(\d{2,5})$")


class ArkError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param

    def response(self) -> web.Response:
        kind = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 409: "Conflict", 429: "TooManyRequests",
                500: "InternalServiceError", 503: "ServiceUnavailable"}.get(self.status, "Error")
        rid = uuid.uuid4().hex[:20]
        return web.json_response({"error": {"code": self.code, "message": f"{self.message} Request id: {rid}",
                                            "param": self.param, "type": kind}}, status=self.status)


def _invalid(param: str, message: str) -> ArkError:
    return ArkError(400, "InvalidParameter", f"The parameter `{param}` specified in the request is not valid: {message}.",
                    param)


def _check_auth(request: web.Request) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or token.startswith("bad"):
        raise ArkError(401, "AuthenticationError", "The API key in the request is missing or invalid.")


def _body(request: web.Request) -> dict[str, Any]:
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        raise ArkError(400, "InvalidParameter", "The request body is not valid JSON.")
    return body


def _fault_response(request: web.Request, kind: str | None) -> web.Response | None:
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"model": "x", "created": int(time.time()), "data": []})
    if kind == "429":
        return ArkError(429, "RateLimitExceeded.EndpointRPMExceeded",
                        "The Requests Per Minute (RPM) limit of the associated endpoint for your account has been exceeded.").response()
    if kind == "500":
        return ArkError(500, "InternalServiceError", "The service encountered an unexpected internal error.").response()
    if kind == "503":
        return ArkError(503, "ServerOverloaded", "The service is currently unable to handle additional requests due to server overload.").response()
    if kind == "prompt-blocked":
        return ArkError(400, "InputTextSensitiveContentDetected",
                        "The request failed because the input text may contain sensitive information.").response()
    return None


def _image_input(value: Any) -> int:
    """Reference images: one or a list of https or base64 data URLs (not fetched here); how many."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str) or not item.startswith(("https://", "data:image/")):
            raise _invalid("image", "an image must be an https URL or a base64 data URL")
        if item.startswith("data:"):
            try:
                render.image_size(base64.b64decode(item.partition(",")[2], validate=True))
            except (binascii.Error, ValueError):
                raise _invalid("image", "the data URL is not a decodable image") from None
    if len(items) > 14:
        raise _invalid("image", "at most 14 reference images")
    return len(items)


def image_size(model: str, size: Any) -> tuple[int, int]:
    """The pixel size a ``size`` value makes on ``model`` (raises ArkError)."""
    tiers, low, high = SEEDREAM[model]
    if size is None:
        size = "2K"
    if isinstance(size, str) and size.upper() in TIER_SIDE:
        if size.upper() not in tiers:
            raise _invalid("size", f"{size} is not supported by {model}")
        side = TIER_SIDE[size.upper()]
        return side, side
    m = _WXH.match(str(size))
    if not m:
        raise _invalid("size", "expected one of the tiers or WIDTHxHEIGHT")
    w, h = int(m.group(1)), int(m.group(2))
    if not low <= w * h <= high or not 1 / 16 <= w / h <= 16:
        raise _invalid("size", f"the total pixels must be within [{low}, {high}] and the ratio within [1/16, 16]")
    return w, h


async def images_generations(request: web.Request) -> web.Response:
    try:
        _check_auth(request)
        body = _body(request)
        model = body.get("model")
        if model not in SEEDREAM:
            raise ArkError(404, "InvalidEndpointOrModel.NotFound", f"The model or endpoint {model} does not exist or "
                           "you do not have access to it.")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ArkError(400, "MissingParameter", "The request failed because it is missing `prompt`.", "prompt")
        kind = await faults.resolve(get_state(request), "byteplus", prompt, faults.COMMON_KINDS)
        if (early := _fault_response(request, kind)) is not None:
            return early
        width, height = image_size(str(model), body.get("size"))
        if body.get("image") is not None:
            _image_input(body["image"])
        fmt = body.get("response_format") or "url"   # the SDK sends null for what is not given
        if fmt not in ("url", "b64_json"):
            raise _invalid("response_format", "expected url or b64_json")
        count = 1
        if body.get("sequential_image_generation") == "auto":
            options = body.get("sequential_image_generation_options") or {}
            count = int(options.get("max_images", MAX_IMAGES))
            if not 1 <= count <= MAX_IMAGES:
                raise _invalid("sequential_image_generation_options.max_images", f"expected 1 to {MAX_IMAGES}")
        if kind == "safety":
            raise ArkError(400, "OutputImageSensitiveContentDetected",
                           "The request failed because the output image may contain sensitive information.")
    except ArkError as err:
        return err.response()
    if kind == "noimage":
        count = 0
    text = faults.strip_directives(prompt)
    datas = await asyncio.gather(*(render.render_async(width, height, f"{text} #{i + 1}" if count > 1 else text, "jpeg")
                                   for i in range(count)))
    data: list[dict[str, Any]] = []
    for blob in datas:
        if fmt == "b64_json":
            data.append({"b64_json": base64.b64encode(blob).decode("ascii"), "size": f"{width}x{height}"})
        else:
            name = get_state(request).files.put(blob, "jpeg", render.MIME_TYPES["jpeg"])
            data.append({"url": f"{request.scheme}://{request.host}{PREFIX}/files/{name}", "size": f"{width}x{height}"})
    tokens = count * width * height // 256
    return web.json_response({"model": model, "created": int(time.time()), "data": data,
                              "usage": {"generated_images": count, "output_tokens": tokens, "total_tokens": tokens}})


@dataclass(frozen=True)
class VideoPlan:
    model: str
    prompt: str
    width: int
    height: int
    seconds: int
    resolution: str
    ratio: str


def video_plan(body: dict[str, Any]) -> VideoPlan:
    model = body.get("model")
    if model not in SEEDANCE:
        raise ArkError(404, "InvalidEndpointOrModel.NotFound", f"The model or endpoint {model} does not exist or you do "
                       "not have access to it.")
    default_res, takes_image, takes_text_only = SEEDANCE[str(model)]
    content = body.get("content")
    if not isinstance(content, list) or not content:
        raise ArkError(400, "MissingParameter", "The request failed because it is missing `content`.", "content")
    text = " ".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")
    frames = [c for c in content if isinstance(c, dict) and c.get("type") == "image_url"]
    for c in frames:
        _image_input((c.get("image_url") or {}).get("url"))
    if frames and not takes_image:
        raise _invalid("content", f"{model} does not take images")
    if not frames and not takes_text_only:
        raise _invalid("content", f"{model} needs a first_frame image")
    resolution = body.get("resolution") or default_res
    if resolution not in FRAMES:
        raise _invalid("resolution", "expected 480p, 720p or 1080p")
    ratio = body.get("ratio") or ("adaptive" if frames else "16:9")
    if ratio == "adaptive":
        ratio = "16:9"   # the first frame's ratio in the real service; the simulator does not look
    if ratio not in FRAMES[resolution]:
        raise _invalid("ratio", "expected 16:9, 4:3, 1:1, 3:4, 9:16, 21:9 or adaptive")
    duration = 5 if body.get("duration") is None else body["duration"]
    if isinstance(duration, bool) or duration not in DURATIONS:
        raise _invalid("duration", "expected an integer from 2 to 12")
    width, height = FRAMES[resolution][ratio]
    return VideoPlan(str(model), text, width, height, int(duration), resolution, ratio)


async def create_task(request: web.Request) -> web.Response:
    try:
        _check_auth(request)
        body = _body(request)
        plan = video_plan(body)
        state = get_state(request)
        kind = await faults.resolve(state, "byteplus", plan.prompt, faults.VIDEO_KINDS)
        if (early := _fault_response(request, kind)) is not None:
            return early
    except ArkError as err:
        return err.response()
    job = Job(id=f"cgt-{time.strftime('%Y%m%d%H%M%S')}-{jobs.new_id(5)}", protocol=JOB_PROTOCOL, model=plan.model,
              prompt=faults.strip_directives(plan.prompt), params={"plan": plan, "seed": 11},
              job_ms=jobs.job_duration_ms(state, plan.prompt, video=True), fault=kind)
    state.jobs.put(job.id, job)
    return web.json_response({"id": job.id})


def _find(request: web.Request) -> Job:
    job = get_state(request).jobs.get(request.match_info["id"])
    if job is None or job.protocol != JOB_PROTOCOL:
        raise ArkError(404, "NotFound.TaskId", f"The specified task {request.match_info['id']} is not found.")
    return job


async def task_json(request: web.Request, job: Job) -> dict[str, Any]:
    plan: VideoPlan = job.params["plan"]
    phase = job.phase()
    status = {"queued": "queued", "running": "running", "cancelled": "cancelled"}.get(phase, "succeeded")
    out: dict[str, Any] = {"id": job.id, "model": plan.model, "status": status, "created_at": int(job.created),
                           "updated_at": int(time.time()), "seed": job.params["seed"], "resolution": plan.resolution,
                           "ratio": plan.ratio, "duration": plan.seconds, "framespersecond": FPS, "error": None}
    if status != "succeeded":
        return out
    if job.fault in ("safety", "fail"):
        code, message = (("OutputVideoSensitiveContentDetected", "The request failed because the output video may "
                          "contain sensitive information.") if job.fault == "safety"
                         else ("InternalServiceError", "The service encountered an unexpected internal error."))
        return {**out, "status": "failed", "error": {"code": code, "message": message}}
    async with job.render_lock:
        if job.outputs is None:
            data = await video.render_mp4_async(plan.width, plan.height, plan.seconds, job.prompt)
            name = get_state(request).files.put(data, "mp4", video.MIME_MP4, prefix="vid")
            job.outputs = f"{request.scheme}://{request.host}{PREFIX}/files/{name}"
    tokens = plan.width * plan.height * FPS * plan.seconds // 1024
    return {**out, "content": {"video_url": job.outputs}, "usage": {"completion_tokens": tokens, "total_tokens": tokens}}


async def get_task(request: web.Request) -> web.Response:
    try:
        _check_auth(request)
        return web.json_response(await task_json(request, _find(request)))
    except ArkError as err:
        return err.response()


async def delete_task(request: web.Request) -> web.Response:
    try:
        _check_auth(request)
        job = _find(request)
        if job.phase() == "running":
            raise ArkError(409, "OperationDenied.TaskRunning", "A running task cannot be cancelled.")
    except ArkError as err:
        return err.response()
    if job.phase() == "queued":
        job.cancel()
    else:
        get_state(request).jobs.pop(job.id)
    return web.json_response({})


async def serve_file(request: web.Request) -> web.Response:
    found = get_state(request).files.get(request.match_info["name"])
    if found is None:
        return web.Response(status=404, text="NoSuchKey")
    data, content_type = found
    return web.Response(body=data, content_type=content_type)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{API}/images/generations", images_generations)
    app.router.add_post(f"{API}/contents/generations/tasks", create_task)
    app.router.add_get(f"{API}/contents/generations/tasks/{{id}}", get_task)
    app.router.add_delete(f"{API}/contents/generations/tasks/{{id}}", delete_task)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)
