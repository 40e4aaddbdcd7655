"""AUTOMATIC1111 / Forge WebUI API: ``POST /a1111/sdapi/v1/txt2img`` and
``GET /a1111/sdapi/v1/sd-models``.

Shapes from stable-diffusion-webui's modules/api (models.py, api.py): the answer is
``{"images": [b64 PNG...], "parameters": {...}, "info": "<JSON string>"}``; request
validation errors are FastAPI's 422 ``{"detail": [{"loc", "msg", "type"}]}`` (pydantic 1
wording); any other failure goes through ``api_middleware``'s ``handle_exception``:
``{"error": <exception class>, "detail": "", "body": "", "errors": str(e)}``.
The WebUI has no auth by default, and does not check sizes: the latent is
``height // 8`` by ``width // 8``, so a size that is not a multiple of 8 silently comes out
rounded down to one (modules/processing.py, ``opt_f = 8``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from typing import Any

from aiohttp import web

from . import faults, render
from .state import JSON_BODY, get_state

PREFIX = "/a1111"
LATENT_FACTOR = 8  # opt_f: VAE downscale factor of SD 1.x / SDXL
MAX_SIDE = 2048  # the WebUI's UI slider limit; the API itself is unbounded
MAX_IMAGES = 16
SD_MODELS: list[dict[str, Any]] = [
    {"title": "v1-5-pruned-emaonly.safetensors [6ce0161689]", "model_name": "v1-5-pruned-emaonly",
     "hash": "6ce0161689", "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
     "filename": "/stable-diffusion-webui/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors", "config": None},
    {"title": "sd_xl_base_1.0.safetensors [31e35c80fc]", "model_name": "sd_xl_base_1.0",
     "hash": "31e35c80fc", "sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
     "filename": "/stable-diffusion-webui/models/Stable-diffusion/sd_xl_base_1.0.safetensors", "config": None},
]
# StableDiffusionProcessingTxt2Img defaults as the API exposes them.
DEFAULTS: dict[str, Any] = {
    "prompt": "", "negative_prompt": "", "styles": None, "seed": -1, "subseed": -1, "subseed_strength": 0,
    "seed_resize_from_h": -1, "seed_resize_from_w": -1, "sampler_name": None, "scheduler": None, "batch_size": 1,
    "n_iter": 1, "steps": 50, "cfg_scale": 7.0, "width": 512, "height": 512, "restore_faces": None,
    "tiling": None, "denoising_strength": None, "enable_hr": False, "override_settings": None,
    "send_images": True, "save_images": False,
}
_INT_FIELDS = ("seed", "subseed", "batch_size", "n_iter", "steps", "width", "height")
_FLOAT_FIELDS = ("cfg_scale", "subseed_strength")
_STR_FIELDS = ("prompt", "negative_prompt", "sampler_name", "scheduler")


def _validation(errors: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"detail": errors}, status=422)


def _coerce(body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pydantic-1 style coercion: numeric strings pass, anything else is a 422 entry."""
    params = {**DEFAULTS, **body}
    errors: list[dict[str, Any]] = []
    for name in _INT_FIELDS:
        value = params[name]
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            params[name] = int(value)
        except (TypeError, ValueError):
            errors.append({"loc": ["body", name], "msg": "value is not a valid integer", "type": "type_error.integer"})
    for name in _FLOAT_FIELDS:
        try:
            params[name] = float(params[name])
        except (TypeError, ValueError):
            errors.append({"loc": ["body", name], "msg": "value is not a valid float", "type": "type_error.float"})
    for name in _STR_FIELDS:
        if params[name] is not None and not isinstance(params[name], str):
            errors.append({"loc": ["body", name], "msg": "str type expected", "type": "type_error.str"})
    return params, errors


def _server_error(exc_name: str, message: str) -> web.Response:
    """``api_middleware.handle_exception``'s body for an unexpected exception."""
    return web.json_response({"error": exc_name, "detail": "", "body": "", "errors": message}, status=500)


