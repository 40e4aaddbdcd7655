"""Stability AI's REST v2beta Stable Image generate API: ``POST /stability/v2beta/stable-image/generate/core``
(and ``/ultra``, ``/sd3`` with ``model``, which take the same form).

Shapes from Stability's API reference (platform.stability.ai/docs/api-reference, "Generate" - Stable Image
Core): a multipart/form-data body (``prompt`` required; ``aspect_ratio`` 16:9 1:1 21:9 2:3 3:2 4:5 5:4 9:16
9:21, default 1:1; ``negative_prompt``; ``seed`` 0..4294967294, 0 = random; ``style_preset``;
``output_format`` png | jpeg | webp, default png). With ``Accept: image/*`` a 200 reply's body IS the image
(``Content-Type: image/png`` ...), its metadata in headers: ``x-request-id``, ``seed`` and ``finish-reason``
(``SUCCESS``, or ``CONTENT_FILTERED``: generated, but the output violated the content policy and is blurred).
With ``Accept: application/json`` the same comes as ``{"image": b64, "seed", "finish_reason"}``.
Errors are JSON ``{"id", "name", "errors": [..]}``: 400 bad_request, 403 content_moderation, 429
rate_limit_exceeded, 500 internal_error. Sizes here are the ~1 MP buckets for each ratio (the real service
renders about 1.5 MP; the simulator only needs the ratio to be right).
"""

from __future__ import annotations

import base64
import random
import uuid

from aiohttp import web

from . import faults, render
from .state import get_state

PREFIX = "/stability"
SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "2:3": (832, 1216), "3:2": (1216, 832),
    "4:5": (896, 1088), "5:4": (1088, 896), "9:16": (768, 1344), "9:21": (640, 1536),
}
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
MAX_SEED = 4294967294
MAX_PROMPT_CHARS = 10000


def _error(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"id": uuid.uuid4().hex, "name": name, "errors": [message]}, status=status)


async def generate_core(request: web.Request) -> web.StreamResponse:
    """``POST /stability/v2beta/stable-image/generate/core``."""
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return _error(401, "unauthorized", "authorization: missing or invalid API key")
    if not request.content_type.startswith("multipart/form-data"):
        return _error(400, "bad_request", "content-type: must be multipart/form-data")
    form = await request.post()
    prompt = str(form.get("prompt", ""))
    kind = await faults.resolve(get_state(request), "stability", prompt)
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "429":
        return _error(429, "rate_limit_exceeded", "You have exceeded the rate limit of 150 requests within a 10 second period.")
    if kind == "500":
        return _error(500, "internal_error", "An unexpected server error has occurred, please try again later.")
    if kind == "prompt-blocked":
        return _error(403, "content_moderation", "Your request was flagged by our content moderation system, "
                      "as a result your request was denied and you were not charged.")
    if kind == "malformed":  # a success that is not the image (what a misbehaving proxy might answer)
        return web.Response(status=200, text="<html>ok</html>", content_type="text/html")
    if not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        return _error(400, "bad_request", f"prompt: must be 1 to {MAX_PROMPT_CHARS} characters")
    ratio = str(form.get("aspect_ratio", "1:1") or "1:1")
    fmt = str(form.get("output_format", "png") or "png")
    if ratio not in SIZES:
        return _error(400, "bad_request", f"aspect_ratio: must be one of {', '.join(SIZES)}")
    if fmt not in FORMATS:
        return _error(400, "bad_request", "output_format: must be one of png, jpeg, webp")
    try:
        seed = int(str(form.get("seed", "0") or "0"))
    except ValueError:
        return _error(400, "bad_request", "seed: must be an integer")
    if not 0 <= seed <= MAX_SEED:
        return _error(400, "bad_request", f"seed: must be between 0 and {MAX_SEED}")
    seed = seed or random.randint(1, MAX_SEED)
    width, height = SIZES[ratio]
    finish = "CONTENT_FILTERED" if kind == "safety" else "SUCCESS"
    data = await (render.render_black_async(width, height, fmt) if finish == "CONTENT_FILTERED"
                  else render.render_async(width, height, prompt, fmt))
    headers = {"x-request-id": uuid.uuid4().hex, "seed": str(seed), "finish-reason": finish}
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"image": base64.b64encode(data).decode("ascii"), "seed": seed,
                                  "finish_reason": finish}, headers={"x-request-id": headers["x-request-id"]})
    return web.Response(body=data, content_type=FORMATS[fmt], headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/v2beta/stable-image/generate/core", generate_core)
    # Ultra and SD3.x take the same form (sd3 adds `model`: sd3.5-large, sd3.5-large-turbo, sd3.5-medium, ...)
    app.router.add_post(f"{PREFIX}/v2beta/stable-image/generate/ultra", generate_core)
    app.router.add_post(f"{PREFIX}/v2beta/stable-image/generate/sd3", generate_core)
