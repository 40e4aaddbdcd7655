"""xAI (Grok Imagine) media protocol: ``/xai/v1/images/generations`` and ``/xai/v1/videos/...``.

Wire details (REST; the official ``xai-sdk`` speaks gRPC to ``api.x.ai:443`` and cannot be pointed at a plain
HTTP simulator, so these follow the REST reference):

* ``POST /v1/images/generations`` JSON ``{model, prompt, n 1-10, response_format url|b64_json (default url),
  aspect_ratio (1:1, 3:4, 4:3, 9:16, 16:9, 2:3, 3:2, 9:19.5, 19.5:9, 9:20, 20:9, 1:2, 2:1, auto), resolution 1k|2k
  (default 1k)}`` -> ``{"data": [{"url" | "b64_json", "mime_type", "revised_prompt"}]}``; images are JPEG.
  source: docs.x.ai/developers/model-capabilities/images/generation; docs.comfy.org (xai/grok-imagine-image schema:
  ratios, 1k/2k, n 1-10); runware.ai/docs/models/xai-grok-imagine-image (the 1K pixel sizes per ratio; third-party)
* ``POST /v1/videos/generations`` JSON ``{model, prompt, duration 1-15, aspect_ratio, resolution 480p|720p,
  image: {url}}`` -> ``{"request_id"}``; ``GET /v1/videos/{request_id}`` -> 200 with ``status`` pending | done |
  failed | expired, ``video: {url, duration, respect_moderation}``, ``model``, ``error: {code, message}``.
  source: docs.x.ai/developers/model-capabilities/video/generation; withone.ai/knowledge/x-ai (the deferred result
  bodies, done and failed, both HTTP 200); apidog.com/blog/grok-text-to-video-api (durations 1-15, 480p/720p)
* ``POST /v1/images/edits`` JSON (not multipart: "the OpenAI SDK's images.edit() is not supported") with
  ``image: {url, type: "image_url"}`` (a public URL or a data URI), or ``images: [...]`` for up to 3 references;
  one source image sets the output's aspect ratio (the nearest of the table), several follow ``aspect_ratio``.
  source: docs.x.ai/developers/model-capabilities/images/editing; docs.x.ai/developers/model-capabilities/images
  (up to 3 reference images). The ``images`` list spelling is UNVERIFIED.
* errors: ``{"code": "<kind>", "error": "<message>"}`` (400 invalid argument, 401/403 bad key, 429 rate limit).
  The 2K sizes (twice the 1K edges) and the 480p video frames are UNVERIFIED.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from aiohttp import web

from . import faults, jobs, render, video
from .jobs import Job
from .state import JSON_BODY, get_state

PREFIX = "/xai"
PROTOCOL = "xai"
JOB_PROTOCOL = "xai-video"
IMAGE_MODELS = ("grok-imagine-image", "grok-imagine-image-quality")
VIDEO_MODELS = ("grok-imagine-video",)
SIZES_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "3:4": (896, 1280), "4:3": (1280, 896), "9:16": (768, 1408), "16:9": (1408, 768),
    "2:3": (864, 1296), "3:2": (1296, 864), "9:19.5": (576, 1248), "19.5:9": (1248, 576), "9:20": (576, 1280),
    "20:9": (1280, 576), "1:2": (704, 1408), "2:1": (1408, 704),
}
VIDEO_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3")
VIDEO_HEIGHT = {"480p": 480, "720p": 720}
MAX_N, MAX_SECONDS = 10, 15


class XAIError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.body, self.headers = status, {"code": code, "error": message}, headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


def image_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    w, h = SIZES_1K[aspect_ratio]
    return (w * 2, h * 2) if resolution == "2k" else (w, h)


def video_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """The frame: the short edge is the tier's height, the long one follows the ratio (even, as codecs need)."""
    a, b = (float(x) for x in aspect_ratio.split(":"))
    short = VIDEO_HEIGHT[resolution]
    long_edge = int(round(short * max(a, b) / min(a, b) / 2)) * 2
    return (long_edge, short) if a >= b else (short, long_edge)


