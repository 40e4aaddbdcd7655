"""Veo video generation as long-running operations, on the Gemini API and on Vertex AI.

Gemini API (generativelanguage.googleapis.com, ``x-goog-api-key`` or ``?key=``):

* ``POST /gemini/v1beta/models/{model}:predictLongRunning`` ``{"instances": [{"prompt",
  "image"?: {"bytesBase64Encoded", "mimeType"}}], "parameters": {"aspectRatio",
  "resolution", "durationSeconds", "negativePrompt", "seed", "personGeneration",
  "sampleCount", "generateAudio"}}`` -> ``{"name": "models/{model}/operations/{id}"}``;
* ``GET /gemini/v1beta/{name}`` -> ``{"name", "done": false}``, then ``{"name", "done":
  true, "response": {"@type": "...PredictLongRunningResponse", "generateVideoResponse":
  {"generatedSamples": [{"video": {"uri"}}]}}}``;
* the ``uri`` is ``.../v1beta/files/{id}:download?alt=media`` and needs the API key like
  every other call. google-genai's ``files.download`` keeps only ``[a-z0-9]+`` after
  ``files/`` of an ``https://`` uri (``_transformers.t_file_name``), so file ids are
  lowercase alphanumerics.

Vertex AI (OAuth bearer, checked by ``vertex``):

* ``POST .../publishers/google/models/{model}:predictLongRunning`` (same body) ->
  ``{"name": "projects/{p}/locations/{l}/publishers/google/models/{model}/operations/{uuid}"}``;
* ``POST .../models/{model}:fetchPredictOperation`` ``{"operationName"}`` -> the operation;
  done, its ``response`` is ``{"@type": "type.googleapis.com/cloud.ai.large_models.vision.
  GenerateVideoResponse", "raiMediaFilteredCount", "videos": [{"bytesBase64Encoded",
  "mimeType"}]}`` (``gcsUri`` instead of bytes when ``parameters.storageUri`` is set).

Shapes as google-genai 3.x reads them (``_operations_converters``: ``response.
generateVideoResponse.generatedSamples[].video.uri`` on the Gemini API, ``response.videos[]
{gcsUri|bytesBase64Encoded, mimeType}`` on Vertex, ``raiMediaFilteredCount`` /
``raiMediaFilteredReasons`` on both; ``operations.get`` GETs the name on the Gemini API
and POSTs ``{model resource}:fetchPredictOperation`` on Vertex). A blocked video is not
an error: the operation is done with ``raiMediaFiltered*`` and no samples; a failed one is
done with a google.rpc.Status ``error``.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import faults, jobs, render, video
from .gemini import GeminiError, _b64decode
from .gemini import _check_auth as gemini_check_auth
from .jobs import Job
from .state import JSON_BODY, LOG_ENTRY, get_state

GEMINI_RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
VERTEX_RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
ASPECTS = ("16:9", "9:16")
# Veo's output frames: 720p / 1080p / 4k in 16:9 or 9:16 (ai.google.dev/gemini-api/docs/video;
# the Vertex model cards list 720/1080 and 4K for 3.1).
DIMENSIONS: dict[str, dict[str, tuple[int, int]]] = {
    "720p": {"16:9": (1280, 720), "9:16": (720, 1280)},
    "1080p": {"16:9": (1920, 1080), "9:16": (1080, 1920)},
    "4k": {"16:9": (3840, 2160), "9:16": (2160, 3840)},
}
DEFAULT_ASPECT, DEFAULT_RESOLUTION, DEFAULT_SECONDS = "16:9", "720p", 8
MAX_SAMPLES = 4
_PERSON = ("dont_allow", "allow_adult", "allow_all")
# UNVERIFIED wording of a filtered video's reason.
RAI_REASON = ("Your prompt or the generated video may violate our policies, so the video was filtered out. You "
              "will not be charged for blocked videos. Try rephrasing the prompt. Support codes: 58061214")
PROMPT_BLOCKED = ("The prompt could not be submitted. This prompt contains sensitive words that violate Google's "
                  "Responsible AI practices. Try rephrasing the prompt. If you think this was an error, send "
                  "feedback. Support codes: 42876398")


@dataclass(frozen=True)
class VeoModel:
    """What one Veo model accepts."""

    durations: tuple[int, ...]
    resolutions: tuple[str, ...]


_V31 = VeoModel((4, 6, 8), ("720p", "1080p", "4k"))
_V31_LITE = VeoModel((4, 6, 8), ("720p", "1080p"))
_V30 = VeoModel((4, 6, 8), ("720p", "1080p"))
_V20 = VeoModel((5, 6, 7, 8), ("720p",))
# Gemini API ids (ai.google.dev/gemini-api/docs/video "Model versions") and Vertex ids
# (docs.cloud.google.com .../models/veo/3-1-generate, .../3-0-generate-001: 4, 6 or 8 s).
MODELS: dict[str, VeoModel] = {
    "veo-3.1-generate-preview": _V31,
    "veo-3.1-fast-generate-preview": _V31,
    "veo-3.1-generate-001": _V31,
    "veo-3.1-fast-generate-001": _V31,
    "veo-3.1-lite-generate-preview": _V31_LITE,
    "veo-3.1-lite-generate-001": _V31_LITE,
    "veo-3.0-generate-001": _V30,
    "veo-3.0-fast-generate-001": _V30,
    "veo-3.0-generate-preview": _V30,
    "veo-3.0-fast-generate-preview": _V30,
    "veo-2.0-generate-001": _V20,
}


def table_for(model: str) -> dict[str, dict[str, tuple[int, int]]] | None:
    """The resolution -> aspect ratio -> frame table of a Veo model id (None if not Veo),
    in the shape ``gemini_sizes.table_for`` uses for image models."""
    spec = MODELS.get(model)
    return {tier: dict(DIMENSIONS[tier]) for tier in spec.resolutions} if spec else None


@dataclass(frozen=True)
class VeoPlan:
    """A validated ``:predictLongRunning`` body."""

    model: str
    prompt: str
    width: int
    height: int
    seconds: int
    count: int
    storage_uri: str | None


def _invalid(message: str) -> GeminiError:
    return GeminiError(400, message, "INVALID_ARGUMENT")


def _int_param(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)  # proto3 JSON allows integers as strings
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"Invalid value at 'parameters.{name}' (TYPE_INT32), \"{value}\"")
    return value


def _check_image(image: Any, api: str) -> None:
    """``instances[0].image``: inline bytes (both APIs) or a ``gcsUri`` (Vertex only)."""
    if not isinstance(image, dict):
        raise _invalid("instances[0].image must be an object.")
    inline = image.get("inlineData") if isinstance(image.get("inlineData"), dict) else None
    data = image.get("bytesBase64Encoded") or (inline or {}).get("data")
    if isinstance(data, str):
        try:
            render.image_size(_b64decode(data))
        except ValueError:
            raise _invalid("Unable to process input image. Please retry or report in "
                           "https://developers.generativeai.google/guide/troubleshooting") from None
        return
    if image.get("gcsUri") and api == "vertex":
        return
    raise _invalid("Input image must be provided as bytesBase64Encoded." if api == "gemini"
                   else "Input image must have either bytesBase64Encoded or gcsUri.")


def parse(model: str, body: Any, api: str) -> VeoPlan:
    """Validate a ``:predictLongRunning`` body against the model (raises GeminiError).

    Error wording is UNVERIFIED; the rules are the documented ones, including the Gemini
    API's "durationSeconds must be 8 with 1080p and 4k" (ai.google.dev/gemini-api/docs/video).
    """
    spec = MODELS[model]
    if not isinstance(body, dict):
        raise _invalid("Invalid JSON payload received. Expected an object.")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
        raise _invalid("instances must contain exactly one instance.")
    instance = instances[0]
    prompt = instance.get("prompt") if isinstance(instance.get("prompt"), str) else ""
    if instance.get("image") is not None:
        _check_image(instance["image"], api)
    elif not prompt.strip():
        raise _invalid("A prompt is required for text-to-video generation.")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise _invalid("parameters must be an object.")
    aspect = params.get("aspectRatio", DEFAULT_ASPECT)
    if aspect not in ASPECTS:
        raise _invalid(f"Aspect ratio {aspect} is not supported. Supported aspect ratios: {', '.join(ASPECTS)}.")
    resolution = str(params.get("resolution", DEFAULT_RESOLUTION)).lower()
    if resolution not in spec.resolutions:
        raise _invalid(f"Resolution {params.get('resolution')} is not supported by {model}. Supported resolutions: "
                       f"{', '.join(spec.resolutions)}.")
    seconds = _int_param(params, "durationSeconds", DEFAULT_SECONDS)
    if seconds not in spec.durations:
        low, high = min(spec.durations), max(spec.durations)
        raise _invalid(f"The number value for `durationSeconds` is out of bound or unsupported: {seconds}. {model} "
                       f"supports {', '.join(map(str, spec.durations))} seconds (between {low} and {high}).")
    if api == "gemini" and resolution in ("1080p", "4k") and seconds != 8:
        raise _invalid(f"durationSeconds must be 8 when resolution is {resolution}.")
    count = _int_param(params, "sampleCount", 1)
    if not 1 <= count <= MAX_SAMPLES:
        raise _invalid(f"sampleCount must be between 1 and {MAX_SAMPLES}.")
    person = params.get("personGeneration")
    if person is not None and person not in _PERSON:
        raise _invalid(f"Unsupported personGeneration: {person}. Supported values: {', '.join(_PERSON)}.")
    storage = params.get("storageUri")
    if storage is not None and (api == "gemini" or not isinstance(storage, str) or not storage.startswith("gs://")):
        raise _invalid("storageUri is not supported by the Gemini API." if api == "gemini"
                       else "storageUri must be a Cloud Storage URI (gs://bucket/path).")
    width, height = DIMENSIONS[resolution][aspect]
    return VeoPlan(model=model, prompt=prompt, width=width, height=height, seconds=seconds, count=count,
                   storage_uri=storage)


def _plan_of(job: Job) -> VeoPlan:
    plan = job.params["plan"]
    assert isinstance(plan, VeoPlan)
    return plan


def _fault(request: web.Request, kind: str, model: str, api: str) -> web.Response:
    """Create-time faults in Google's error format (raises GeminiError for the HTTP ones)."""
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"name": f"models/{model}/operations/{jobs.new_id(12)}" + "x" * 60})
    if kind == "429":
        if api == "vertex":
            raise GeminiError(429, "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_"
                              f"model with base model: {model}. Please submit a quota increase request. "
                              "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.",
                              "RESOURCE_EXHAUSTED")
        raise GeminiError(429, "You exceeded your current quota, please check your plan and billing details. For more "
                          "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
                          "RESOURCE_EXHAUSTED", [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                                  "retryDelay": "1s"}])
    if kind == "500":
        raise GeminiError(500, "Internal error encountered.", "INTERNAL")
    if kind == "503":
        raise GeminiError(503, "The model is overloaded. Please try again later.", "UNAVAILABLE")
    raise _invalid(PROMPT_BLOCKED)  # prompt-blocked


