"""Together AI's images API: ``POST /together/v1/images/generations`` (files under ``/together/files/``).

Wire format from together-py (src/together/resources/images.py, types/image_generate_params.py,
types/image_file.py): a JSON body with ``model``, ``prompt``, ``width``, ``height``, ``steps``, ``n``, ``seed``,
``negative_prompt``, ``output_format`` (jpeg | png, default jpeg) and ``response_format`` (``base64`` or ``url``;
``b64_json`` is accepted too, as many callers send it); the reply is
``{"id", "model", "object": "list", "data": [{"index", "type": "b64_json" | "url", "b64_json" | "url"}]}``.
Errors are OpenAI-shaped ``{"error": {"message", "type", "param", "code"}}`` under
``Authorization: Bearer``. The same handler answers under ``/huggingface/together/`` (the HF router's
provider-routed form). UNVERIFIED: the size limits (64-1792, multiples of 16), the per-model step caps and
how a safety refusal is worded (here 422 with code ``content_policy_violation``).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

from aiohttp import web

from . import faults, render
from .fal_video import image_dimensions
from .state import JSON_BODY, get_state, serve_file

PREFIX = "/together"
HF_ROUTER_PREFIX = "/huggingface/together"   # Together's protocol as the HF router serves it (hf_ tokens)
MIN_SIDE_PX = 64
MAX_SIDE_PX = 1792
SIDE_MULTIPLE = 16
MAX_N = 4
MAX_PROMPT_CHARS = 32_000
# model -> (most steps, default steps)
MODELS: dict[str, tuple[int, int]] = {
    "black-forest-labs/FLUX.1-schnell": (12, 4),
    "black-forest-labs/FLUX.1-schnell-Free": (4, 4),
    "black-forest-labs/FLUX.1-dev": (50, 28),
    "black-forest-labs/FLUX.1-krea-dev": (50, 28),
    "black-forest-labs/FLUX.1.1-pro": (50, 28),
    "stabilityai/stable-diffusion-xl-base-1.0": (50, 30),
    "black-forest-labs/FLUX.1-kontext-pro": (50, 28),
    "black-forest-labs/FLUX.1-kontext-dev": (50, 28),
}
# models that take an input image (image_url); UNVERIFIED: data: URLs upstream
IMAGE_INPUT_MODELS = frozenset({"black-forest-labs/FLUX.1-kontext-pro", "black-forest-labs/FLUX.1-kontext-dev"})


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
           code: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"id": uuid.uuid4().hex, "error": {"message": message, "type": kind, "param": param,
                                                                 "code": code}}, status=status, headers=headers)


def _int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int | web.Response:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return _error(400, f"{name} must be an integer between {low} and {high}", param=name)
    return value


def _fault(request: web.Request, kind: str) -> web.Response:
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"id": "x", "object": "list", "data": [{"index": 0, "b64_json": "A" * 64}]})
    if kind == "429":
        return _error(429, "You have exceeded the rate limit for this model.", "rate_limit_exceeded",
                      headers={"Retry-After": "1"})
    if kind == "503":
        return _error(503, "The model is overloaded, please try again later.", "server_error")
    if kind in ("safety", "prompt-blocked"):
        return _error(422, "NSFW content detected in the image generation request.", code="content_policy_violation")
    return _error(500, "Internal server error", "server_error")


async def generate(request: web.Request) -> web.Response:
    """``POST /together/v1/images/generations``."""
    if not request.headers.get("Authorization", "").startswith("Bearer ") or \
            request.headers["Authorization"].split(" ", 1)[1].startswith("bad"):
        return _error(401, "Invalid API key provided.", "invalid_api_key", code="invalid_api_key")
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        return _error(400, "Request body must be a JSON object")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        return _error(400, f"prompt must be a string of 1 to {MAX_PROMPT_CHARS} characters", param="prompt")
    model = body.get("model")
    if model not in MODELS:
        return _error(404, f"Unable to access model {model}. Please visit https://api.together.ai/models to view the "
                      "list of supported models.", "invalid_request_error", param="model", code="model_not_available")
    # the same protocol answers through the HF router (/huggingface/together/...): faults follow the path's protocol
    protocol = "huggingface" if request.path.startswith("/huggingface/") else "together"
    kind = await faults.resolve(get_state(request), protocol, prompt)
    if kind is not None and kind != "noimage":
        return _fault(request, kind)
    max_steps, default_steps = MODELS[model]
    values = {name: _int(body, name, default, low, high) for name, default, low, high in (
        ("width", 1024, MIN_SIDE_PX, MAX_SIDE_PX), ("height", 1024, MIN_SIDE_PX, MAX_SIDE_PX),
        ("n", 1, 1, MAX_N), ("steps", default_steps, 1, max_steps))}
    for value in values.values():
        if isinstance(value, web.Response):
            return value
    width, height, count = int(values["width"]), int(values["height"]), int(values["n"])
    for name, side in (("width", width), ("height", height)):
        if side % SIDE_MULTIPLE:
            return _error(400, f"{name} must be a multiple of {SIDE_MULTIPLE}", param=name)
    fmt = body.get("output_format", "jpeg") or "jpeg"
    if fmt not in ("jpeg", "png"):
        return _error(400, "output_format must be one of jpeg, png", param="output_format")
    image_url = body.get("image_url")
    if image_url is not None:
        if model not in IMAGE_INPUT_MODELS:
            return _error(400, f"image_url is not supported by {model}", param="image_url")
        if image_dimensions(image_url) is None and not str(image_url).startswith(("http://", "https://")):
            return _error(400, "image_url must be an http(s) URL or a data: URL of an image", param="image_url")
    response_format = body.get("response_format", "url") or "url"
    if response_format not in ("base64", "b64_json", "url"):
        return _error(400, "response_format must be one of base64, url", param="response_format")
    count = 0 if kind == "noimage" else count
    texts = [f"{prompt} #{i + 1}" if count > 1 else prompt for i in range(count)]
    datas = await asyncio.gather(*(render.render_async(width, height, text, fmt) for text in texts))
    data: list[dict[str, Any]] = []
    for index, image in enumerate(datas):
        if response_format == "url":
            name = get_state(request).files.put(image, fmt, render.MIME_TYPES[fmt])
            data.append({"index": index, "type": "url", "url": f"{request.scheme}://{request.host}{PREFIX}/files/{name}"})
        else:
            data.append({"index": index, "type": "b64_json", "b64_json": base64.b64encode(image).decode("ascii")})
    return web.json_response({"id": uuid.uuid4().hex, "model": model, "object": "list", "data": data})



def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/v1/images/generations", generate)
    app.router.add_post(f"{HF_ROUTER_PREFIX}/v1/images/generations", generate)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)
