"""fal.ai protocol: the queue (``/fal/queue/...``), the sync endpoint (``/fal/run/...``) and
served result files (``/fal/files/...``).

URL scheme, as fal-client builds and the real queue returns it (fal-ai/fal,
projects/fal_client/src/fal_client/client.py: ``QUEUE_URL_FORMAT + application`` to submit,
``{QUEUE_URL_FORMAT}{owner}/{alias}/requests/{id}`` [+ ``/status`` | ``/cancel``] after):

* ``POST {queue}/{app_id}`` submits; the app id may carry a sub path
  (``fal-ai/flux/schnell``, ``fal-ai/bytedance/seedream/v4.5/text-to-image``);
* status, result and cancel URLs use only ``owner/alias`` (plus a ``workflows/`` or
  ``comfy/`` namespace): "the subpath should be used when making the request, but not
  when getting request status or results" (docs.fal.ai/model-endpoints/queue).

A job is timed, not run: see ``jobs``. Errors come in fal's two shapes: model/validation
errors ``{"detail": [{"loc", "msg", "type"}]}`` (docs.fal.ai/errors) and request errors
``{"detail": "...", "error_type": "..."}`` plus ``X-Fal-Error-Type`` (fal.ai/docs/
documentation/model-apis/request-errors); both carry ``X-Fal-Retryable``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import random
import re
import time
import uuid
from typing import Any

from aiohttp import web

from . import fal_video, faults, jobs, render, video
from .fal_models import FalPlan, FalValidationError, app_for, build_plan
from .fal_video import FalVideoPlan
from .jobs import Job
from .state import JSON_BODY, LOG_ENTRY, SimState, get_state

PREFIX = "/fal"
QUEUE = f"{PREFIX}/queue"
NAMESPACES = ("workflows", "comfy")  # fal-client APP_NAMESPACES: ids of the form ns/owner/alias/...
_REQUEST_PATH = re.compile(r"^(?P<app>.+)/requests/(?P<id>[^/]+?)(?P<op>/status|/cancel)?/?$")
# Job faults expressed later (status/result), not at submit.
_JOB_FAULTS = frozenset({"safety", "safety-422", "prompt-blocked", "job-error", "noimage"})


def _error(status: int, detail: str, error_type: str | None = None, retryable: bool | None = None) -> web.Response:
    """A request error: flat ``detail`` string (+ ``error_type`` and its header)."""
    body: dict[str, Any] = {"detail": detail}
    headers: dict[str, str] = {}
    if error_type is not None:
        body["error_type"] = error_type
        headers["X-Fal-Error-Type"] = error_type
    if retryable is not None:
        headers["X-Fal-Retryable"] = "true" if retryable else "false"
    return web.json_response(body, status=status, headers=headers)


def _check_auth(request: web.Request) -> web.Response | None:
    """``Authorization: Key <key>``; answers 401 like fal does, or None when fine."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "key" or not key.strip():
        # UNVERIFIED wording: fal answers 401 for anonymous calls to private apps.
        return _error(401, "Authentication is required to access this application. Use 'Authorization: Key "
                           "<FAL_KEY>'.")
    if key.strip().startswith("bad"):
        # The real body for an unknown key (fal-ai/fal#1068, fal-ai/fal-swift#8).
        return _error(401, "No user found for Key ID and Secret")
    return None


def base_app(app_id: str) -> str:
    """``owner/alias`` (with namespace) of an app id: what status/result URLs use."""
    parts = app_id.strip("/").split("/")
    keep = 3 if parts[0] in NAMESPACES else 2
    return "/".join(parts[:keep])


def _urls(request: web.Request, job: Job) -> dict[str, str]:
    root = f"{request.scheme}://{request.host}{QUEUE}/{base_app(job.model)}/requests/{job.id}"
    return {"response_url": root, "status_url": f"{root}/status", "cancel_url": f"{root}/cancel"}


def _plan_of(job: Job) -> FalPlan:
    plan = job.params["plan"]
    assert isinstance(plan, FalPlan)
    return plan


