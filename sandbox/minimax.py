"""MiniMax's API: Hailuo video and image-01 under ``/minimax/v1/...``, files under ``/minimax/files/...`` (standing
in for MiniMax's CDN, video-product.cdn.minimax.io).

MiniMax publishes no official Python SDK on PyPI (its own ``minimax-mcp`` server calls the REST API with
``requests``); this follows the REST reference (platform.minimax.io docs: video generation, query, file retrieve,
image generation, error codes), as quoted in public integrations:

* ``Authorization: Bearer <key>``; every JSON reply carries ``base_resp: {status_code, status_msg}`` and most errors
  are HTTP 200 with a non-zero ``status_code``: 1002 rate limited (RPM), 1004 authentication failed, 1008
  insufficient balance, 1013 internal error, 1026 input sensitive, 1027 output sensitive, 2013 invalid parameters,
  2049 invalid API key;
* ``POST /v1/video_generation`` ``{model: MiniMax-Hailuo-02 | MiniMax-Hailuo-2.3 | MiniMax-Hailuo-2.3-Fast, prompt
  (<= 2000 chars), duration 6 | 10, resolution 768P | 1080P (1080P: 6 s only), first_frame_image (URL or data URL;
  Required for 2.3-Fast), prompt_optimizer}`` -> ``{task_id, base_resp}``;
* ``GET /v1/query/video_generation?task_id=`` -> ``{task_id, status: Preparing | Queueing | Processing | Success |
  Fail, file_id, video_width, video_height, base_resp}``;
* ``GET /v1/files/retrieve?file_id=`` -> ``{file: {file_id, bytes, created_at, filename, purpose, download_url},
  base_resp}``: the video is three calls away from the submit;
* ``POST /v1/image_generation`` ``{model: image-01, prompt (<= 1500 chars), aspect_ratio (1:1 1024x1024, 16:9
  1280x720, 4:3 1152x864, 3:2 1248x832, 2:3 832x1248, 3:4 864x1152, 9:16 720x1280, 21:9 1344x576) or width +
  height (512-2048, multiples of 8; aspect_ratio wins when both are sent), n 1-9, seed, response_format url |
  base64, prompt_optimizer}`` -> ``{id, data: {image_urls | image_base64}, metadata: {failed_count, success_count},
  base_resp}``.

Hailuo 768P frames are 1366x768 and 1080P 1920x1080 for text to video (UNVERIFIED: read from query replies' video_width /
video_height quoted in public integrations).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import faults, jobs, render, video
from .jobs import Job
from .state import JSON_BODY, get_state, serve_file

PREFIX = "/minimax"
JOB_PROTOCOL = "minimax-video"
IMAGE_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "16:9": (1280, 720), "4:3": (1152, 864), "3:2": (1248, 832), "2:3": (832, 1248),
    "3:4": (864, 1152), "9:16": (720, 1280), "21:9": (1344, 576)}
MAX_IMAGE_PROMPT = 1500
MAX_VIDEO_PROMPT = 2000
FRAMES = {"768P": (1366, 768), "1080P": (1920, 1080)}
# model -> needs a first frame
VIDEO_MODELS = {"MiniMax-Hailuo-02": False, "MiniMax-Hailuo-2.3": False, "MiniMax-Hailuo-2.3-Fast": True}
CODES: dict[str, tuple[int, str]] = {
    "429": (1002, "rate limit exceeded(RPM)"),
    "500": (1013, "internal service error"),
    "prompt-blocked": (1026, "input new_sensitive"),
    "safety": (1027, "output new_sensitive"),
    "fail": (1000, "unknown error"),
}


class MiniMaxError(Exception):
    """An error as MiniMax answers most of them: HTTP 200, a non-zero base_resp.status_code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def response(self) -> web.Response:
        return web.json_response({"base_resp": {"status_code": self.code, "status_msg": self.message}})


def _ok() -> dict[str, Any]:
    return {"status_code": 0, "status_msg": "success"}


def _check_auth(request: web.Request) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MiniMaxError(1004, "login fail: Please carry the API secret key in the 'Authorization' field of the "
                           "request header")
    if token.startswith("bad"):
        raise MiniMaxError(2049, "invalid api key")


def _body(request: web.Request) -> dict[str, Any]:
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        raise MiniMaxError(2013, "invalid params, the body is not a JSON object")
    return body


