"""Runway's developer API: tasks under ``/runway/v1/...``, output files under ``/runway/files/...``
(standing in for Runway's CloudFront output hosts).

Wire details follow the official ``runwayml`` SDK (5.x, generated from Runway's OpenAPI spec:
``resources/text_to_image.py``, ``text_to_video.py``, ``image_to_video.py``, ``tasks.py``,
``types/*_create_params.py``, ``types/task_retrieve_response.py``, ``lib/polling.py``) and
docs.dev.runwayml.com (api-details/errors, api-details/task-failures):

* every call carries ``Authorization: Bearer <key>`` and ``X-Runway-Version: 2024-11-06`` (the SDK's
  default ``runway_version``);
* ``POST /v1/text_to_image`` ``{model: gen4_image | gen4_image_turbo, promptText, ratio, referenceImages?,
  seed?}``; ``ratio`` is a pixel size written ``W:H`` (16 of them, 720p and 1080p families);
  gen4_image_turbo needs one to three ``referenceImages``;
* ``POST /v1/image_to_video`` ``{model: gen4_turbo | gen4.5 | veo3.1 | veo3.1_fast, promptImage, promptText?, ratio,
  duration, seed?}`` (gen4_turbo: 5 or 10 s, default 10; gen4.5: 2 to 10 s; veo: 4 / 6 / 8 s at 1280:720, 720:1280,
  1920:1080, 1080:1920, ``audio``); ``POST /v1/text_to_video`` ``{model: gen4.5 | veo3.1 | veo3.1_fast, promptText,
  ratio, duration}`` (gen4.5: 1280:720 | 720:1280); each answers ``{"id", "estimatedCost": {"credits"}}``;
* ``GET /v1/tasks/{id}``: ``PENDING`` -> ``RUNNING`` (``progress`` 0..1) -> ``SUCCEEDED`` (``output``: URLs) |
  ``FAILED`` (``failure``, ``failureCode`` such as ``SAFETY.INPUT.TEXT``, ``SAFETY.OUTPUT.VIDEO``,
  ``INTERNAL.BAD_OUTPUT.CODE01``); ``DELETE /v1/tasks/{id}`` cancels (or deletes) it, 204;
* errors: 400 ``{"error": "...", "issues": [...]}``, 401, 404, 429, 502/503/504 (may retry).

Faults: ``429``, ``500`` (as 502 "shedding load"), ``503``, ``drop``, ``malformed`` answer the submit;
``safety`` / ``prompt-blocked`` / ``fail`` / ``noimage`` end the task FAILED with the matching failure code.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import faults, jobs, render, video
from .jobs import Job
from .state import JSON_BODY, get_state, serve_file

PREFIX = "/runway"
JOB_PROTOCOL = "runway"
API_VERSION = "2024-11-06"
MAX_PROMPT_CHARS = 1000            # "up to 1000 characters (measured in UTF-16 code units)"
MAX_DATA_URI_BYTES = 5 * 1024 * 1024  # "base64 data URI (... up to 5MB)"
IMAGE_RATIOS: tuple[str, ...] = (
    "1024:1024", "1080:1080", "1168:880", "1360:768", "1440:1080", "1080:1440", "1808:768", "1920:1080",
    "1080:1920", "2112:912", "1280:720", "720:1280", "720:720", "960:720", "720:960", "1680:720")
I2V_RATIOS = ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672")
T2V_RATIOS = ("1280:720", "720:1280")
VEO_RATIOS = ("1280:720", "720:1280", "1080:1920", "1920:1080")   # Google's Veo 3.1 served by Runway
VEO_MODELS = ("veo3.1", "veo3.1_fast")
# credits per image / per second (docs.dev.runwayml.com/guides/pricing; 1 credit = $0.01)
IMAGE_CREDITS = {"gen4_image": (5, 8), "gen4_image_turbo": (2, 2)}   # (720p family, 1080p family)
VIDEO_CREDITS_PER_S = {"gen4_turbo": 5, "gen4.5": 12, "veo3.1": 40, "veo3.1_fast": 15}   # veo: UNVERIFIED
FAILURES: dict[str, tuple[str, str]] = {
    "safety": ("SAFETY.OUTPUT.IMAGE", "The output was rejected by content moderation."),
    "prompt-blocked": ("SAFETY.INPUT.TEXT", "The prompt text was rejected by content moderation."),
    "fail": ("INTERNAL.BAD_OUTPUT.CODE01", "An internal error occurred while generating the output."),
    "noimage": ("INTERNAL.BAD_OUTPUT.CODE01", "An internal error occurred while generating the output."),
}


class RunwayError(Exception):
    def __init__(self, status: int, message: str, issues: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.issues = status, message, issues

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.message}
        if self.issues is not None:
            body["issues"] = self.issues
        return web.json_response(body, status=self.status)


def _invalid(field: str, message: str) -> RunwayError:
    return RunwayError(400, "Validation of body failed", [{"path": [field], "message": message}])


@dataclass(frozen=True)
class Plan:
    """A validated task: what to render and what it costs."""

    kind: str          # "image" | "video"
    model: str
    prompt: str
    width: int
    height: int
    seconds: int
    credits: int


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_headers(request: web.Request) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or token.startswith("bad"):
        raise RunwayError(401, "Invalid API key. Keys start with key_ and are passed as Authorization: Bearer <key>.")
    version = request.headers.get("X-Runway-Version")
    if version != API_VERSION:  # UNVERIFIED wording; the header itself is required (SDK: runway_version)
        raise RunwayError(400, f"The X-Runway-Version header is missing or not a supported version ({API_VERSION}).")


def _body(request: web.Request) -> dict[str, Any]:
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        raise RunwayError(400, "The request body must be a JSON object.")
    return body


def _prompt(body: dict[str, Any], required: bool) -> str:
    text = body.get("promptText")
    if text is None and not required:
        return ""
    if not isinstance(text, str) or not text.strip():
        raise _invalid("promptText", "Expected a non-empty string")
    if len(text.encode("utf-16-le")) // 2 > MAX_PROMPT_CHARS:
        raise _invalid("promptText", f"String must contain at most {MAX_PROMPT_CHARS} character(s)")
    return text


def _ratio(body: dict[str, Any], allowed: tuple[str, ...]) -> tuple[int, int]:
    ratio = body.get("ratio")
    if ratio not in allowed:
        raise _invalid("ratio", "Invalid enum value. Expected " + " | ".join(f"'{r}'" for r in allowed)
                       + f", received '{ratio}'")
    w, h = str(ratio).split(":")
    return int(w), int(h)


def _asset(field: str, uri: Any) -> None:
    """An https URL (not fetched here) or a base64 data URI of an image, up to 5 MB."""
    if not isinstance(uri, str) or not uri:
        raise _invalid(field, "Expected a string")
    if uri.startswith("https://"):
        return
    if not uri.startswith("data:"):
        raise RunwayError(400, f"{field}: Only HTTPS URLs are allowed.")
    head, _, data = uri.partition(",")
    if not head.startswith("data:image/") or ";base64" not in head:
        raise RunwayError(400, f"{field}: Unsupported asset type. Data URIs must include the content type of the value they encode.")
    if len(uri) > MAX_DATA_URI_BYTES:
        raise RunwayError(400, f"{field}: The data URI is larger than 5MB.")
    try:
        render.image_size(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise RunwayError(400, f"{field}: Invalid data URI.") from None


def _prompt_image(body: dict[str, Any]) -> None:
    image = body.get("promptImage")
    if isinstance(image, list):
        if not image or not all(isinstance(i, dict) and i.get("position") in ("first", "last") for i in image):
            raise _invalid("promptImage", "Expected a list of {uri, position}")
        for i in image:
            _asset("promptImage", i.get("uri"))
        return
    _asset("promptImage", image)


def _duration(body: dict[str, Any], allowed: range | tuple[int, ...], default: int | None) -> int:
    value = body.get("duration", default)
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise _invalid("duration", f"Expected an integer in {list(allowed)}")
    return value


def _seed(body: dict[str, Any]) -> None:
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 4294967295):
        raise _invalid("seed", "Expected an integer from 0 to 4294967295")


def plan_image(body: dict[str, Any]) -> Plan:
    model = body.get("model")
    if model not in IMAGE_CREDITS:
        raise _invalid("model", "Invalid enum value. Expected 'gen4_image' | 'gen4_image_turbo'")
    prompt = _prompt(body, required=True)
    width, height = _ratio(body, IMAGE_RATIOS)
    refs = body.get("referenceImages")
    if refs is not None or model == "gen4_image_turbo":
        if not isinstance(refs, list) or not 1 <= len(refs) <= 3:
            raise _invalid("referenceImages", "Expected one to three reference images")
        for ref in refs:
            _asset("referenceImages", ref.get("uri") if isinstance(ref, dict) else None)
    _seed(body)
    low, high = IMAGE_CREDITS[str(model)]
    return Plan("image", str(model), prompt, width, height, 0, high if max(width, height) >= 1360 else low)


def _veo(body: dict[str, Any], model: str, prompt: str) -> Plan:
    """veo3.1 / veo3.1_fast: four frames, 4 / 6 / 8 s (default 8), audio on unless ``audio: false``."""
    width, height = _ratio(body, VEO_RATIOS)
    seconds = _duration(body, (4, 6, 8), 8)
    if "audio" in body and not isinstance(body["audio"], bool):
        raise _invalid("audio", "Expected a boolean")
    _seed(body)
    return Plan("video", model, prompt, width, height, seconds, VIDEO_CREDITS_PER_S[model] * seconds)


def plan_image_to_video(body: dict[str, Any]) -> Plan:
    model = body.get("model")
    if model not in VIDEO_CREDITS_PER_S:
        raise _invalid("model", "Invalid enum value. Expected 'gen4_turbo' | 'gen4.5' | 'veo3.1' | 'veo3.1_fast'")
    _prompt_image(body)
    if model in VEO_MODELS:
        return _veo(body, str(model), _prompt(body, required=False))
    prompt = _prompt(body, required=model == "gen4.5")
    width, height = _ratio(body, I2V_RATIOS)
    seconds = _duration(body, (5, 10), 10) if model == "gen4_turbo" else _duration(body, range(2, 11), None)
    _seed(body)
    return Plan("video", str(model), prompt, width, height, seconds, VIDEO_CREDITS_PER_S[str(model)] * seconds)


def plan_text_to_video(body: dict[str, Any]) -> Plan:
    model = body.get("model")
    if model in VEO_MODELS:
        return _veo(body, str(model), _prompt(body, required=True))
    if model != "gen4.5":
        raise _invalid("model", "Invalid enum value. Expected 'gen4.5' | 'veo3.1' | 'veo3.1_fast'")
    prompt = _prompt(body, required=True)
    width, height = _ratio(body, T2V_RATIOS)
    seconds = _duration(body, range(2, 11), None)
    _seed(body)
    return Plan("video", "gen4.5", prompt, width, height, seconds, VIDEO_CREDITS_PER_S["gen4.5"] * seconds)


def _fault_response(request: web.Request, kind: str) -> web.Response | None:
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"id": str(uuid.uuid4())})
    if kind == "429":
        return RunwayError(429, "You have exceeded the rate limit for this organization.").response()
    if kind == "500":
        return RunwayError(502, "Runway is shedding load. Please retry.").response()
    if kind == "503":
        return RunwayError(503, "Runway is shedding load. Please retry.").response()
    return None


async def _create(request: web.Request, planner: Any) -> web.Response:
    try:
        _check_headers(request)
        body = _body(request)
        state = get_state(request)
        prompt = body.get("promptText") if isinstance(body.get("promptText"), str) else ""
        kind = await faults.resolve(state, "runway", prompt, faults.VIDEO_KINDS | {"noimage"})
        if kind is not None and (early := _fault_response(request, kind)) is not None:
            return early
        plan = planner(body)
    except RunwayError as err:
        return err.response()
    job = Job(id=str(uuid.uuid4()), protocol=JOB_PROTOCOL, model=plan.model, prompt=faults.strip_directives(plan.prompt),
              params={"plan": plan}, job_ms=jobs.job_duration_ms(state, prompt, video=plan.kind == "video"), fault=kind)
    state.jobs.put(job.id, job)
    return web.json_response({"id": job.id, "estimatedCost": {"credits": plan.credits}})


async def text_to_image(request: web.Request) -> web.Response:
    return await _create(request, plan_image)


async def image_to_video(request: web.Request) -> web.Response:
    return await _create(request, plan_image_to_video)


async def text_to_video(request: web.Request) -> web.Response:
    return await _create(request, plan_text_to_video)


def _find(request: web.Request) -> Job:
    job = get_state(request).jobs.get(request.match_info["id"])
    if job is None or job.protocol != JOB_PROTOCOL or job.params.get("deleted"):
        raise RunwayError(404, "Task not found.")
    return job


async def _output(request: web.Request, job: Job) -> list[str]:
    """Render the task's file once (off the loop) and return its URL."""
    async with job.render_lock:
        if job.outputs is None:
            plan: Plan = job.params["plan"]
            if plan.kind == "video":
                data = await video.render_mp4_async(plan.width, plan.height, plan.seconds, job.prompt or plan.model)
                name = get_state(request).files.put(data, "mp4", video.MIME_MP4, prefix="vid")
            else:
                data = await render.render_async(plan.width, plan.height, job.prompt, "png")
                name = get_state(request).files.put(data, "png", render.MIME_TYPES["png"])
            job.outputs = [f"{request.scheme}://{request.host}{PREFIX}/files/{name}?_jwt=sim"]
        return list(job.outputs)


