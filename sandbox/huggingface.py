"""Hugging Face Inference Providers, HF Inference route: ``POST /huggingface/hf-inference/models/{org}/{name}``.

Wire format from huggingface_hub (inference/_providers/hf_inference.py, inference/_client.py ``text_to_image``):
a JSON body ``{"inputs": prompt, "parameters": {width, height, num_inference_steps, guidance_scale,
negative_prompt, seed, scheduler}}`` under ``Authorization: Bearer hf_...``; a 200 reply's body IS the image
(``Content-Type: image/jpeg``). Errors are ``{"error": "..."}`` (utils/_http.py ``hf_raise_for_status``); a model
still loading answers 503 with ``estimated_time``. UNVERIFIED: the size limits (multiples of 8, 256-2048 per side)
and how a safety refusal is worded (here 400 naming NSFW content).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import faults, render
from .state import JSON_BODY, get_state

PREFIX = "/huggingface"
MIN_SIDE_PX = 256
MAX_SIDE_PX = 2048
SIDE_MULTIPLE = 8
MAX_PROMPT_CHARS = 10_000
# model -> (default width, default height, most steps)
MODELS: dict[str, tuple[int, int, int]] = {
    "black-forest-labs/FLUX.1-schnell": (1024, 1024, 16),
    "black-forest-labs/FLUX.1-dev": (1024, 1024, 50),
    "stabilityai/stable-diffusion-3.5-large": (1024, 1024, 50),
    "stabilityai/stable-diffusion-xl-base-1.0": (1024, 1024, 50),
}


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = extra.pop("headers", None)
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


def _fault(request: web.Request, kind: str, model: str) -> web.Response:
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":  # a success that is not the image (what a misbehaving proxy might answer)
        return web.Response(status=200, text="<html>ok</html>", content_type="text/html")
    if kind == "429":
        return _error(429, "Rate limit reached. You reached free usage limit (reset hourly).", headers={"Retry-After": "1"})
    if kind == "503":
        return _error(503, f"Model {model} is currently loading", estimated_time=1.0)
    if kind in ("safety", "prompt-blocked"):
        return _error(400, "Potential NSFW content was detected in one or more images.")
    return _error(500, "Internal Server Error")


async def text_to_image(request: web.Request) -> web.Response:
    """``POST /huggingface/hf-inference/models/{org}/{name}``."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or auth.split(" ", 1)[1].startswith("bad"):
        return _error(401, "Invalid credentials in Authorization header")
    model = f"{request.match_info['org']}/{request.match_info['name']}"
    if model not in MODELS:
        return _error(404, f"Model {model} does not exist")
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        return _error(400, "Malformed JSON body")
    prompt = body.get("inputs")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        return _error(400, f"inputs: a prompt of 1 to {MAX_PROMPT_CHARS} characters is required")
    kind = await faults.resolve(get_state(request), "huggingface", prompt)
    if kind is not None:
        return _fault(request, kind, model)
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        return _error(400, "parameters must be an object")
    default_w, default_h, max_steps = MODELS[model]
    sizes = {"width": params.get("width", default_w), "height": params.get("height", default_h)}
    for name, side in sizes.items():
        if isinstance(side, bool) or not isinstance(side, int) or not MIN_SIDE_PX <= side <= MAX_SIDE_PX \
                or side % SIDE_MULTIPLE:
            return _error(400, f"{name} must be a multiple of {SIDE_MULTIPLE} between {MIN_SIDE_PX} and {MAX_SIDE_PX}")
    steps = params.get("num_inference_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= max_steps):
        return _error(400, f"num_inference_steps must be between 1 and {max_steps}")
    data = await render.render_async(sizes["width"], sizes["height"], prompt, "jpeg")
    return web.Response(body=data, content_type="image/jpeg", headers={"x-compute-type": "gpu"})


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/hf-inference/models/{{org}}/{{name}}", text_to_image)