def _image_ref(value: Any, field: str) -> None:
    if not isinstance(value, str) or not value.startswith(("https://", "http://", "data:image/")):
        raise MiniMaxError(2013, f"invalid params, {field} must be a URL or a base64 data URL")
    if value.startswith("data:"):
        try:
            render.image_size(base64.b64decode(value.partition(",")[2], validate=True))
        except (binascii.Error, ValueError):
            raise MiniMaxError(2013, f"invalid params, {field} is not a decodable image") from None


def _http_fault(request: web.Request, kind: str | None) -> web.Response | None:
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"base_resp": _ok()})
    if kind == "503":
        return web.json_response({"base_resp": {"status_code": 1013, "status_msg": "service unavailable"}}, status=503)
    if kind in ("429", "500", "prompt-blocked"):
        code, message = CODES[kind]
        return MiniMaxError(code, message).response()
    return None


def image_size(body: dict[str, Any]) -> tuple[int, int]:
    ratio = body.get("aspect_ratio")
    if ratio is not None:
        if ratio not in IMAGE_RATIOS:
            raise MiniMaxError(2013, f"invalid params, aspect_ratio must be one of {', '.join(IMAGE_RATIOS)}")
        return IMAGE_RATIOS[ratio]
    w, h = body.get("width"), body.get("height")
    if w is None and h is None:
        return IMAGE_RATIOS["1:1"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 512 <= v <= 2048 and v % 8 == 0 for v in (w, h)):
        raise MiniMaxError(2013, "invalid params, width and height must be set together, 512 to 2048, multiples of 8")
    return int(w), int(h)   # type: ignore[arg-type]


async def image_generation(request: web.Request) -> web.Response:
    try:
        _check_auth(request)
        body = _body(request)
        if body.get("model") not in ("image-01", "image-01-live"):
            raise MiniMaxError(2013, "invalid params, model not supported")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_IMAGE_PROMPT:
            raise MiniMaxError(2013, f"invalid params, prompt must be 1 to {MAX_IMAGE_PROMPT} characters")
        kind = await faults.resolve(get_state(request), "minimax", prompt, faults.COMMON_KINDS)
        if (early := _http_fault(request, kind)) is not None:
            return early
        width, height = image_size(body)
        n = body.get("n", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 9:
            raise MiniMaxError(2013, "invalid params, n must be 1 to 9")
        fmt = body.get("response_format") or "url"
        if fmt not in ("url", "base64"):
            raise MiniMaxError(2013, "invalid params, response_format must be url or base64")
        for ref in body.get("subject_reference") or []:
            _image_ref(ref.get("image_file") if isinstance(ref, dict) else None, "subject_reference.image_file")
        if kind == "safety":
            raise MiniMaxError(*CODES["safety"])
    except MiniMaxError as err:
        return err.response()
    made = 0 if kind == "noimage" else n
    text = faults.strip_directives(prompt)
    datas = await asyncio.gather(*(render.render_async(width, height, f"{text} #{i + 1}" if made > 1 else text, "jpeg")
                                   for i in range(made)))
    if fmt == "base64":
        data: dict[str, Any] = {"image_base64": [base64.b64encode(d).decode("ascii") for d in datas]}
    else:
        files = get_state(request).files
        data = {"image_urls": [f"{request.scheme}://{request.host}{PREFIX}/files/{files.put(d, 'jpeg', 'image/jpeg')}"
                               for d in datas]}
    return web.json_response({"id": secrets.token_hex(16), "data": data,
                              "metadata": {"failed_count": str(n - made), "success_count": str(made)},
                              "base_resp": _ok()})


@dataclass(frozen=True)
class VideoPlan:
    model: str
    prompt: str
    width: int
    height: int
    seconds: int


def video_plan(body: dict[str, Any]) -> VideoPlan:
    model = body.get("model")
    if model not in VIDEO_MODELS:
        raise MiniMaxError(2013, "invalid params, model not supported")
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str) or len(prompt) > MAX_VIDEO_PROMPT:
        raise MiniMaxError(2013, f"invalid params, prompt must be at most {MAX_VIDEO_PROMPT} characters")
    first = body.get("first_frame_image")
    if first is not None:
        _image_ref(first, "first_frame_image")
    elif VIDEO_MODELS[str(model)]:
        raise MiniMaxError(2013, f"invalid params, {model} needs first_frame_image")
    elif not prompt.strip():
        raise MiniMaxError(2013, "invalid params, prompt is required without first_frame_image")
    duration = body.get("duration") or 6
    resolution = body.get("resolution") or "768P"
    if duration not in (6, 10) or resolution not in FRAMES:
        raise MiniMaxError(2013, "invalid params, duration must be 6 or 10 and resolution 768P or 1080P")
    if resolution == "1080P" and duration != 6:
        raise MiniMaxError(2013, "invalid params, 1080P supports a duration of 6 seconds only")
    width, height = FRAMES[resolution]
    return VideoPlan(str(model), prompt, width, height, int(duration))