def _auth(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not key:
        raise XAIError(401, "Unauthenticated", "No API key provided. Specify your API key in an Authorization header "
                       "using Bearer auth.")
    if key.startswith("bad"):
        raise XAIError(400, "Client specified an invalid argument", "Incorrect API key provided: ***. You can obtain "
                       "an API key from https://console.x.ai.")


def _body(request: web.Request) -> dict[str, Any]:
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        raise XAIError(422, "Unprocessable Entity", "Failed to deserialize the JSON body into the target type.")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise XAIError(400, "Client specified an invalid argument", "prompt must not be empty")
    return body


def _enum(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value not in allowed:
        raise XAIError(400, "Client specified an invalid argument", f"Invalid {name} '{value}'. Supported: "
                       f"{', '.join(allowed)}")
    return str(value)


def _server_fault(kind: str) -> None:
    if kind == "429":
        raise XAIError(429, "Too Many Requests", "Your team has exceeded its rate limit for image generation. "
                       "Please retry later.", {"retry-after": "2"})
    if kind in ("500", "503"):
        raise XAIError(int(kind), "Internal error" if kind == "500" else "Service Unavailable",
                       "The service is temporarily unable to process the request.")


async def images(request: web.Request) -> web.Response:
    """``POST /xai/v1/images/generations``."""
    try:
        _auth(request)
        body = _body(request)
        model = body.get("model", IMAGE_MODELS[0])
        if model not in IMAGE_MODELS:
            raise XAIError(404, "Some requested entity was not found", f"The model {model} does not exist or your "
                           "team does not have access to it.")
        kind = await faults.resolve(get_state(request), PROTOCOL, body["prompt"], faults.COMMON_KINDS)
        if kind == "drop":
            return faults.drop_connection(request)
        if kind == "malformed":
            return faults.malformed_response({"data": [{"b64_json": "/9j/4AAQ" * 8}]})
        if kind == "noimage":
            return web.json_response({"data": []})
        if kind in ("safety", "prompt-blocked"):
            raise XAIError(400, "Client specified an invalid argument", "Generated image rejected by content "
                           "moderation.")
        if kind is not None:
            _server_fault(kind)
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
            raise XAIError(400, "Client specified an invalid argument", f"n must be between 1 and {MAX_N}")
        ratio = _enum(body, "aspect_ratio", (*SIZES_1K, "auto"), "auto")
        resolution = _enum(body, "resolution", ("1k", "2k"), "1k")
        fmt = _enum(body, "response_format", ("url", "b64_json"), "url")
        w, h = image_size("1:1" if ratio == "auto" else ratio, resolution)
        data = await render.render_async(w, h, body["prompt"], "jpeg", None, False)
        items: list[dict[str, Any]] = []
        for _ in range(n):
            if fmt == "b64_json":
                item: dict[str, Any] = {"b64_json": base64.b64encode(data).decode("ascii")}
            else:
                name = get_state(request).files.put(data, "jpeg", "image/jpeg")
                item = {"url": f"{request.scheme}://{request.host}{PREFIX}/files/{name}"}
            items.append({**item, "mime_type": "image/jpeg", "revised_prompt": ""})
        return web.json_response({"data": items})
    except XAIError as exc:
        return exc.response()


MAX_EDIT_IMAGES = 3


def _source_images(body: dict[str, Any]) -> list[bytes]:
    """The edit's source images, decoded from data URIs (the simulator fetches no remote URL)."""
    refs = [body["image"]] if "image" in body else body.get("images")
    if not isinstance(refs, list) or not refs:
        raise XAIError(400, "Client specified an invalid argument", "image is required for an edit")
    if len(refs) > MAX_EDIT_IMAGES:
        raise XAIError(400, "Client specified an invalid argument", f"at most {MAX_EDIT_IMAGES} images per edit")
    out = []
    for ref in refs:
        url = ref.get("url") if isinstance(ref, dict) else None
        if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
            raise XAIError(400, "Client specified an invalid argument", "image.url must be a data URI here")
        try:
            out.append(base64.b64decode(url.split(";base64,", 1)[1], validate=True))
        except ValueError:
            raise XAIError(400, "Client specified an invalid argument", "image.url is not valid base64") from None
    return out


async def edits(request: web.Request) -> web.Response:
    """``POST /xai/v1/images/edits``: JSON with one source image (its ratio kept) or up to three."""
    try:
        _auth(request)
        body = _body(request)
        if body.get("model", IMAGE_MODELS[0]) not in IMAGE_MODELS:
            raise XAIError(404, "Some requested entity was not found", "The model does not exist.")
        sources = _source_images(body)
        kind = await faults.resolve(get_state(request), PROTOCOL, body["prompt"], faults.COMMON_KINDS)
        if kind in ("safety", "prompt-blocked"):
            raise XAIError(400, "Client specified an invalid argument", "Generated image rejected by content moderation.")
        if kind is not None and kind not in ("drop", "malformed", "noimage"):
            _server_fault(kind)
        if kind == "drop":
            return faults.drop_connection(request)
        try:
            w0, h0 = render.image_size(sources[0])
        except ValueError:
            raise XAIError(400, "Client specified an invalid argument", "image could not be decoded") from None
        resolution = _enum(body, "resolution", ("1k", "2k"), "1k")
        if len(sources) == 1:
            ratio = min(SIZES_1K, key=lambda r: abs(SIZES_1K[r][0] / SIZES_1K[r][1] - w0 / h0))
        else:
            ratio = _enum(body, "aspect_ratio", tuple(SIZES_1K), "1:1")
        w, h = image_size(ratio, resolution)
        data = await render.render_edit_async(sources[0], w, h, body["prompt"], "jpeg", None, None)
        n = body.get("n", 1) if isinstance(body.get("n", 1), int) else 1
        b64 = base64.b64encode(data).decode("ascii")
        return web.json_response({"data": [{"b64_json": b64, "mime_type": "image/jpeg", "revised_prompt": ""}
                                           for _ in range(max(1, min(n, MAX_N)))]})
    except XAIError as exc:
        return exc.response()


async def video_create(request: web.Request) -> web.Response:
    """``POST /xai/v1/videos/generations``: a deferred job, answered with its ``request_id`` at once."""
    try:
        _auth(request)
        body = _body(request)
        model = body.get("model", VIDEO_MODELS[0])
        if model not in VIDEO_MODELS:
            raise XAIError(404, "Some requested entity was not found", f"The model {model} does not exist.")
        state = get_state(request)
        kind = await faults.resolve(state, PROTOCOL, body["prompt"], faults.VIDEO_KINDS)
        if kind == "drop":
            return faults.drop_connection(request)
        if kind == "malformed":
            return faults.malformed_response({"request_id": 7})
        if kind is not None and kind not in ("safety", "fail", "prompt-blocked"):
            _server_fault(kind)
        seconds = body.get("duration", 6)
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= MAX_SECONDS:
            raise XAIError(400, "Client specified an invalid argument", f"duration must be between 1 and {MAX_SECONDS}")
        ratio = _enum(body, "aspect_ratio", VIDEO_RATIOS, "16:9")
        resolution = _enum(body, "resolution", tuple(VIDEO_HEIGHT), "480p")
        image = body.get("image")
        if image is not None and not (isinstance(image, dict) and isinstance(image.get("url"), str)):
            raise XAIError(400, "Client specified an invalid argument", "image must be an object with a url")
        w, h = video_size(ratio, resolution)
        job = Job(jobs.new_id(), JOB_PROTOCOL, model, body["prompt"], {"width": w, "height": h, "seconds": seconds},
                  jobs.job_duration_ms(state, body["prompt"], video=True), fault=kind)
        state.jobs.put(job.id, job)
        return web.json_response({"request_id": job.id})
    except XAIError as exc:
        return exc.response()


async def video_get(request: web.Request) -> web.Response:
    """``GET /xai/v1/videos/{request_id}``: pending until the job's time has passed, then done (or failed)."""
    try:
        _auth(request)
        job = get_state(request).jobs.get(request.match_info["request_id"])
        if not isinstance(job, Job) or job.protocol != JOB_PROTOCOL:
            raise XAIError(404, "Some requested entity was not found", "The requested video does not exist.")
        if job.phase() in ("queued", "running"):
            done = 1 - job.remaining_s() / max(1e-9, job.job_ms / 1000)
            return web.json_response({"status": "pending", "progress": int(100 * max(0.0, done)), "model": job.model})
        p = job.params
        if job.fault in ("fail", "safety", "prompt-blocked"):
            moderated = job.fault != "fail"
            return web.json_response({"status": "failed", "model": job.model,
                                      "video": {"duration": 0, "respect_moderation": not moderated},
                                      "error": {"code": "content_moderated" if moderated else "internal_error",
                                                "message": "Video rejected by content moderation." if moderated
                                                else "Video generation failed. Please try again."}})
        async with job.render_lock:
            if job.outputs is None:
                data = await video.render_mp4_async(p["width"], p["height"], p["seconds"], job.prompt)
                job.outputs = get_state(request).files.put(data, "mp4", video.MIME_MP4, prefix="vid")
        return web.json_response({"status": "done", "model": job.model, "progress": 100,
                                  "video": {"url": f"{request.scheme}://{request.host}{PREFIX}/files/{job.outputs}",
                                            "duration": p["seconds"], "respect_moderation": True}})
    except XAIError as exc:
        return exc.response()


async def serve_file(request: web.Request) -> web.Response:
    found = get_state(request).files.get(request.match_info["name"])
    if found is None:
        return XAIError(404, "Some requested entity was not found", "File not found or expired.").response()
    data, content_type = found
    return web.Response(body=data, content_type=content_type)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/v1/images/generations", images)
    app.router.add_post(f"{PREFIX}/v1/images/edits", edits)
    app.router.add_post(f"{PREFIX}/v1/videos/generations", video_create)
    app.router.add_get(f"{PREFIX}/v1/videos/{{request_id}}", video_get)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)