async def _create(request: web.Request, model: str, api: str, name_prefix: str) -> web.Response:
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok:
        raise _invalid("Invalid JSON payload received. Unexpected token.")
    instances = body.get("instances") if isinstance(body, dict) else None
    first = instances[0] if isinstance(instances, list) and instances and isinstance(instances[0], dict) else {}
    prompt = first.get("prompt") if isinstance(first.get("prompt"), str) else ""
    state = get_state(request)
    kind = await faults.resolve(state, api, prompt, faults.VIDEO_KINDS)
    if kind is not None and kind not in ("safety", "fail"):
        return _fault(request, kind, model, api)
    plan = parse(model, body, api)
    op_id = jobs.new_id(12) if api == "gemini" else str(uuid.uuid4())
    job = Job(id=op_id, protocol=f"veo-{api}", model=model, prompt=plan.prompt,
              params={"plan": plan, "name": f"{name_prefix}/operations/{op_id}"},
              job_ms=jobs.job_duration_ms(state, plan.prompt, video=True), fault=kind)
    state.jobs.put(job.id, job)
    entry = request.get(LOG_ENTRY)
    if entry is not None:
        entry["operation"] = job.params["name"]
    return web.json_response({"name": job.params["name"]})


def _labels(plan: VeoPlan) -> list[str]:
    return [f"{plan.prompt} #{i + 1}" if plan.count > 1 else plan.prompt for i in range(plan.count)]