def _video_plan_of(job: Job) -> FalVideoPlan | None:
    plan = job.params["plan"]
    return plan if isinstance(plan, FalVideoPlan) else None


async def _submit_checks(
    request: web.Request, app_id: str
) -> tuple[FalPlan | FalVideoPlan, str | None] | web.Response:
    """Auth, body, injected submit-time faults and validation shared by queue and run."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok:
        return FalValidationError("__root__", "JSON decode error", "json_invalid").response()
    prompt = body.get("prompt") if isinstance(body, dict) and isinstance(body.get("prompt"), str) else ""
    kind = await faults.resolve(get_state(request), "fal", prompt)
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"request_id": str(uuid.uuid4()), "status_url": "x" * 80})
    if kind == "429":
        # UNVERIFIED body: fal's 429 (concurrency limit) is not documented; fal-client retries 429s.
        return _error(429, "Too many concurrent requests. Please wait for your running requests to finish or "
                           "contact support to raise your limit.", retryable=True)
    if kind == "500":
        return _error(500, "Internal server error", "internal_error", retryable=True)
    if kind == "503":
        return _error(503, "No runner could be allocated to handle the request.", "runner_scheduling_failure",
                      retryable=True)
    if kind == "422":
        return FalValidationError("image_size", "Input should be a valid dictionary or instance of ImageSize",
                                  "model_type", "[sim:422]").response()
    try:
        if fal_video.is_video_app(app_id):
            files = get_state(request).files
            plan: FalPlan | FalVideoPlan = fal_video.build_plan(
                app_id, body, lambda name: (files.get(name) or (None, ""))[0])
        else:
            plan = build_plan(app_id, body)
    except FalValidationError as exc:
        return exc.response()
    return plan, kind


def _content_policy() -> web.Response:
    """The 422 content-checker error of docs.fal.ai/errors#content_policy_violation."""
    detail = [{"loc": ["body", "prompt"], "msg": "The content could not be processed because it contained material "
               "flagged by a content checker.", "type": "content_policy_violation",
               "url": "https://docs.fal.ai/errors#content_policy_violation"}]
    return web.json_response({"detail": detail}, status=422, headers={"X-Fal-Retryable": "false"})


def _timeout() -> web.Response:
    return _error(504, "Request timed out", "request_timeout", retryable=True)


async def _images(request: web.Request, job: Job) -> tuple[list[dict[str, Any]], list[bool]]:
    """Render the job's images once (off the loop) and store them as served files."""
    async with job.render_lock:
        if job.outputs is None:
            plan = _plan_of(job)
            flagged = job.fault == "safety" and plan.safety_checker
            count = 0 if job.fault == "noimage" else plan.num_images
            label = [f"{plan.prompt} #{i + 1}" if count > 1 else plan.prompt for i in range(count)]
            datas = await asyncio.gather(*(
                render.render_black_async(plan.width, plan.height, plan.fmt) if flagged
                else render.render_async(plan.width, plan.height, text, plan.fmt, transparent=plan.transparent)
                for text in label))
            mime = render.MIME_TYPES[plan.fmt]
            items: list[dict[str, Any]] = []
            for data in datas:
                if plan.sync_mode:
                    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
                else:
                    name = get_state(request).files.put(data, render.normalize_format(plan.fmt), mime)
                    url = f"{request.scheme}://{request.host}{PREFIX}/files/{name}"
                items.append({"url": url, "width": plan.width, "height": plan.height, "content_type": mime,
                              "file_name": f"{uuid.uuid4().hex}.{plan.fmt}"})
            job.outputs = (items, [flagged] * len(items))
        return job.outputs  # type: ignore[no-any-return]


async def _video(request: web.Request, job: Job, plan: FalVideoPlan) -> dict[str, Any]:
    """Render the job's clip once (off the loop), store it and describe it as a fal ``File``."""
    async with job.render_lock:
        if job.outputs is None:
            data = await video.render_mp4_async(plan.width, plan.height, plan.seconds, plan.prompt)
            name = get_state(request).files.put(data, "mp4", video.MIME_MP4, prefix="vid")
            job.outputs = {"url": f"{request.scheme}://{request.host}{PREFIX}/files/{name}",
                           "content_type": video.MIME_MP4, "file_name": "output.mp4", "file_size": len(data)}
        return dict(job.outputs)