async def task_json(request: web.Request, job: Job) -> dict[str, Any]:
    """The task as of now: PENDING -> RUNNING (progress 0..1) -> SUCCEEDED | FAILED | CANCELLED."""
    now = time.time()
    plan: Plan = job.params["plan"]
    phase = job.phase(now)
    out: dict[str, Any] = {"id": job.id, "createdAt": _iso(job.created)}
    if phase == "queued":
        return {**out, "status": "PENDING", "estimatedCost": {"credits": plan.credits}}
    if phase == "running":
        span = max(1e-9, job.completed_at - job.started_at)
        return {**out, "status": "RUNNING", "progress": round(min(0.99, (now - job.started_at) / span), 2),
                "estimatedCost": {"credits": plan.credits}}
    if phase == "cancelled":
        return {**out, "status": "CANCELLED", "cost": {"credits": 0}}
    if job.fault in FAILURES:
        code, message = FAILURES[job.fault]
        if job.fault == "safety" and plan.kind == "video":
            code = "SAFETY.OUTPUT.VIDEO"
        charged = 0 if job.fault == "prompt-blocked" else plan.credits
        return {**out, "status": "FAILED", "failure": message, "failureCode": code, "cost": {"credits": charged}}
    return {**out, "status": "SUCCEEDED", "output": await _output(request, job), "cost": {"credits": plan.credits}}


async def get_task(request: web.Request) -> web.Response:
    try:
        _check_headers(request)
        return web.json_response(await task_json(request, _find(request)))
    except RunwayError as err:
        return err.response()


async def delete_task(request: web.Request) -> web.Response:
    """Cancel a running task, or delete a finished one (either way it is gone afterwards)."""
    try:
        _check_headers(request)
        job = _find(request)
    except RunwayError as err:
        return err.response()
    job.cancel()
    job.params["deleted"] = True
    return web.Response(status=204)



def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/v1/text_to_image", text_to_image)
    app.router.add_post(f"{PREFIX}/v1/image_to_video", image_to_video)
    app.router.add_post(f"{PREFIX}/v1/text_to_video", text_to_video)
    app.router.add_get(f"{PREFIX}/v1/tasks/{{id}}", get_task)
    app.router.add_delete(f"{PREFIX}/v1/tasks/{{id}}", delete_task)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)