def _error_status() -> dict[str, Any]:
    """google.rpc.Status of a failed generation (code 13 = INTERNAL). UNVERIFIED wording."""
    return {"code": 13, "message": "Video generation failed due to an internal error. Please try again."}


# --- Gemini API ---------------------------------------------------------------------------

async def gemini_predict(request: web.Request, model: str) -> web.Response:
    """``POST /gemini/{version}/models/{model}:predictLongRunning`` (auth already checked)."""
    if model not in MODELS:
        raise GeminiError(404, f"models/{model} is not found for API version {request.match_info['version']}, or is "
                          "not supported for predictLongRunning. Call ListModels to see the list of available "
                          "models and their supported methods.", "NOT_FOUND")
    return await _create(request, model, "gemini", f"models/{model}")


def _file_id(job: Job, index: int) -> str:
    return f"{job.id}{index}"  # job ids are 12 lowercase alphanumerics, so the index is the tail


def gemini_operation_json(request: web.Request, job: Job) -> dict[str, Any]:
    name = job.params["name"]
    if job.phase() != "done":
        return {"name": name, "done": False}
    if job.fault == "fail":
        return {"name": name, "done": True, "error": _error_status()}
    plan = _plan_of(job)
    if job.fault == "safety":
        result: dict[str, Any] = {"raiMediaFilteredCount": plan.count, "raiMediaFilteredReasons": [RAI_REASON]}
    else:
        root = f"{request.scheme}://{request.host}/gemini/{request.match_info['version']}/files"
        result = {"generatedSamples": [{"video": {"uri": f"{root}/{_file_id(job, i)}:download?alt=media"}}
                                       for i in range(plan.count)]}
    return {"name": name, "done": True, "response": {"@type": GEMINI_RESPONSE_TYPE, "generateVideoResponse": result}}


