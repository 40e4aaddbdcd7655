"""Vertex AI protocol: Gemini ``:generateContent``, Imagen ``:predict`` and Veo
``:predictLongRunning`` / ``:fetchPredictOperation`` (``veo``) under
``/vertex/{v1|v1beta1}/projects/{p}/locations/{loc}/publishers/google/models/{model}:{method}``,
plus the OAuth token endpoint (``vertex_auth``).

The path is what google-genai builds in Vertex mode (google/genai/_api_client.py
``_build_request``: ``{base_url}/{api_version}/projects/{project}/locations/{location}/``
+ ``publishers/google/models/{model}:{method}``; api_version defaults to v1beta1).
Auth is ``Authorization: Bearer <token>``; only tokens this simulator issued, or the
static token ``sandbox``, are accepted. Errors use google.rpc's JSON shape.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import faults, gemini, render, veo, vertex_auth
from .gemini import GeminiError
from .gemini_sizes import MODEL_TABLES
from .imagen_sizes import IMAGEN_DIMENSIONS, IMAGEN_MODELS, MAX_SAMPLES
from .state import JSON_BODY, get_state

PREFIX = "/vertex"
STATIC_TOKEN = "sandbox"
_MIME = ("image/png", "image/jpeg")
_PERSON = ("dont_allow", "allow_adult", "allow_all")
_RAI_REASON = ("Your current safety filter threshold filtered out {n} generated images. You will not be charged "
               "for blocked images. Try rephrasing the prompt. If you think this was an error, send feedback. "
               "Support codes: 58061214")
_PROMPT_BLOCKED = ("Image generation failed with the following error: The prompt could not be submitted. This "
                   "prompt contains sensitive words that violate Google's Responsible AI practices. Try rephrasing "
                   "the prompt. If you think this was an error, send feedback. Support codes: 42876398")


def _check_auth(request: web.Request) -> None:
    """Bearer token issued by ``/vertex/oauth2/token`` or the static ``sandbox`` token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise GeminiError(401, "Request is missing required authentication credential. Expected OAuth 2 access "
                          "token, login cookie or other valid authentication credential. See "
                          "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                          "UNAUTHENTICATED", [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                               "reason": "CREDENTIALS_MISSING", "domain": "googleapis.com",
                                               "metadata": {"service": "aiplatform.googleapis.com"}}])
    if token != STATIC_TOKEN and not get_state(request).token_valid(token):
        raise GeminiError(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                          "login cookie or other valid authentication credential. See "
                          "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                          "UNAUTHENTICATED")


def _not_found(project: str, location: str, model: str) -> GeminiError:
    return GeminiError(404, f"Publisher Model `projects/{project}/locations/{location}/publishers/google/models/"
                       f"{model}` was not found or your project does not have access to it. Please ensure you are "
                       "using a valid model version. For more information, see: "
                       "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions", "NOT_FOUND")


@dataclass
class ImagenRequest:
    """A validated ``:predict`` body."""

    prompt: str
    count: int
    width: int
    height: int
    mime: str
    quality: int | None
    enhance: bool
    rai_reason: bool
    safety_attributes: bool


def _invalid(message: str) -> GeminiError:
    return GeminiError(400, message, "INVALID_ARGUMENT")


def parse_predict(model: str, body: Any) -> ImagenRequest:
    """Validate an Imagen ``:predict`` body against the model (raises GeminiError)."""
    if not isinstance(body, dict):
        raise _invalid("Invalid JSON payload received. Expected an object.")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
        raise _invalid("instances must contain exactly one instance with a prompt.")
    prompt = instances[0].get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _invalid("Prompt is required.")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise _invalid("parameters must be an object.")
    count = params.get("sampleCount", 4)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SAMPLES:
        raise _invalid(f"Invalid sample count: {count}. Sample count must be in the range [1, {MAX_SAMPLES}].")
    ratio = params.get("aspectRatio", "1:1")
    tier = params.get("sampleImageSize", "1K")
    tiers = IMAGEN_MODELS[model]
    if tier not in tiers:
        raise _invalid(f"Unsupported sampleImageSize: {tier}. Model {model} supports: {', '.join(tiers)}.")
    table = IMAGEN_DIMENSIONS[tier]
    if ratio not in table:
        raise _invalid(f"Unsupported aspect ratio: {ratio}. Supported values: {', '.join(table)}.")
    person = params.get("personGeneration", "allow_adult")
    if person not in _PERSON:
        raise _invalid(f"Unsupported personGeneration: {person}.")
    options = params.get("outputOptions") or {}
    mime = options.get("mimeType", "image/png") if isinstance(options, dict) else "image/png"
    if mime not in _MIME:
        raise _invalid(f"Unsupported output mime type: {mime}. Supported: {', '.join(_MIME)}.")
    quality = options.get("compressionQuality") if isinstance(options, dict) else None
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100):
        raise _invalid("compressionQuality must be an integer in [0, 100].")
    width, height = table[ratio]
    return ImagenRequest(prompt=prompt, count=count, width=width, height=height, mime=mime,
                         quality=quality if mime == "image/jpeg" else None,
                         enhance=bool(params.get("enhancePrompt", False)),
                         rai_reason=bool(params.get("includeRaiReason", False)),
                         safety_attributes=bool(params.get("includeSafetyAttributes", False)))