async def _result_body(request: web.Request, job: Job) -> dict[str, Any]:
    """The app's output JSON for a finished, successful job."""
    video_plan = _video_plan_of(job)
    if video_plan is not None:
        body: dict[str, Any] = {"video": await _video(request, job, video_plan)}
        extras = fal_video.APPS[job.model].extras
        if "seed" in extras:
            body["seed"] = job.params["seed"]
        if "actual_prompt" in extras:
            body["actual_prompt"] = video_plan.prompt
        return body
    plan = _plan_of(job)
    images, nsfw = await _images(request, job)
    if "description" in app_for(job.model).extras:  # Gemini image apps on fal
        return {"images": images, "description": ""}
    if "images_only" in app_for(job.model).extras:  # GPT Image on fal
        return {"images": images}
    return {"images": images, "timings": {"inference": round(job.job_ms * (1 - jobs.QUEUE_SHARE) / 1000, 3)},
            "seed": job.params["seed"], "has_nsfw_concepts": nsfw, "prompt": plan.prompt}


def _finished_response(job: Job) -> web.Response | None:
    """The error a finished job answers with instead of a result, if any (a video app has
    no ``has_nsfw_concepts``: its safety checker fails the request instead)."""
    if job.fault in ("safety-422", "prompt-blocked") or (job.fault == "safety" and _video_plan_of(job) is not None):
        return _content_policy()
    if job.fault == "job-error":
        return _timeout()
    return None


def _new_job(state: SimState, app_id: str, plan: FalPlan | FalVideoPlan, kind: str | None) -> Job:
    return Job(id=str(uuid.uuid4()), protocol="fal", model=app_id, prompt=plan.prompt,
               params={"plan": plan, "seed": plan.seed if plan.seed is not None else random.randrange(2**31)},
               job_ms=jobs.job_duration_ms(state, plan.prompt, video=isinstance(plan, FalVideoPlan)),
               fault=kind if kind in _JOB_FAULTS else None)


async def submit(request: web.Request) -> web.Response:
    """``POST /fal/queue/{app_id}``: enqueue; answers the request handle."""
    app_id = request.match_info["app"].strip("/")
    checked = await _submit_checks(request, app_id)
    if isinstance(checked, web.Response):
        return checked
    plan, kind = checked
    state = get_state(request)
    job = _new_job(state, app_id, plan, kind)
    state.jobs.put(job.id, job)
    entry = request.get(LOG_ENTRY)
    if entry is not None:
        entry["request_id"] = job.id
    body = {"request_id": job.id, **_urls(request, job), "queue_position": job.queue_position()}
    return web.json_response(body, headers={"x-fal-request-id": job.id})


def _logs(job: Job, now: float) -> list[dict[str, Any]]:
    """Runner log lines emitted so far (what ``?logs=1`` returns)."""
    lines: list[dict[str, Any]] = []
    if now >= job.started_at:
        what = "a video" if _video_plan_of(job) is not None else f"{_plan_of(job).num_images} image(s)"
        lines.append(_log_line(job.started_at, f"Generating {what}"))
    if job.phase(now) == "done":
        lines.append(_log_line(job.completed_at, "Done"))
    return lines


def _log_line(at: float, message: str) -> dict[str, Any]:
    stamp = dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat()
    return {"message": message, "level": "INFO", "source": "user", "timestamp": stamp}


def _find(request: web.Request, app_path: str, request_id: str) -> Job | None:
    """The fal job behind a status/result/cancel URL (base app id or the full one)."""
    job = get_state(request).jobs.get(request_id)
    if not isinstance(job, Job) or job.protocol != "fal":
        return None
    return job if app_path.strip("/") in (base_app(job.model), job.model) else None