async def gemini_get_operation(request: web.Request) -> web.Response:
    """``GET /gemini/{version}/models/{model}/operations/{op}``."""
    try:
        gemini_check_auth(request)
        model, op_id = request.match_info["model"], request.match_info["op"]
        job = get_state(request).jobs.get(op_id)
        if not isinstance(job, Job) or job.protocol != "veo-gemini" or job.model != model:
            raise GeminiError(404, f"Operation models/{model}/operations/{op_id} not found.", "NOT_FOUND")
        return web.json_response(gemini_operation_json(request, job))
    except GeminiError as exc:
        return exc.response()


async def gemini_download(request: web.Request) -> web.Response:
    """``GET /gemini/{version}/files/{id}:download?alt=media``: a generated video (API key required)."""
    try:
        gemini_check_auth(request)
        file_id, _, method = request.match_info["name"].partition(":")
        job = get_state(request).jobs.get(file_id[:12])
        index = int(file_id[12:]) if file_id[12:].isdigit() else -1
        if (method != "download" or not isinstance(job, Job) or job.protocol != "veo-gemini"
                or job.phase() != "done" or job.fault is not None or not 0 <= index < _plan_of(job).count):
            raise GeminiError(404, f"File {file_id} not found.", "NOT_FOUND")  # UNVERIFIED wording
        plan = _plan_of(job)
        async with job.render_lock:
            data = await video.render_mp4_async(plan.width, plan.height, plan.seconds, _labels(plan)[index])
        return web.Response(body=data, content_type=video.MIME_MP4)
    except GeminiError as exc:
        return exc.response()


# --- Vertex AI ----------------------------------------------------------------------------

def _vertex_resource(project: str, location: str, model: str) -> str:
    return f"projects/{project}/locations/{location}/publishers/google/models/{model}"


async def vertex_predict(request: web.Request, project: str, location: str, model: str) -> web.Response:
    """``POST .../models/{model}:predictLongRunning`` (auth and model already checked)."""
    return await _create(request, model, "vertex", _vertex_resource(project, location, model))


async def _vertex_operation_json(job: Job) -> dict[str, Any]:
    name = job.params["name"]
    if job.phase() != "done":
        return {"name": name, "done": False}
    if job.fault == "fail":
        return {"name": name, "done": True, "error": _error_status()}
    plan = _plan_of(job)
    result: dict[str, Any] = {"@type": VERTEX_RESPONSE_TYPE}
    if job.fault == "safety":
        result.update(raiMediaFilteredCount=plan.count, raiMediaFilteredReasons=[RAI_REASON])
    elif plan.storage_uri is not None:
        root = plan.storage_uri.rstrip("/")
        result.update(raiMediaFilteredCount=0, videos=[{"gcsUri": f"{root}/{job.id}/sample_{i}.mp4",
                                                        "mimeType": video.MIME_MP4} for i in range(plan.count)])
    else:
        async with job.render_lock:
            if job.outputs is None:
                datas = await asyncio.gather(*(video.render_mp4_async(plan.width, plan.height, plan.seconds, text)
                                               for text in _labels(plan)))
                job.outputs = [base64.b64encode(d).decode("ascii") for d in datas]
        result.update(raiMediaFilteredCount=0, videos=[{"bytesBase64Encoded": b64, "mimeType": video.MIME_MP4}
                                                       for b64 in job.outputs])
    return {"name": name, "done": True, "response": result}


async def vertex_fetch(request: web.Request, project: str, location: str, model: str) -> web.Response:
    """``POST .../models/{model}:fetchPredictOperation`` ``{"operationName"}``."""
    ok, body = request.get(JSON_BODY, (False, None))
    name = body.get("operationName") if ok and isinstance(body, dict) else None
    if not isinstance(name, str) or not name:
        raise _invalid("operationName is required.")
    prefix = f"{_vertex_resource(project, location, model)}/operations/"
    job = get_state(request).jobs.get(name[len(prefix):]) if name.startswith(prefix) else None
    if not isinstance(job, Job) or job.protocol != "veo-vertex" or job.params["name"] != name:
        raise GeminiError(404, f"Operation {name} not found.", "NOT_FOUND")  # UNVERIFIED wording
    return web.json_response(await _vertex_operation_json(job))


def add_routes(app: web.Application) -> None:
    """The Gemini API's GET routes (operations, file downloads); POSTs arrive via the
    ``models/{model}:method`` dispatchers of ``gemini`` and ``vertex``."""
    app.router.add_get("/gemini/{version:v1beta|v1}/models/{model}/operations/{op}", gemini_get_operation)
    app.router.add_get("/gemini/{version:v1beta|v1}/files/{name}", gemini_download)
