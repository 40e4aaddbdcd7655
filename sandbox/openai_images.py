"""OpenAI Images protocol: ``/openai/v1/images/generations``, ``/edits`` and served URL files.

Answers like api.openai.com (shapes, defaults, per-model validation, error bodies)
so the gateway's OpenAI provider spec can be exercised for real over HTTP.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from . import faults, render
from .openai_models import (
    MODELS,
    ModelSpec,
    OpenAIError,
    gpt_output_tokens,
    int_in_range,
    invalid_value,
    lookup,
    raise_server_fault,
    resolve_size,
)
from .state import JSON_BODY, LOG_ENTRY, get_state

PREFIX = "/openai"
_FORMATS = ("png", "jpeg", "webp")
_TINY_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(48)).decode()


@dataclass
class Plan:
    """A validated request: everything needed to render and shape the answer."""

    spec: ModelSpec
    prompt: str
    width: int
    height: int
    n: int
    fmt: str
    compression: int | None
    quality: str | None
    background: str | None
    response_format: str
    style: str | None


def check_auth(request: web.Request) -> None:
    """Bearer auth as api.openai.com checks it: missing key vs. rejected (``bad...``) key."""
    header = request.headers.get("Authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not key:
        raise OpenAIError(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                          "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
                          "(with blank username) if you're accessing the API from your browser and are prompted for a "
                          "username and password. You can obtain an API key from "
                          "https://platform.openai.com/account/api-keys.")
    if key.startswith("bad"):
        shown = key if len(key) <= 8 else f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}"
        raise OpenAIError(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                          "https://platform.openai.com/account/api-keys.", code="invalid_api_key")


def _json_body(request: web.Request) -> dict[str, Any]:
    """The body the middleware parsed, or OpenAI's "could not parse the JSON body" 400."""
    ok, value = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(value, dict):
        raise OpenAIError(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                          "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
                          "was not valid JSON. If you have trouble figuring out how to fix this, please contact us "
                          "through our help center at help.openai.com.)")
    return value


def _choice(body: dict[str, Any], param: str, allowed: tuple[str, ...], default: str) -> str:
    """An enum field: null/missing means ``default``, anything unlisted is a 400 ``invalid_value``."""
    value = body.get(param)
    if value is None or value == "":
        return default
    if value not in allowed:
        raise invalid_value(param, value, allowed)
    return str(value)