def _info(params: dict[str, Any], width: int, height: int, seeds: list[int], sampler: str) -> str:
    """The ``info`` JSON string (``Processed.js()``)."""
    count = len(seeds)
    infotext = (f"{params['prompt']}\nNegative prompt: {params['negative_prompt']}\nSteps: {params['steps']}, "
                f"Sampler: {sampler}, CFG scale: {params['cfg_scale']}, Seed: {seeds[0]}, Size: {width}x{height}, "
                f"Model hash: {SD_MODELS[0]['hash']}, Model: {SD_MODELS[0]['model_name']}, Version: v1.10.1")
    return json.dumps({
        "prompt": params["prompt"], "all_prompts": [params["prompt"]] * count,
        "negative_prompt": params["negative_prompt"], "all_negative_prompts": [params["negative_prompt"]] * count,
        "seed": seeds[0], "all_seeds": seeds, "subseed": seeds[0] + 1, "all_subseeds": [s + 1 for s in seeds],
        "subseed_strength": params["subseed_strength"], "width": width, "height": height,
        "sampler_name": sampler, "cfg_scale": params["cfg_scale"], "steps": params["steps"],
        "batch_size": params["batch_size"], "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": SD_MODELS[0]["model_name"], "sd_model_hash": SD_MODELS[0]["hash"],
        "sd_vae_name": None, "sd_vae_hash": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": params["denoising_strength"], "extra_generation_params": {},
        "index_of_first_image": 0, "infotexts": [infotext.replace(f"Seed: {seeds[0]}", f"Seed: {s}") for s in seeds],
        "styles": params["styles"] or [], "job_timestamp": time.strftime("%Y%m%d%H%M%S"), "clip_skip": 1,
        "is_using_inpainting_conditioning": False, "version": "v1.10.1",
    })


async def txt2img(request: web.Request) -> web.Response:
    """``POST /a1111/sdapi/v1/txt2img``."""
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        return _validation([{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}])
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
    kind = await faults.resolve(get_state(request), "a1111", prompt)
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"images": ["iVBORw0KGgo" * 40], "parameters": {}, "info": "{}"})
    if kind == "500":
        return _server_error("OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB "
                             "total capacity; 5.12 GiB already allocated)")
    params, errors = _coerce(body)
    if kind == "422":
        errors.append({"loc": ["body", "width"], "msg": "value is not a valid integer", "type": "type_error.integer"})
    if errors:
        return _validation(errors)
    width = params["width"] // LATENT_FACTOR * LATENT_FACTOR
    height = params["height"] // LATENT_FACTOR * LATENT_FACTOR
    count = params["batch_size"] * params["n_iter"]
    if not (LATENT_FACTOR <= width <= MAX_SIDE and LATENT_FACTOR <= height <= MAX_SIDE) or not 1 <= count <= MAX_IMAGES:
        # What the real WebUI does with such sizes is a torch error deep in sampling.
        return _server_error("RuntimeError", f"Given size {width}x{height} x {count} images is outside what "
                             "this simulator renders (8..2048 px, 1..16 images).")
    first = params["seed"] if params["seed"] != -1 else random.randrange(2**32)
    seeds = [first + i for i in range(count)]
    sampler = params["sampler_name"] or "DPM++ 2M"
    texts = [f"{params['prompt']} #{i + 1}" if count > 1 else params["prompt"] for i in range(count)]
    datas = await asyncio.gather(*(render.render_async(width, height, text or "(empty prompt)", "png")
                                   for text in texts))
    images = [base64.b64encode(data).decode("ascii") for data in datas]
    parameters = {key: params[key] for key in DEFAULTS} | {k: v for k, v in body.items() if k not in DEFAULTS}
    return web.json_response({"images": images, "parameters": parameters,
                              "info": _info(params, width, height, seeds, sampler)})


async def sd_models(request: web.Request) -> web.Response:
    """``GET /a1111/sdapi/v1/sd-models``: the checkpoints "installed"."""
    return web.json_response(SD_MODELS)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/sdapi/v1/txt2img", txt2img)
    app.router.add_get(f"{PREFIX}/sdapi/v1/sd-models", sd_models)
