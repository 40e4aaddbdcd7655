"""OpenAI Videos (Sora) protocol: ``/openai/v1/videos`` and its sub-resources.

Wire details follow openai-python (``resources/videos.py``, ``types/video.py``,
``types/video_create_params.py``, ``types/video_seconds.py``, ``types/video_size.py``,
``pagination.py`` ``SyncConversationCursorPage``):

* ``POST /videos``: the SDK always sends multipart/form-data (``input_reference`` as a
  file part; other fields as form fields), JSON is accepted too. ``seconds`` is a STRING
  enum "4" | "8" | "12" (default "4"), ``size`` one of 720x1280 (default), 1280x720,
  1024x1792, 1792x1024, ``model`` sora-2 (default) | sora-2-pro (or a dated snapshot);
* ``GET /videos/{id}`` polls; while queued/in_progress the answer carries the
  ``openai-poll-after-ms`` header the SDK's ``poll()`` sleeps by (default 1000 ms);
* ``GET /videos`` lists with ``after``/``limit``/``order`` (cursor page: ``data``,
  ``first_id``, ``last_id``, ``has_more``; the SDK pages by ``after=last_id``);
* ``DELETE /videos/{id}`` answers ``{"id", "object": "video.deleted", "deleted": true}``
  (for an unfinished job too: a gateway uses it to cancel);
* ``GET /videos/{id}/content?variant=video|thumbnail|spritesheet`` answers raw bytes
  (MP4, WebP, JPEG), 404 until the video is completed;
* ``POST /videos/{id}/remix`` ``{"prompt"}`` starts a new job from a completed one.

sora-2 only renders 720x1280 / 1280x720; the 1024 sizes are sora-2-pro's (OpenAI's Sora
skill reference "Sizes (by model)", ComfyUI's OpenAIVideoSora2 node notes). Seconds errors
use the real wording ("Invalid value: '10'. Supported values are: '4', '8', and '12'.",
"Invalid type for 'seconds': expected one of '4', '8', or '12', but got an integer
instead.", quoted in public issue threads). A job is timed, not run (``jobs``); the clip
is rendered the first time its content is downloaded.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from . import faults, jobs, render, video
from .jobs import Job
from .openai_images import check_auth
from .openai_models import OpenAIError, invalid_value, parse_wxh, raise_server_fault
from .state import JSON_BODY, LOG_ENTRY, get_state

PREFIX = "/openai/v1/videos"
JOB_PROTOCOL = "openai-video"
SECONDS = ("4", "8", "12")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
MODEL_SIZES: dict[str, tuple[str, ...]] = {"sora-2": SIZES[:2], "sora-2-pro": SIZES}
# Dated snapshots the SDK's VideoModel literal lists, and the family each belongs to.
SNAPSHOTS = {"sora-2-2025-10-06": "sora-2", "sora-2-2025-12-08": "sora-2", "sora-2-pro-2025-10-06": "sora-2-pro"}
DEFAULT_MODEL, DEFAULT_SECONDS, DEFAULT_SIZE = "sora-2", "4", "720x1280"
VARIANTS: dict[str, str] = {"video": video.MIME_MP4, "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
ASSET_LIFETIME_S = 3600  # UNVERIFIED: "download URLs expire after about 1 hour" (Sora skill reference)
LIST_DEFAULT, LIST_MAX = 20, 100
MAX_POLL_AFTER_MS = 1000
# UNVERIFIED: the error codes of a failed job (the SDK only types ``code`` + ``message``).
FAILURES: dict[str, tuple[str, str]] = {
    "safety": ("moderation_blocked", "Your video was blocked by our moderation system because it may violate our "
               "usage policies."),
    "fail": ("internal_error", "Video generation failed due to an internal error. Please try again."),
}


@dataclass(frozen=True)
class VideoPlan:
    """A validated create request."""

    model: str
    prompt: str
    seconds: str
    size: str
    width: int
    height: int
    has_reference: bool
    remixed_from: str | None = None


def _plan_of(job: Job) -> VideoPlan:
    plan = job.params["plan"]
    assert isinstance(plan, VideoPlan)
    return plan


def _decode_data_url(url: str) -> bytes:
    head, _, data = url.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        raise OpenAIError(400, "Invalid 'input_reference.image_url': only base64 data URLs can be fetched by this "
                          "simulator.", param="input_reference", code="invalid_value")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise OpenAIError(400, "Invalid 'input_reference.image_url': the data URL is not valid base64.",
                          param="input_reference", code="invalid_value") from None


async def _read_request(request: web.Request) -> tuple[dict[str, Any], bytes | None]:
    """Form fields (or JSON members) and the ``input_reference`` image bytes, if any."""
    if request.content_type.startswith("multipart/"):
        fields: dict[str, Any] = {}
        reference: bytes | None = None
        meta: list[dict[str, Any]] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is None and part.name != "input_reference":
                fields[part.name] = await part.text()
                continue
            data = bytes(await part.read())
            meta.append({"name": part.name, "filename": part.filename,
                         "content_type": part.headers.get("Content-Type"), "size": len(data)})
            if part.name == "input_reference":
                reference = data
        entry = request.get(LOG_ENTRY)
        if entry is not None:
            entry["form"], entry["files"] = fields, meta
        if reference is None and isinstance(fields.get("input_reference[image_url]"), str):
            reference = _decode_data_url(fields["input_reference[image_url]"])
        return fields, reference
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        raise OpenAIError(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                          "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
                          "was not valid JSON.)")
    ref = body.get("input_reference")
    if isinstance(ref, dict) and isinstance(ref.get("image_url"), str):
        return body, _decode_data_url(ref["image_url"])
    if isinstance(ref, dict) and ref.get("file_id"):
        raise OpenAIError(404, f"No such File object: {ref['file_id']}", param="input_reference",
                          code="file_not_found")  # the simulator has no Files API
    return body, None


def build_plan(fields: dict[str, Any], reference: bytes | None, remixed_from: str | None = None) -> VideoPlan:
    """Validate a create request (raises OpenAIError)."""
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise OpenAIError(400, "Missing required parameter: 'prompt'.", param="prompt",
                          code="missing_required_parameter")
    model = fields.get("model") or DEFAULT_MODEL
    family = SNAPSHOTS.get(model, model) if isinstance(model, str) else None
    if family not in MODEL_SIZES:
        raise invalid_value("model", model, tuple(MODEL_SIZES))
    seconds = fields.get("seconds", DEFAULT_SECONDS)
    if seconds is None or seconds == "":
        seconds = DEFAULT_SECONDS
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        raise OpenAIError(400, "Invalid type for 'seconds': expected one of '4', '8', or '12', but got an integer "
                          "instead.", param="seconds", code="invalid_type")
    if seconds not in SECONDS:
        raise invalid_value("seconds", seconds, SECONDS)
    size = fields.get("size") or DEFAULT_SIZE
    if size not in SIZES:
        raise invalid_value("size", size, SIZES)
    allowed = MODEL_SIZES[family]
    if size not in allowed:  # UNVERIFIED wording
        raise OpenAIError(400, f"Invalid value: '{size}'. Supported values for {model} are: "
                          + " and ".join(f"'{s}'" for s in allowed) + ".", param="size", code="invalid_value")
    width, height = parse_wxh(size) or (720, 1280)
    if reference is not None:
        try:
            got = render.image_size(reference)
        except ValueError:
            raise OpenAIError(400, "Invalid file 'input_reference': unsupported image format. Supported formats are "
                              "image/jpeg, image/png and image/webp.", param="input_reference",
                              code="invalid_value") from None
        if got != (width, height):  # the wording real Sora answers with; its code is UNVERIFIED
            raise OpenAIError(400, "Inpaint image must match the requested width and height",
                              param="input_reference", code="invalid_value")
    return VideoPlan(model=model, prompt=prompt, seconds=seconds, size=size, width=width, height=height,
                     has_reference=reference is not None, remixed_from=remixed_from)


def _status(job: Job, now: float) -> str:
    phase = job.phase(now)
    if phase == "queued":
        return "queued"
    if phase == "running":
        return "in_progress"
    return "failed" if job.fault in FAILURES else "completed"


def video_json(job: Job, now: float | None = None) -> dict[str, Any]:
    """The video object as of ``now``: queued -> in_progress (progress %) -> completed | failed."""
    now = time.time() if now is None else now
    plan = _plan_of(job)
    status = _status(job, now)
    progress = 0
    if status == "in_progress":
        span = max(1e-9, job.completed_at - job.started_at)
        progress = min(99, max(1, int(100 * (now - job.started_at) / span)))
    elif status == "completed":
        progress = 100
    done = status in ("completed", "failed")
    error = None
    if status == "failed" and job.fault is not None:
        code, message = FAILURES[job.fault]
        error = {"code": code, "message": message}
    return {
        "id": job.id,
        "object": "video",
        "model": plan.model,
        "status": status,
        "progress": progress,
        "created_at": int(job.created),
        "completed_at": int(job.completed_at) if done else None,
        "expires_at": int(job.completed_at) + ASSET_LIFETIME_S if status == "completed" else None,
        "prompt": plan.prompt,
        "seconds": plan.seconds,
        "size": plan.size,
        "error": error,
        "remixed_from_video_id": plan.remixed_from,
    }


def _poll_headers(job: Job) -> dict[str, str]:
    """``openai-poll-after-ms`` while unfinished: about half the time left, 20..1000 ms."""
    if job.phase() not in ("queued", "running"):
        return {}
    wait = min(MAX_POLL_AFTER_MS, max(20, int(job.remaining_s() * 500)))
    return {"openai-poll-after-ms": str(wait)}


def _fault_response(request: web.Request, kind: str, model: str) -> web.Response:
    """Create-time faults as api.openai.com answers them."""
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"id": f"video_{secrets.token_hex(24)}", "object": "video",
                                          "status": "queued", "progress": 0, "prompt": "x" * 200})
    raise_server_fault(kind, model, "requests per minute (RPM): Limit 2, Used 2")
    # prompt-blocked: refused before a job exists. UNVERIFIED wording.
    raise OpenAIError(400, "Your request was blocked by our moderation system.", code="moderation_blocked")


def _new_job(request: web.Request, plan: VideoPlan, kind: str | None) -> Job:
    state = get_state(request)
    job = Job(id=f"video_{secrets.token_hex(24)}", protocol=JOB_PROTOCOL, model=plan.model, prompt=plan.prompt,
              params={"plan": plan}, job_ms=jobs.job_duration_ms(state, plan.prompt, video=True),
              fault=kind if kind in FAILURES else None)
    state.jobs.put(job.id, job)
    entry = request.get(LOG_ENTRY)
    if entry is not None:
        entry["video_id"] = job.id
    return job


async def create(request: web.Request) -> web.Response:
    """``POST /openai/v1/videos`` (multipart or JSON)."""
    try:
        check_auth(request)
        fields, reference = await _read_request(request)
        prompt = fields.get("prompt") if isinstance(fields.get("prompt"), str) else ""
        model = fields.get("model") if isinstance(fields.get("model"), str) else DEFAULT_MODEL
        kind = await faults.resolve(get_state(request), "openai", prompt, faults.VIDEO_KINDS)
        if kind is not None and kind not in FAILURES:
            return _fault_response(request, kind, model)
        job = _new_job(request, build_plan(fields, reference), kind)
        return web.json_response(video_json(job), headers=_poll_headers(job))
    except OpenAIError as exc:
        return exc.response()


def _find(request: web.Request) -> Job:
    video_id = request.match_info["video_id"]
    job = get_state(request).jobs.get(video_id)
    if not isinstance(job, Job) or job.protocol != JOB_PROTOCOL:
        raise OpenAIError(404, f"Video with id '{video_id}' not found.", param="video_id",
                          code="not_found")  # UNVERIFIED wording
    return job


async def retrieve(request: web.Request) -> web.Response:
    """``GET /openai/v1/videos/{video_id}``."""
    try:
        check_auth(request)
        job = _find(request)
        return web.json_response(video_json(job), headers=_poll_headers(job))
    except OpenAIError as exc:
        return exc.response()


async def list_videos(request: web.Request) -> web.Response:
    """``GET /openai/v1/videos?after=&limit=&order=`` (newest first unless ``order=asc``)."""
    try:
        check_auth(request)
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise invalid_value("order", order, ("asc", "desc"))
        raw_limit = request.query.get("limit", str(LIST_DEFAULT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_MAX:
            raise OpenAIError(400, f"Invalid 'limit': expected an integer between 1 and {LIST_MAX}, but got "
                              f"{raw_limit} instead.", param="limit", code="invalid_value")
        items = [j for j in get_state(request).jobs.values() if isinstance(j, Job) and j.protocol == JOB_PROTOCOL]
        items.sort(key=lambda j: j.created, reverse=order == "desc")
        after = request.query.get("after")
        if after:
            ids = [j.id for j in items]
            if after not in ids:
                raise OpenAIError(404, f"Video with id '{after}' not found.", param="after", code="not_found")
            items = items[ids.index(after) + 1:]
        page = items[: int(raw_limit)]
        now = time.time()
        data = [video_json(j, now) for j in page]
        return web.json_response({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None, "has_more": len(items) > len(page)})
    except OpenAIError as exc:
        return exc.response()


async def delete(request: web.Request) -> web.Response:
    """``DELETE /openai/v1/videos/{video_id}``.

    The SDK documents it for "a completed or failed video"; whether the API refuses an
    unfinished one is UNVERIFIED, so the simulator deletes (and thereby cancels) any job and
    logs the status it had (``deleted_status``), letting a test check that a gateway
    cancelled upstream.
    """
    try:
        check_auth(request)
        job = _find(request)
        status = _status(job, time.time())
        get_state(request).jobs.pop(job.id)
        entry = request.get(LOG_ENTRY)
        if entry is not None:
            entry["deleted"], entry["deleted_status"] = job.id, status
        return web.json_response({"id": job.id, "object": "video.deleted", "deleted": True})
    except OpenAIError as exc:
        return exc.response()


async def content(request: web.Request) -> web.Response:
    """``GET /openai/v1/videos/{video_id}/content?variant=``: the rendered bytes once completed."""
    try:
        check_auth(request)
        job = _find(request)
        variant = request.query.get("variant", "video")
        if variant not in VARIANTS:
            raise invalid_value("variant", variant, tuple(VARIANTS))
        status = _status(job, time.time())
        if status != "completed":  # UNVERIFIED wording and status
            raise OpenAIError(404, f"Video '{job.id}' is not ready: its status is '{status}'. Content is available "
                              "once the status is 'completed'.", param="video_id", code="not_found")
        plan = _plan_of(job)
        async with job.render_lock:
            data = await video.render_variant_async(variant, plan.width, plan.height, float(plan.seconds), plan.prompt)
        return web.Response(body=data, content_type=VARIANTS[variant])
    except OpenAIError as exc:
        return exc.response()


async def remix(request: web.Request) -> web.Response:
    """``POST /openai/v1/videos/{video_id}/remix`` ``{"prompt"}``: a new job like a completed one."""
    try:
        check_auth(request)
        source = _find(request)
        ok, body = request.get(JSON_BODY, (False, None))
        prompt = body.get("prompt") if ok and isinstance(body, dict) else None
        if _status(source, time.time()) != "completed":  # UNVERIFIED wording
            raise OpenAIError(400, f"Video '{source.id}' must be completed before it can be remixed.",
                              param="video_id", code="invalid_request")
        kind = await faults.resolve(get_state(request), "openai", prompt or "", faults.VIDEO_KINDS)
        if kind is not None and kind not in FAILURES:
            return _fault_response(request, kind, source.model)
        base = _plan_of(source)
        plan = build_plan({"prompt": prompt, "model": base.model, "seconds": base.seconds, "size": base.size},
                          None, remixed_from=source.id)
        job = _new_job(request, plan, kind)
        return web.json_response(video_json(job), headers=_poll_headers(job))
    except OpenAIError as exc:
        return exc.response()


def add_routes(app: web.Application) -> None:
    """Mount the Videos API under ``/openai/v1/videos``."""
    app.router.add_post(PREFIX, create)
    app.router.add_get(PREFIX, list_videos)
    app.router.add_get(f"{PREFIX}/{{video_id}}", retrieve)
    app.router.add_delete(f"{PREFIX}/{{video_id}}", delete)
    app.router.add_get(f"{PREFIX}/{{video_id}}/content", content)
    app.router.add_post(f"{PREFIX}/{{video_id}}/remix", remix)