async def request_dispatch(request: web.Request) -> web.Response:
    """``GET .../requests/{id}[/status]`` and ``PUT .../requests/{id}/cancel``."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    match = _REQUEST_PATH.match(request.match_info["tail"])
    if match is None:
        return _error(404, "Not Found")
    op = match.group("op")
    job = _find(request, match.group("app"), match.group("id"))
    if request.method == "PUT":
        if op != "/cancel":
            return _error(405, "Method Not Allowed")
        if job is None:
            return web.json_response({"status": "NOT_FOUND"}, status=404)
        entry = request.get(LOG_ENTRY)
        if entry is not None:
            entry["cancel"] = job.id
        if job.cancel():
            return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)
        return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)
    if op == "/cancel":
        return _error(405, "Method Not Allowed")
    if job is None:
        return _error(404, f"Request {match.group('id')} not found")
    if op == "/status":
        return _status(request, job)
    return await _result(request, job)


def _status(request: web.Request, job: Job) -> web.Response:
    """The queue status object: IN_QUEUE -> IN_PROGRESS -> COMPLETED by elapsed time."""
    now = time.time()
    phase = job.phase(now)
    with_logs = request.query.get("logs", "").lower() in ("1", "true", "yes")
    urls = _urls(request, job)
    body: dict[str, Any]
    if phase == "queued":
        body = {"status": "IN_QUEUE", "queue_position": job.queue_position(now), **urls}
    elif phase == "running":
        body = {"status": "IN_PROGRESS", "logs": _logs(job, now) if with_logs else None, **urls}
    else:
        body = {"status": "COMPLETED", "logs": _logs(job, now) if with_logs else None,
                "metrics": {"inference_time": round(job.job_ms * (1 - jobs.QUEUE_SHARE) / 1000, 3)}, **urls}
        if phase == "cancelled":
            # UNVERIFIED: how fal reports a cancelled request; fal-client only knows 3 states.
            body.update(error="Request was cancelled", error_type="request_cancelled")
            body["metrics"] = {}
        elif job.fault == "job-error":
            body.update(error="Request timed out", error_type="request_timeout")
    return web.json_response(body, headers={"x-fal-request-id": job.id})


async def _result(request: web.Request, job: Job) -> web.Response:
    phase = job.phase()
    if phase in ("queued", "running"):
        return _error(400, "Request is still in progress")  # UNVERIFIED wording
    if phase == "cancelled":
        return _error(400, "Request was cancelled", "request_cancelled", retryable=False)  # UNVERIFIED
    failed = _finished_response(job)
    if failed is not None:
        return failed
    return web.json_response(await _result_body(request, job), headers={"x-fal-request-id": job.id})


async def run(request: web.Request) -> web.Response:
    """``POST /fal/run/{app_id}``: the synchronous endpoint; holds until the job is done."""
    app_id = request.match_info["app"].strip("/")
    checked = await _submit_checks(request, app_id)
    if isinstance(checked, web.Response):
        return checked
    plan, kind = checked
    state = get_state(request)
    job = _new_job(state, app_id, plan, kind)
    await asyncio.sleep(job.job_ms / 1000.0)
    failed = _finished_response(job)
    if failed is not None:
        return failed
    return web.json_response(await _result_body(request, job), headers={"x-fal-request-id": job.id})


async def serve_file(request: web.Request) -> web.Response:
    """``GET /fal/files/{name}``: the bytes behind an image ``url`` (fal's CDN)."""
    found = get_state(request).files.get(request.match_info["name"])
    if found is None:
        return _error(404, "File not found")
    data, content_type = found
    return web.Response(body=data, content_type=content_type)


def add_routes(app: web.Application) -> None:
    """Mount the queue, the sync endpoint and the file route under ``/fal``."""
    app.router.add_route("GET", f"{QUEUE}/{{tail:.+/requests/.+}}", request_dispatch)
    app.router.add_route("PUT", f"{QUEUE}/{{tail:.+/requests/.+}}", request_dispatch)
    app.router.add_post(f"{QUEUE}/{{app:.+}}", submit)
    app.router.add_post(f"{PREFIX}/run/{{app:.+}}", run)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)

