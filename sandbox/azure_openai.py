"""Azure OpenAI images protocol: ``/azure/openai/deployments/{deployment}/images/generations`` and ``/edits``.

What differs from api.openai.com (the request rules per model are OpenAI's, reused from ``openai_images``):
the model is the *deployment* in the path (its name is the operator's; here a deployment named like a known
model serves that model), every call needs ``?api-version=`` and an ``api-key`` header, errors carry Azure's
codes (``DeploymentNotFound``, a string ``"401"`` / ``"429"``), a safety block names the Responsible AI
policy in ``inner_error``, and each output item carries ``content_filter_results``.

source: learn.microsoft.com/azure/ai-foundry/openai/reference (deployment URLs, api-key, api-version)
source: learn.microsoft.com/azure/ai-foundry/openai/how-to/dall-e (image generation and edits on a deployment)
source: learn.microsoft.com/azure/ai-foundry/openai/concepts/content-filter (error body of a filtered prompt,
        content_filter_results per item)
source: github.com/openai/openai-python src/openai/lib/azure.py (the AzureOpenAI client: deployment paths,
        api-key header, api-version query)
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from . import faults, render
from .openai_images import _auto_edit_size, _envelope, _items, _read_edit_form, build_plan
from .openai_models import MODELS, OpenAIError
from .state import JSON_BODY, get_state

PREFIX = "/azure"
PROTOCOL = "azure"
# Versions the image operations answer on (data-plane inference; a newer preview is accepted too).
API_VERSIONS = ("2024-10-21", "2025-04-01-preview", "2025-03-01-preview", "preview")
_FILTER_OK = {c: {"filtered": False, "severity": "safe"} for c in ("hate", "self_harm", "sexual", "violence")}


class AzureError(OpenAIError):
    """An Azure error body: ``{"error": {"code", "message", ...}}`` (no ``type`` / ``param`` unless set)."""

    def __init__(self, status: int, code: str, message: str, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers=headers)
        self.body = {"error": {"code": code, "message": message, **(extra or {})}}


def _check(request: web.Request) -> str:
    """api-version, then the key, then the deployment, in the order Azure refuses them; the served model id."""
    version = request.query.get("api-version")
    if not version:
        raise AzureError(404, "404", "Resource not found")
    if version not in API_VERSIONS and not version.endswith("-preview"):
        raise AzureError(400, "BadRequest", "API version not supported")
    key = request.headers.get("api-key", "")
    if not key or key.startswith("bad"):
        raise AzureError(401, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                         "to provide a valid key for an active subscription and use a correct regional API endpoint "
                         "for your resource.")
    deployment = request.match_info["deployment"]
    if deployment not in MODELS or not deployment.startswith("gpt-image"):
        raise AzureError(404, "DeploymentNotFound", "The API deployment for this resource does not exist. If you "
                         "created the deployment within the last 5 minutes, please wait a moment and try again.")
    return deployment


def _fault(request: web.Request, kind: str) -> web.Response:
    version = request.query.get("api-version", "")
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"created": int(time.time()), "data": [{"b64_json": "iVBORw0KGgo" * 8}]})
    if kind == "noimage":
        return web.json_response({"created": int(time.time()), "data": []})
    if kind == "429":
        raise AzureError(429, "429", f"Requests to the Images_Generations Operation under Azure OpenAI API version "
                         f"{version} have exceeded call rate limit of your current AIServices S0 pricing tier. Please "
                         "retry after 12 seconds.", headers={"retry-after": "12", "retry-after-ms": "12000"})
    if kind in ("500", "503"):
        raise AzureError(int(kind), "InternalServerError" if kind == "500" else "ServiceUnavailable",
                         "The server had an error while processing your request. Sorry about that!")
    filtered = {**_FILTER_OK, "sexual": {"filtered": True, "severity": "high"}}
    raise AzureError(400, "content_policy_violation", "Your request was rejected as a result of our safety system. "
                     f"Your prompt may contain text that is not allowed by our safety system. (request {secrets.token_hex(8)})",
                     {"type": "invalid_request_error", "param": "prompt",
                      "inner_error": {"code": "ResponsibleAIPolicyViolation", "content_filter_results": filtered}})


def _filtered(body: dict[str, Any]) -> dict[str, Any]:
    for item in body["data"]:
        item["content_filter_results"] = dict(_FILTER_OK)
        item["prompt_filter_results"] = {**_FILTER_OK, "jailbreak": {"filtered": False, "detected": False}}
    return body


async def generations(request: web.Request) -> web.Response:
    """``POST /azure/openai/deployments/{deployment}/images/generations?api-version=...`` (JSON)."""
    try:
        model = _check(request)
        ok, body = request.get(JSON_BODY, (False, None))
        if not ok or not isinstance(body, dict):
            raise AzureError(400, "BadRequest", "The request body is not valid JSON.")
        kind = await faults.resolve(get_state(request), PROTOCOL, str(body.get("prompt", "")), faults.COMMON_KINDS)
        if kind is not None:
            return _fault(request, kind)
        plan = build_plan(MODELS[model], body)   # the body's own `model`, if any, is ignored as Azure does
        image = await render.render_async(plan.width, plan.height, plan.prompt, plan.fmt, plan.compression,
                                          plan.background == "transparent")
        return web.json_response(_filtered(_envelope(plan, _items(request, plan, image))))
    except OpenAIError as exc:
        return exc.response()


async def edits(request: web.Request) -> web.Response:
    """``POST /azure/openai/deployments/{deployment}/images/edits?api-version=...`` (multipart)."""
    try:
        model = _check(request)
        fields, images, mask = await _read_edit_form(request)
        kind = await faults.resolve(get_state(request), PROTOCOL, fields.get("prompt", ""), faults.COMMON_KINDS)
        if kind is not None:
            return _fault(request, kind)
        if not images:
            raise AzureError(400, "BadRequest", "Missing required parameter: 'image'.")
        if len(images) > 16:
            raise AzureError(400, "BadRequest", f"Too many images: at most 16, got {len(images)}.")
        try:
            first = render.image_size(images[0])
        except ValueError:
            raise AzureError(400, "invalid_image", "Invalid image file or mode for image 1.") from None
        if mask is not None and render.image_size(mask) != first:
            raise AzureError(400, "BadRequest", "The mask must have the same dimensions as the first image.")
        plan = build_plan(MODELS[model], dict(fields), _auto_edit_size(MODELS[model], first))
        image = await render.render_edit_async(images[0], plan.width, plan.height, plan.prompt, plan.fmt,
                                               plan.compression, mask)
        return web.json_response(_filtered(_envelope(plan, _items(request, plan, image), len(images))))
    except OpenAIError as exc:
        return exc.response()


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/openai/deployments/{{deployment}}/images/generations", generations)
    app.router.add_post(f"{PREFIX}/openai/deployments/{{deployment}}/images/edits", edits)