async def video_generation(request: web.Request) -> web.Response:
    try:
        _check_auth(request)
        body = _body(request)
        state = get_state(request)
        prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
        kind = await faults.resolve(state, "minimax", prompt, faults.VIDEO_KINDS)
        if (early := _http_fault(request, kind)) is not None:
            return early
        plan = video_plan(body)
    except MiniMaxError as err:
        return err.response()
    job = Job(id=str(10 ** 14 + secrets.randbelow(9 * 10 ** 14)), protocol=JOB_PROTOCOL, model=plan.model, prompt=faults.strip_directives(plan.prompt),
              params={"plan": plan, "file_id": str(10 ** 14 + secrets.randbelow(9 * 10 ** 14))},
              job_ms=jobs.job_duration_ms(state, prompt, video=True), fault=kind)
    state.jobs.put(job.id, job)
    return web.json_response({"task_id": job.id, "base_resp": _ok()})


async def query_video(request: web.Request) -> web.Response:
    try:
        _check_auth(request)
        job = get_state(request).jobs.get(request.query.get("task_id", ""))
        if job is None or job.protocol != JOB_PROTOCOL:
            raise MiniMaxError(2013, "invalid params, task_id not found")
    except MiniMaxError as err:
        return err.response()
    plan: VideoPlan = job.params["plan"]
    phase = job.phase()
    out: dict[str, Any] = {"task_id": job.id}
    if phase == "queued":
        queued_for = time.time() - job.created
        return web.json_response({**out, "status": "Preparing" if queued_for < 0.05 else "Queueing", "base_resp": _ok()})
    if phase == "running":
        return web.json_response({**out, "status": "Processing", "base_resp": _ok()})
    if job.fault in CODES:
        code, message = CODES[job.fault]
        return web.json_response({**out, "status": "Fail", "file_id": "", "base_resp": {"status_code": code, "status_msg": message}})
    return web.json_response({**out, "status": "Success", "file_id": job.params["file_id"], "video_width": plan.width,
                              "video_height": plan.height, "base_resp": _ok()})


async def retrieve_file(request: web.Request) -> web.Response:
    try:
        _check_auth(request)
        file_id = request.query.get("file_id", "")
        job = next((j for j in get_state(request).jobs.values()
                    if j.protocol == JOB_PROTOCOL and j.params.get("file_id") == file_id and j.phase() == "done"
                    and j.fault not in CODES), None)
        if not file_id or job is None:
            raise MiniMaxError(2013, "invalid params, file_id not found")
    except MiniMaxError as err:
        return err.response()
    plan: VideoPlan = job.params["plan"]
    async with job.render_lock:
        if job.outputs is None:
            data = await video.render_mp4_async(plan.width, plan.height, plan.seconds, job.prompt or plan.model)
            job.outputs = (get_state(request).files.put(data, "mp4", video.MIME_MP4, prefix="vid"), len(data))
    name, size = job.outputs
    return web.json_response({"file": {"file_id": int(file_id), "bytes": size, "created_at": int(job.completed_at),
                                       "filename": "output.mp4", "purpose": "video_generation",
                                       "download_url": f"{request.scheme}://{request.host}{PREFIX}/files/{name}"},
                              "base_resp": _ok()})



def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/v1/image_generation", image_generation)
    app.router.add_post(f"{PREFIX}/v1/video_generation", video_generation)
    app.router.add_get(f"{PREFIX}/v1/query/video_generation", query_video)
    app.router.add_get(f"{PREFIX}/v1/files/retrieve", retrieve_file)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)