def build_plan(spec: ModelSpec, body: dict[str, Any], auto_size: tuple[int, int] | None = None) -> Plan:
    """Validate a generation/edit request against the model's rules (raises OpenAIError)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise OpenAIError(400, "Missing required parameter: 'prompt'.", param="prompt",
                          code="missing_required_parameter")
    if len(prompt) > spec.prompt_max:
        raise OpenAIError(400, f"Invalid 'prompt': string too long. Expected a string with maximum length "
                          f"{spec.prompt_max}, but got a string with length {len(prompt)} instead.",
                          param="prompt", code="string_above_max_length")
    if spec.family == "dall-e-3" and body.get("n") not in (None, 1, "1"):
        raise OpenAIError(400, "You must provide n=1 for this model.", param="n", code="invalid_value")
    n = int_in_range(body, "n", 1, 1, spec.n_max)
    width, height = resolve_size(spec, body.get("size"), auto_size)
    gpt, generic = spec.family == "gpt-image", spec.family == "generic"

    quality: str | None = None
    if generic:
        quality = body.get("quality") if isinstance(body.get("quality"), str) else None
    elif spec.default_quality is not None:
        quality = _choice(body, "quality", spec.qualities, spec.default_quality)
        quality = "high" if gpt and quality == "auto" else quality

    if gpt:
        if body.get("response_format") is not None:
            raise OpenAIError(400, "Unknown parameter: 'response_format'.", param="response_format",
                              code="unknown_parameter")
        response_format = "b64_json"
    else:
        response_format = _choice(body, "response_format", ("url", "b64_json"), spec.default_response_format)

    fmt = _choice(body, "output_format", _FORMATS, "png") if (gpt or generic) else "png"
    compression: int | None = None
    if body.get("output_compression") is not None:
        compression = int_in_range(body, "output_compression", 100, 0, 100)

    background: str | None = None
    if gpt:
        _choice(body, "moderation", ("low", "auto"), "auto")
        requested = _choice(body, "background", ("transparent", "opaque", "auto"), "auto")
        if requested == "transparent" and fmt == "jpeg":
            raise OpenAIError(400, "Transparent background is not supported for output_format 'jpeg'; use 'png' or "
                              "'webp'.", param="background", code="invalid_value")
        background = "transparent" if requested == "transparent" else "opaque"
    style = _choice(body, "style", ("vivid", "natural"), "vivid") if spec.family == "dall-e-3" else None
    return Plan(spec, prompt, width, height, n, fmt, compression, quality, background, response_format, style)


def _revised_prompt(plan: Plan) -> str:
    lead = "A natural, true-to-life depiction of" if plan.style == "natural" else "A vivid, highly detailed image of"
    return f"{lead} {faults.strip_directives(plan.prompt)}"


def _envelope(plan: Plan, data: list[dict[str, Any]], input_images: int = 0) -> dict[str, Any]:
    """The response body around ``data``, with the extra fields each family really returns."""
    body: dict[str, Any] = {"created": int(time.time()), "data": data}
    if plan.spec.family == "gpt-image":
        text_tokens = len(plan.prompt) // 4 + 1
        image_in = 194 * input_images
        out = plan.n * gpt_output_tokens(plan.quality or "high", plan.width, plan.height) if data else 0
        body.update({
            "background": plan.background,
            "output_format": plan.fmt,
            "quality": plan.quality,
            "size": f"{plan.width}x{plan.height}",
            "usage": {
                "input_tokens": text_tokens + image_in,
                "input_tokens_details": {"image_tokens": image_in, "text_tokens": text_tokens},
                "output_tokens": out,
                "output_tokens_details": {"image_tokens": out, "text_tokens": 0},
                "total_tokens": text_tokens + image_in + out,
            },
        })
    return body


def _items(request: web.Request, plan: Plan, image: bytes) -> list[dict[str, Any]]:
    """``data`` entries: inline base64, or URLs served back by this simulator."""
    items: list[dict[str, Any]] = []
    b64 = base64.b64encode(image).decode("ascii") if plan.response_format == "b64_json" else ""
    files = get_state(request).files
    for _ in range(plan.n):
        if plan.response_format == "b64_json":
            item: dict[str, Any] = {"b64_json": b64}
        else:
            name = files.put(image, plan.fmt, render.MIME_TYPES[plan.fmt])
            item = {"url": f"{request.scheme}://{request.host}{PREFIX}/files/{name}"}
        if plan.spec.family == "dall-e-3":
            item["revised_prompt"] = _revised_prompt(plan)
        items.append(item)
    return items


def _fault_response(request: web.Request, kind: str, spec: ModelSpec) -> web.Response:
    """Answer an injected fault the way api.openai.com fails."""
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"created": int(time.time()), "data": [{"b64_json": _TINY_B64 * 8}]})
    if kind == "noimage":
        return web.json_response({"created": int(time.time()), "data": []})
    raise_server_fault(kind, spec.name, "images per minute (IPM): Limit 5, Used 5")
    if spec.family == "gpt-image":  # safety, prompt-blocked
        raise OpenAIError(400, "Your request was rejected by the safety system. If you believe this is an error, "
                          f"contact us at help.openai.com and include the request ID {secrets.token_hex(16)}. "
                          "safety_violations=[sexual].", type_="image_generation_user_error",
                          code="moderation_blocked")
    raise OpenAIError(400, "Your request was rejected as a result of our safety system. Your prompt may contain text "
                      "that is not allowed by our safety system.", code="content_policy_violation")


async def generations(request: web.Request) -> web.Response:
    """``POST /openai/v1/images/generations`` (JSON)."""
    try:
        check_auth(request)
        body = _json_body(request)
        spec = lookup(body.get("model"), body)
        prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
        kind = await faults.resolve(get_state(request), "openai", prompt, faults.COMMON_KINDS)
        if kind is not None:
            return _fault_response(request, kind, spec)
        plan = build_plan(spec, body)
        image = await render.render_async(plan.width, plan.height, plan.prompt, plan.fmt, plan.compression,
                                          plan.background == "transparent")
        return web.json_response(_envelope(plan, _items(request, plan, image)))
    except OpenAIError as exc:
        return exc.response()


async def _read_edit_form(request: web.Request) -> tuple[dict[str, str], list[bytes], bytes | None]:
    """Split a multipart edit request into form fields, ``image``/``image[]`` files and the mask."""
    if not request.content_type.startswith("multipart/"):
        raise OpenAIError(400, f"Invalid Content-Type header ({request.content_type}), expected multipart/form-data.")
    fields: dict[str, str] = {}
    images: list[bytes] = []
    mask: bytes | None = None
    meta: list[dict[str, Any]] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename is None and part.name not in ("image", "image[]", "mask"):
            fields[part.name] = await part.text()
            continue
        data = await part.read()
        meta.append({"name": part.name, "filename": part.filename,
                     "content_type": part.headers.get("Content-Type"), "size": len(data)})
        if part.name in ("image", "image[]"):
            images.append(bytes(data))
        elif part.name == "mask":
            mask = bytes(data)
    entry = request.get(LOG_ENTRY)
    if entry is not None:
        entry["form"], entry["files"] = fields, meta
    return fields, images, mask


def _auto_edit_size(spec: ModelSpec, first: tuple[int, int]) -> tuple[int, int]:
    """What ``size=auto`` (or no size) yields for an edit: input shape for generic, closest GPT size else."""
    if spec.family == "generic":
        return first
    ratio = first[0] / first[1]
    return min(((1024, 1024), (1536, 1024), (1024, 1536)), key=lambda s: abs(s[0] / s[1] - ratio))


async def edits(request: web.Request) -> web.Response:
    """``POST /openai/v1/images/edits`` (multipart: ``image``/``image[]``, optional ``mask``)."""
    try:
        check_auth(request)
        fields, images, mask = await _read_edit_form(request)
        spec = lookup(fields.get("model"), dict(fields))
        if spec.family == "dall-e-3":
            raise invalid_value("model", spec.name, ("dall-e-2", *[m for m in MODELS if m.startswith("gpt-image")]))
        kind = await faults.resolve(get_state(request), "openai", fields.get("prompt", ""), faults.COMMON_KINDS)
        if kind is not None:
            return _fault_response(request, kind, spec)
        if not images:
            raise OpenAIError(400, "Missing required parameter: 'image'.", param="image",
                              code="missing_required_parameter")
        limit = 1 if spec.family == "dall-e-2" else 16
        if len(images) > limit:
            raise OpenAIError(400, f"Invalid 'image': too many images. Expected at most {limit}, but got "
                              f"{len(images)}.", param="image", code="invalid_value")
        try:
            first = render.image_size(images[0])
            mask_size = render.image_size(mask) if mask is not None else None
        except ValueError:
            raise OpenAIError(400, "Invalid image file or mode for image 1, please check your image file.",
                              param="image", code="invalid_image_file") from None
        if mask_size is not None and mask_size != first:
            raise OpenAIError(400, f"Invalid mask image: the mask ({mask_size[0]}x{mask_size[1]}) must have the same "
                              f"dimensions as the first image ({first[0]}x{first[1]}).", param="mask",
                              code="invalid_value")
        plan = build_plan(spec, dict(fields), _auto_edit_size(spec, first))
        try:
            image = await render.render_edit_async(images[0], plan.width, plan.height, plan.prompt, plan.fmt,
                                                   plan.compression, mask)
        except ValueError:
            raise OpenAIError(400, "Invalid image file or mode for image 1, please check your image file.",
                              param="image", code="invalid_image_file") from None
        return web.json_response(_envelope(plan, _items(request, plan, image), len(images)))
    except OpenAIError as exc:
        return exc.response()


async def serve_file(request: web.Request) -> web.Response:
    """``GET /openai/files/{name}``: the bytes behind a ``url`` output."""
    found = get_state(request).files.get(request.match_info["name"])
    if found is None:
        return OpenAIError(404, "File not found or expired.", code="not_found").response()
    data, content_type = found
    return web.Response(body=data, content_type=content_type)


async def list_models(request: web.Request) -> web.Response:
    """``GET /openai/v1/models``: the ids this simulator models explicitly."""
    try:
        check_auth(request)
    except OpenAIError as exc:
        return exc.response()
    data = [{"id": m, "object": "model", "created": 1698785189, "owned_by": "system"} for m in MODELS]
    return web.json_response({"object": "list", "data": data})


def add_routes(app: web.Application) -> None:
    """Mount the OpenAI routes (API under ``/openai/v1``, served files under ``/openai/files``)."""
    app.router.add_post(f"{PREFIX}/v1/images/generations", generations)
    app.router.add_post(f"{PREFIX}/v1/images/edits", edits)
    app.router.add_get(f"{PREFIX}/v1/models", list_models)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)
