"""Recraft images protocol: ``/recraft/v1/images/generations`` (OpenAI-like, with styles and vector output).

* ``POST /v1/images/generations`` JSON ``{prompt, model, style, substyle, style_id, size (WxH or w:h), n 1-6,
  response_format url|b64_json, negative_prompt, controls}``; ``Authorization: Bearer <token>``.
  source: www.recraft.ai/docs/api-reference/agents.md (base URL external.api.recraft.ai/v1, Bearer token, JSON,
  model ids, n, response_format; URLs live about 24 hours)
  source: www.recraft.ai/docs/llms-full.txt "Appendix" (prompt limits: 10000 for V4, 1000 for V3; the size table per
  model); www.recraft.ai/docs/api-reference/styles (styles are V2 / V3 only: "Styles are not supported for V4")
  source: github.com/api-evangelist/recraft-ai examples/recraft-create-image-example.json (the reply:
  ``{"created", "credits", "data": [{"image_id", "url", "revised_prompt"}]}``)
* Raster models answer PNG (UNVERIFIED: the hosted files may be WebP); vector models (``*_vector``, and V3 with a
  ``vector_illustration`` / ``icon`` style) answer an SVG document of the requested size.
* Errors ``{"code", "message"}`` with 400 / 401 / 429 (the codes' spelling is UNVERIFIED).
"""

from __future__ import annotations

import base64
import html
import secrets
import time
from typing import Any

from aiohttp import web

from . import faults, render
from .state import JSON_BODY, get_state

PREFIX = "/recraft"
PROTOCOL = "recraft"
V3_SIZES = ("1024x1024", "1365x1024", "1024x1365", "1536x1024", "1024x1536", "1820x1024", "1024x1820", "1024x2048",
            "2048x1024", "1434x1024", "1024x1434", "1024x1280", "1280x1024", "1024x1707", "1707x1024")
V4_SIZES = ("1024x1024", "1536x768", "768x1536", "1280x832", "832x1280", "1216x896", "896x1216", "1152x896",
            "896x1152", "832x1344", "1280x896", "896x1280", "1344x768", "768x1344")
MODELS: dict[str, tuple[tuple[str, ...], int, bool]] = {   # id -> (sizes, prompt limit, vector)
    "recraftv3": (V3_SIZES, 1000, False), "recraftv3_vector": (V3_SIZES, 1000, True),
    "recraftv4": (V4_SIZES, 10000, False), "recraftv4_vector": (V4_SIZES, 10000, True),
}
V3_STYLES = ("any", "realistic_image", "digital_illustration", "vector_illustration", "icon")
VECTOR_STYLES = ("vector_illustration", "icon")
MAX_N = 6


class RecraftError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.body, self.headers = status, {"code": code, "message": message}, headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


def svg_document(width: int, height: int, prompt: str) -> bytes:
    """A real, valid SVG of the requested size with the prompt drawn in as text."""
    text = html.escape(faults.strip_directives(prompt)[:80])
    font = max(12, min(width, height) // 20)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}"><rect width="100%" height="100%" fill="#f4efe6"/>'
            f'<circle cx="{width // 2}" cy="{height // 2}" r="{min(width, height) // 4}" fill="#d9534f"/>'
            f'<text x="{width // 2}" y="{height - font}" font-size="{font}" text-anchor="middle" '
            f'font-family="sans-serif" fill="#222">{text}</text></svg>').encode()


def _check(request: web.Request) -> dict[str, Any]:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token or token.startswith("bad"):
        raise RecraftError(401, "not_authenticated", "Invalid or missing API token")
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        raise RecraftError(400, "invalid_json", "The request body must be a JSON object")
    return body


async def generations(request: web.Request) -> web.Response:
    """``POST /recraft/v1/images/generations``."""
    try:
        body = _check(request)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise RecraftError(400, "invalid_prompt", "prompt is required")
        model = body.get("model", "recraftv3")
        if model not in MODELS:
            raise RecraftError(400, "invalid_model", f"Unknown model {model}")
        sizes, prompt_max, vector = MODELS[model]
        if len(prompt) > prompt_max:
            raise RecraftError(400, "prompt_too_long", f"Prompt is longer than {prompt_max} characters")
        kind = await faults.resolve(get_state(request), PROTOCOL, prompt, faults.COMMON_KINDS)
        if kind == "drop":
            return faults.drop_connection(request)
        if kind == "malformed":
            return faults.malformed_response({"created": int(time.time()), "data": [{"b64_json": "PHN2Zw=="}]})
        if kind == "noimage":
            return web.json_response({"created": int(time.time()), "credits": 0, "data": []})
        if kind == "429":
            raise RecraftError(429, "rate_limit_exceeded", "Too many requests", {"retry-after": "3"})
        if kind in ("500", "503"):
            raise RecraftError(int(kind), "internal_error", "Internal server error")
        if kind in ("safety", "prompt-blocked"):
            raise RecraftError(400, "content_moderation", "The prompt was rejected by content moderation")
        style = body.get("style")
        if style is not None:
            if model.startswith("recraftv4"):
                raise RecraftError(400, "invalid_style", "Styles are not supported for V4 models")
            if style not in V3_STYLES:
                raise RecraftError(400, "invalid_style", f"Unknown style {style}")
            vector = vector or style in VECTOR_STYLES
        size = body.get("size", "1024x1024")
        if size not in sizes:
            raise RecraftError(400, "invalid_size", f"Size {size} is not supported by {model}")
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
            raise RecraftError(400, "invalid_n", f"n must be between 1 and {MAX_N}")
        fmt = body.get("response_format", "url")
        if fmt not in ("url", "b64_json"):
            raise RecraftError(400, "invalid_response_format", "response_format must be url or b64_json")
        w, h = (int(x) for x in size.split("x"))
        data = svg_document(w, h, prompt) if vector else await render.render_async(w, h, prompt, "png")
        ext, mime = ("svg", "image/svg+xml") if vector else ("png", "image/png")
        items = []
        for _ in range(n):
            item: dict[str, Any] = {"image_id": secrets.token_hex(16)}
            if fmt == "b64_json":
                item["b64_json"] = base64.b64encode(data).decode("ascii")
            else:
                name = get_state(request).files.put(data, ext, mime)
                item["url"] = f"{request.scheme}://{request.host}{PREFIX}/files/{name}"
            items.append(item)
        return web.json_response({"created": int(time.time()), "credits": (80 if vector else 40) * n, "data": items})
    except RecraftError as exc:
        return exc.response()


async def serve_file(request: web.Request) -> web.Response:
    found = get_state(request).files.get(request.match_info["name"])
    if found is None:
        return RecraftError(404, "not_found", "File not found").response()
    data, content_type = found
    return web.Response(body=data, content_type=content_type)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/v1/images/generations", generations)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)