def enhanced_prompt(prompt: str) -> str:
    """The rewritten prompt Imagen's prompt enhancer returns in ``predictions[].prompt``."""
    return (f"A detailed, high-quality image of {faults.strip_directives(prompt)}, with a balanced composition, "
            "natural lighting and crisp focus.")


def _safety_attributes() -> dict[str, Any]:
    return {"categories": [], "scores": []}


async def _predict(request: web.Request, model: str) -> web.Response:
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok:
        raise _invalid("Invalid JSON payload received. Unexpected token.")
    req = parse_predict(model, body)
    kind = await faults.resolve(get_state(request), "vertex", req.prompt, faults.COMMON_KINDS | {"safety-partial"})
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"predictions": [{"mimeType": req.mime,
                                                           "bytesBase64Encoded": "iVBORw0KGgo" * 40}]})
    if kind == "429":
        raise GeminiError(429, "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
                          f"with base model: {model}. Please submit a quota increase request. "
                          "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.", "RESOURCE_EXHAUSTED")
    if kind == "500":
        raise GeminiError(500, "Internal error encountered.", "INTERNAL")
    if kind == "503":
        raise GeminiError(503, "The service is currently unavailable.", "UNAVAILABLE")
    if kind == "prompt-blocked":
        raise _invalid(_PROMPT_BLOCKED)
    filtered = {"safety": req.count, "safety-partial": 1, "noimage": req.count}.get(kind or "", 0)
    fmt = render.FORMAT_BY_MIME[req.mime]
    texts = [f"{req.prompt} #{i + 1}" if req.count > 1 else req.prompt for i in range(filtered, req.count)]
    images = await asyncio.gather(*(render.render_async(req.width, req.height, t, fmt, req.quality) for t in texts))
    predictions: list[dict[str, Any]] = []
    for data in images:
        item: dict[str, Any] = {"mimeType": req.mime, "bytesBase64Encoded": base64.b64encode(data).decode("ascii")}
        if req.enhance:
            item["prompt"] = enhanced_prompt(req.prompt)
        if req.safety_attributes:
            item["safetyAttributes"] = _safety_attributes()
        predictions.append(item)
    if filtered and req.rai_reason and kind != "noimage":
        predictions.append({"raiFilteredReason": _RAI_REASON.format(n=filtered)})
    if req.safety_attributes and predictions:
        predictions.append({"contentType": "Positive Prompt", "safetyAttributes": _safety_attributes()})
    # With every image filtered and no reason asked for, Vertex answers an empty object.
    return web.json_response({"predictions": predictions} if predictions else {})


async def models_dispatch(request: web.Request) -> web.Response:
    """Route ``.../publishers/google/models/{model}:{method}``."""
    project, location = request.match_info["project"], request.match_info["location"]
    model, _, method = request.match_info["tail"].partition(":")
    try:
        _check_auth(request)
        if method == "generateContent":
            if model not in MODEL_TABLES:
                raise _not_found(project, location, model)
            return await gemini.generate_content(request, model, "vertex")
        if method == "predict":
            if model not in IMAGEN_MODELS:
                raise _not_found(project, location, model)
            return await _predict(request, model)
        if method in ("predictLongRunning", "fetchPredictOperation"):
            if model not in veo.MODELS:
                raise _not_found(project, location, model)
            if method == "predictLongRunning":
                return await veo.vertex_predict(request, project, location, model)
            return await veo.vertex_fetch(request, project, location, model)
        raise GeminiError(404, f"Method '{method or '(none)'}' is not supported by this simulator.", "NOT_FOUND")
    except GeminiError as exc:
        return exc.response()


def add_routes(app: web.Application) -> None:
    """Mount the model methods under both API versions, and the token endpoint."""
    app.router.add_post(
        f"{PREFIX}/{{version:v1|v1beta1}}/projects/{{project}}/locations/{{location}}/publishers/google/models/"
        "{tail:.+}", models_dispatch)
    vertex_auth.add_routes(app)
