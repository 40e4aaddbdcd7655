"""Gemini API protocol: ``POST /gemini/{v1beta|v1}/models/{model}:generateContent`` (Veo's
``:predictLongRunning`` is dispatched from here to ``veo``).

Speaks generativelanguage.googleapis.com's JSON (camelCase in, camelCase out; the
snake_case spellings the REST API also accepts are read too), returns images of
exactly the real models' dimensions, and fails in Google's error format.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import faults, render
from .gemini_sizes import (
    DEFAULT_RATIO,
    DEFAULT_TIER,
    IMAGE_TOKENS,
    MODEL_TABLES,
    TIER_ALIASES,
    closest_ratio,
    table_for,
)
from .state import JSON_BODY, get_state

PREFIX = "/gemini"
VERSIONS = ("v1beta", "v1")  # the SDK's default moved to v1; the brief's and most clients' is v1beta


class GeminiError(Exception):
    """An error answered as ``{"error": {"code", "message", "status", ["details"]}}``."""

    def __init__(self, code: int, message: str, status: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body: dict[str, Any] = {"error": {"code": code, "message": message, "status": status}}
        if details is not None:
            self.body["error"]["details"] = details

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.code)


def _invalid(message: str) -> GeminiError:
    return GeminiError(400, message, "INVALID_ARGUMENT")


def _get(obj: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    """Read a field under either JSON spelling the API accepts."""
    return obj.get(camel, obj.get(snake, default))


def _b64decode(data: str) -> bytes:
    """Proto3 JSON bytes: standard or URL-safe alphabet, padding optional (the SDK sends URL-safe)."""
    text = data.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _check_auth(request: web.Request) -> None:
    """``x-goog-api-key`` or ``?key=``: missing is 403, a ``bad...`` key is the real 400 API_KEY_INVALID."""
    key = request.headers.get("x-goog-api-key") or request.query.get("key") or ""
    if not key:
        raise GeminiError(403, "Method doesn't allow unregistered callers (callers without established identity). "
                          "Please use API Key or other form of API consumer identity to call this API.",
                          "PERMISSION_DENIED")
    if key.startswith("bad"):
        raise GeminiError(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        }])


@dataclass
class GenRequest:
    """The parts of a generateContent body the simulator acts on."""

    prompt: str
    images: list[bytes] = field(default_factory=list)
    modalities: tuple[str, ...] = ("TEXT", "IMAGE")
    aspect_ratio: str | None = None
    image_size: str | None = None
    mime_type: str = "image/png"
    quality: int | None = None
    include_thoughts: bool = False


def parse_request(body: Any) -> GenRequest:
    """Validate and extract a generateContent body (raises GeminiError)."""
    if not isinstance(body, dict):
        raise _invalid("Invalid JSON payload received. Expected an object.")
    contents = body.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not contents or not isinstance(contents, list):
        raise _invalid("* GenerateContentRequest.contents: contents is not specified\n")
    texts: list[str] = []
    images: list[bytes] = []
    for content in contents:
        if not isinstance(content, dict) or content.get("role") == "model":
            continue
        for part in content.get("parts") or []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            inline = _get(part, "inlineData", "inline_data")
            if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                try:
                    images.append(_b64decode(inline["data"]))
                except ValueError:
                    raise _invalid("Invalid value at 'contents.parts.inline_data.data' (TYPE_BYTES), "
                                   "Base64 decoding failed.") from None
    config = _get(body, "generationConfig", "generation_config", {}) or {}
    image_config = _get(config, "imageConfig", "image_config", {}) or {}
    thinking = _get(config, "thinkingConfig", "thinking_config", {}) or {}
    raw_modalities = _get(config, "responseModalities", "response_modalities") or ["TEXT", "IMAGE"]
    modalities = tuple(str(m).upper() for m in raw_modalities)
    unknown = [m for m in modalities if m not in ("TEXT", "IMAGE")]
    if unknown:
        raise _invalid(f"Unsupported response modality: {unknown[0]}. This model supports TEXT and IMAGE.")
    mime = _get(image_config, "outputMimeType", "output_mime_type") or "image/png"
    if mime not in render.FORMAT_BY_MIME:
        raise _invalid(f"Unsupported output mime type: {mime}.")
    return GenRequest(
        prompt="\n".join(texts),
        images=images,
        modalities=modalities,
        aspect_ratio=_get(image_config, "aspectRatio", "aspect_ratio"),
        image_size=_get(image_config, "imageSize", "image_size"),
        mime_type=mime,
        quality=_get(image_config, "outputCompressionQuality", "output_compression_quality"),
        include_thoughts=bool(_get(thinking, "includeThoughts", "include_thoughts", False)),
    )


def output_size(model: str, req: GenRequest) -> tuple[str, tuple[int, int]]:
    """The tier and pixel size the real model would return (raises GeminiError)."""
    table = table_for(model)
    assert table is not None
    tier = TIER_ALIASES.get(req.image_size or "", req.image_size or DEFAULT_TIER)
    if tier not in table:
        raise _invalid(f"Unsupported image size: '{req.image_size}'. Model {model} supports: "
                       f"{', '.join(table)}.")
    ratios = list(table[tier])
    if req.aspect_ratio is not None:
        if req.aspect_ratio not in table[tier]:
            raise _invalid(f"Unsupported aspect ratio: '{req.aspect_ratio}'. Model {model} supports: "
                           f"{', '.join(ratios)}.")
        ratio = req.aspect_ratio
    elif req.images:
        try:
            ratio = closest_ratio(ratios, *render.image_size(req.images[0]))
        except ValueError:
            raise _invalid("Unable to process input image. Please retry or report in "
                           "https://developers.generativeai.google/guide/troubleshooting") from None
    else:
        ratio = DEFAULT_RATIO
    return tier, table[tier][ratio]


def _usage(model: str, req: GenRequest, tier: str | None, image_out: bool, text_out: int) -> dict[str, Any]:
    """usageMetadata with the per-tier image token counts the real models bill."""
    family = MODEL_TABLES[model]
    prompt_text = len(req.prompt) // 4 + 1
    prompt_image = 258 * len(req.images)
    image_tokens = IMAGE_TOKENS[family].get(tier or DEFAULT_TIER, 1290) if image_out else 0
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_text + prompt_image,
        "candidatesTokenCount": image_tokens + text_out,
        "totalTokenCount": prompt_text + prompt_image + image_tokens + text_out,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_text}]
        + ([{"modality": "IMAGE", "tokenCount": prompt_image}] if prompt_image else []),
    }
    if image_tokens:
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": image_tokens}]
    if family != "gemini-2.5-flash-image":  # Gemini 3 image models always think
        usage["thoughtsTokenCount"] = 180
        usage["totalTokenCount"] += 180
    return usage


def _envelope(model: str, **fields: Any) -> dict[str, Any]:
    return {**fields, "modelVersion": model, "responseId": secrets.token_urlsafe(16)}


def _fault_response(request: web.Request, kind: str, model: str, req: GenRequest, protocol: str) -> web.Response:
    """Answer an injected fault the way the Gemini API (or Vertex AI) fails or blocks."""
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response(_envelope(model, candidates=[{"content": {"role": "model", "parts": [
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo" * 40}}]}, "finishReason": "STOP"}]))
    if kind == "429" and protocol == "vertex":
        raise GeminiError(429, "Resource exhausted. Please try again later. Please refer to "
                          "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
                          "RESOURCE_EXHAUSTED")
    if kind == "429":
        raise GeminiError(429, "You exceeded your current quota, please check your plan and billing details. For more "
                          "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
                          "RESOURCE_EXHAUSTED", [
                              {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                                  "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                                  "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                                  "quotaDimensions": {"location": "global", "model": model}, "quotaValue": "10"}]},
                              {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"},
                          ])
    if kind == "500":
        raise GeminiError(500, "An internal error has occurred. Please retry or report in "
                          "https://developers.generativeai.google/guide/troubleshooting", "INTERNAL")
    if kind == "503":
        raise GeminiError(503, "The model is overloaded. Please try again later.", "UNAVAILABLE")
    usage = _usage(model, req, None, False, 0)
    if kind == "prompt-blocked":
        return web.json_response(_envelope(model, promptFeedback={"blockReason": "PROHIBITED_CONTENT"},
                                           usageMetadata=usage))
    if kind == "safety":
        return web.json_response(_envelope(model, candidates=[{
            "finishReason": "IMAGE_SAFETY", "index": 0,
            "finishMessage": "Unable to show the generated image. The image was filtered out because it violated "
                             "Google's Generative AI Prohibited Use policy."}], usageMetadata=usage))
    text = "I can't generate that image right now, but here is a description instead: " + faults.strip_directives(
        req.prompt)[:200]
    return web.json_response(_envelope(model, candidates=[{
        "content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        usageMetadata=_usage(model, req, None, False, len(text) // 4 + 1)))  # noimage


async def _success(model: str, req: GenRequest) -> dict[str, Any]:
    """Render (off the loop) and build a normal generateContent answer."""
    parts: list[dict[str, Any]] = []
    if req.include_thoughts:
        parts.append({"text": "**Composing the scene**\nI'm planning the layout and colours before rendering.",
                      "thought": True})
    text = f"Here is the image you asked for: {faults.strip_directives(req.prompt)[:120]}"
    tier: str | None = None
    if "TEXT" in req.modalities:
        parts.append({"text": text})
    if "IMAGE" in req.modalities:
        tier, (width, height) = output_size(model, req)
        fmt = render.FORMAT_BY_MIME[req.mime_type]
        if req.images:
            try:
                data = await render.render_edit_async(req.images[0], width, height, req.prompt, fmt, req.quality)
            except ValueError:
                raise _invalid("Unable to process input image. Please retry or report in "
                               "https://developers.generativeai.google/guide/troubleshooting") from None
        else:
            data = await render.render_async(width, height, req.prompt, fmt, req.quality)
        part: dict[str, Any] = {"inlineData": {"mimeType": req.mime_type, "data": base64.b64encode(data).decode()}}
        if MODEL_TABLES[model] != "gemini-2.5-flash-image":
            part["thoughtSignature"] = base64.b64encode(secrets.token_bytes(24)).decode()
        parts.append(part)
    text_tokens = len(text) // 4 + 1 if "TEXT" in req.modalities else 0
    return _envelope(model, candidates=[{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                                         "index": 0}], usageMetadata=_usage(model, req, tier, tier is not None,
                                                                            text_tokens))


async def models_dispatch(request: web.Request) -> web.Response:
    """Route ``models/{model}:{method}`` (aiohttp cannot split on the colon itself)."""
    version = request.match_info["version"]
    model, _, method = request.match_info["tail"].partition(":")
    try:
        _check_auth(request)
        if method == "predictLongRunning":
            from . import veo  # imported here: veo builds on this module

            return await veo.gemini_predict(request, model)
        if method != "generateContent":
            raise GeminiError(404, f"Method '{method or '(none)'}' is not supported by this simulator.", "NOT_FOUND")
        if model not in MODEL_TABLES:
            raise GeminiError(404, f"models/{model} is not found for API version {version}, or is not supported for "
                              "generateContent. Call ListModels to see the list of available models and their "
                              "supported methods.", "NOT_FOUND")
        return await generate_content(request, model, "gemini")
    except GeminiError as exc:
        return exc.response()


async def generate_content(request: web.Request, model: str, protocol: str) -> web.Response:
    """Parse, apply faults and answer one generateContent call (raises GeminiError).

    Shared with the Vertex AI simulator: the body and response are the same there.
    """
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok:
        raise _invalid("Invalid JSON payload received. Unexpected token.")
    req = parse_request(body)
    # Image endpoints express the common kinds (Vertex also consumes safety-partial here).
    kinds = faults.COMMON_KINDS | ({"safety-partial"} if protocol == "vertex" else frozenset())
    kind = await faults.resolve(get_state(request), protocol, req.prompt, kinds)
    if kind is not None and kind in faults.COMMON_KINDS:
        return _fault_response(request, kind, model, req, protocol)
    answer = await _success(model, req)
    if protocol == "vertex":  # Vertex also stamps the response
        answer["createTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return web.json_response(answer)


def add_routes(app: web.Application) -> None:
    """Mount ``models/{model}:method`` under every served API version."""
    for version in VERSIONS:
        app.router.add_post(f"{PREFIX}/{{version:{version}}}/models/{{tail:.+}}", models_dispatch)
