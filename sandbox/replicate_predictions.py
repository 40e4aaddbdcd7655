"""Replicate protocol: predictions under ``/replicate/v1/...``, output files under
``/replicate/files/...`` (standing in for replicate.delivery).

* ``POST /v1/models/{owner}/{name}/predictions`` ``{"input"}`` (official models) and
  ``POST /v1/predictions`` ``{"version", "input"}`` create a prediction (201);
* ``Prefer: wait`` / ``wait=N`` holds the request up to N s (default 60) and answers the
  finished prediction, or the unfinished one if time ran out
  (replicate.com/docs/topics/predictions/create-a-prediction, "Sync mode");
* ``GET /v1/predictions/{id}`` polls, ``POST /v1/predictions/{id}/cancel`` cancels.

Wire details follow replicate-python (replicate/prediction.py, replicate/client.py):
``Authorization: Bearer <token>`` (``Token`` is still accepted), RFC 7807 errors. A
safety block is not an HTTP error: the prediction ends ``failed`` with an ``error`` text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import time
from typing import Any

from aiohttp import web

from . import faults, jobs, render, replicate_video, video
from .jobs import Job
from .replicate_models import MODELS, ReplicateError, ReplicatePlan, build_plan, model_for
from .replicate_video import VideoPlan
from .state import JSON_BODY, LOG_ENTRY, get_state, serve_file

PREFIX = "/replicate"
DEFAULT_WAIT_S = 60
NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."
GENERIC_ERROR = "Prediction failed for an unknown reason. It might have run out of memory? (exitcode -9)"
_JOB_FAULTS = frozenset({"safety", "prompt-blocked", "fail", "noimage"})
_WAIT = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$", re.IGNORECASE)
_HASH = re.compile(r"^[0-9a-f]{64}$")


def _check_auth(request: web.Request) -> None:
    """``Bearer`` (what replicate-python sends) or the older ``Token`` scheme."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        raise ReplicateError(401, "Unauthenticated", "You did not pass an authentication token")
    if token.strip().startswith("bad"):
        raise ReplicateError(401, "Unauthenticated", "You did not pass a valid authentication token")


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _version_of(name: str) -> str:
    """A stable fake 64-hex version id per model."""
    return hashlib.sha256(name.encode()).hexdigest()


_VERSIONS: dict[str, str] = {_version_of(name): name for name in [*MODELS, *replicate_video.MODELS]}


def _plan_of(job: Job) -> ReplicatePlan | VideoPlan:
    plan = job.params["plan"]
    assert isinstance(plan, (ReplicatePlan, VideoPlan))
    return plan


async def _outputs(request: web.Request, job: Job) -> list[str]:
    """Render the job's files once (off the loop) and return their URLs."""
    async with job.render_lock:
        if job.outputs is None:
            plan = _plan_of(job)
            if isinstance(plan, VideoPlan):
                data = await video.render_mp4_async(plan.width, plan.height, plan.seconds, plan.prompt)
                name = get_state(request).files.put(data, "mp4", video.MIME_MP4, prefix="vid")
                job.outputs = [f"{request.scheme}://{request.host}{PREFIX}/files/{name}"]
                return list(job.outputs)
            count = 0 if job.fault == "noimage" else plan.count
            texts = [f"{plan.prompt} #{i + 1}" if count > 1 else plan.prompt for i in range(count)]
            datas = await asyncio.gather(*(render.render_async(plan.width, plan.height, text, plan.fmt,
                                                               None if plan.fmt == "png" else plan.quality)
                                           for text in texts))
            files = get_state(request).files
            mime = render.MIME_TYPES[plan.fmt]
            job.outputs = [f"{request.scheme}://{request.host}{PREFIX}/files/"
                           f"{files.put(data, plan.fmt, mime)}" for data in datas]
        return list(job.outputs)


def _status(job: Job, now: float) -> str:
    phase = job.phase(now)
    if phase == "queued":
        return "starting"
    if phase == "running":
        return "processing"
    if phase == "cancelled":
        return "canceled"
    return "failed" if job.fault in ("safety", "prompt-blocked", "fail") else "succeeded"


async def prediction_json(request: web.Request, job: Job) -> dict[str, Any]:
    """The prediction object as of now (renders outputs when it has just succeeded)."""
    now = time.time()
    status = _status(job, now)
    root = f"{request.scheme}://{request.host}{PREFIX}/v1/predictions/{job.id}"
    plan = _plan_of(job)
    output: Any = None
    error: str | None = None
    logs = ""
    if status != "starting":
        logs = f"Using seed: {job.params['seed']}\n"
    if status == "succeeded":
        urls = await _outputs(request, job)
        is_video = isinstance(plan, VideoPlan)
        output = urls if model_for(job.model).output == "list" and not is_video else (urls[0] if urls else None)
        logs += f"Generated a {plan.seconds} s video\n" if is_video else \
            f"Total safe images: {len(urls)} out of {plan.count}\n"
    elif status == "failed":
        error = NSFW_ERROR if job.fault in ("safety", "prompt-blocked") else GENERIC_ERROR
        logs += error + "\n"
    done = status in ("succeeded", "failed", "canceled")
    ended = job.cancelled_at if status == "canceled" else job.completed_at
    body: dict[str, Any] = {
        "id": job.id,
        "model": job.model,
        "version": job.params["version"],
        "input": job.params["input"],
        "logs": logs,
        "output": output,
        "data_removed": False,
        "error": error,
        "status": status,
        "created_at": _iso(job.created),
        "started_at": _iso(job.started_at) if status != "starting" else None,
        "completed_at": _iso(ended) if done else None,
        "urls": {"cancel": f"{root}/cancel", "get": root, "stream": f"{root}/stream",
                 "web": f"https://replicate.com/p/{job.id}"},
    }
    if done:
        started = min(job.started_at, ended or job.started_at)
        body["metrics"] = {"predict_time": round(max(0.0, (ended or now) - started), 3),
                           "total_time": round(max(0.0, (ended or now) - job.created), 3)}
        if status == "succeeded":
            if isinstance(plan, VideoPlan):  # UNVERIFIED metric name for video models
                body["metrics"]["video_output_duration_seconds"] = float(plan.seconds)
            else:
                body["metrics"]["image_count"] = len(job.outputs or [])
    return body


def _fault_response(request: web.Request, kind: str) -> web.Response:
    """Create-time faults, in Replicate's own error shapes."""
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "malformed":
        return faults.malformed_response({"id": jobs.new_id(), "status": "starting", "output": None,
                                          "urls": {"get": "x" * 80}})
    if kind == "429":
        raise ReplicateError(429, None, "Request was throttled. Expected available in 1 second.",
                             headers={"Retry-After": "1"})
    if kind == "500":
        raise ReplicateError(500, "Internal Server Error", "An unexpected error occurred. Please try again.")
    if kind == "503":
        raise ReplicateError(503, "Service Unavailable", "Replicate is temporarily unavailable. Please try again.")
    # 422
    raise ReplicateError(422, "Input validation failed", "- input.aspect_ratio: aspect_ratio must be one of the "
                         "following: \"1:1\", \"16:9\"\n", invalid_fields=[{
                             "type": "enum", "field": "input.aspect_ratio",
                             "description": "aspect_ratio must be one of the following: \"1:1\", \"16:9\""}])


def _wait_seconds(request: web.Request) -> float | None:
    """``Prefer: wait`` -> 60, ``wait=N`` -> N (1..60); None without the preference."""
    for pref in request.headers.get("Prefer", "").split(","):
        match = _WAIT.match(pref)
        if match:
            return float(min(DEFAULT_WAIT_S, max(1, int(match.group(1) or DEFAULT_WAIT_S))))
    return None


async def _create(request: web.Request, model_name: str, version: str) -> web.Response:
    _check_auth(request)
    ok, body = request.get(JSON_BODY, (False, None))
    if not ok or not isinstance(body, dict):
        raise ReplicateError(400, "Bad Request", "The request body is not valid JSON.")
    inputs = body.get("input")
    prompt = inputs.get("prompt") if isinstance(inputs, dict) and isinstance(inputs.get("prompt"), str) else ""
    state = get_state(request)
    kind = await faults.resolve(state, "replicate", prompt)
    if kind is not None and kind not in _JOB_FAULTS:
        return _fault_response(request, kind)
    files = state.files
    plan: ReplicatePlan | VideoPlan = (
        replicate_video.build_plan(model_name, inputs, lambda name: (files.get(name) or (None, ""))[0])
        if replicate_video.is_video_model(model_name) else build_plan(model_for(model_name), inputs))
    job = Job(id=jobs.new_id(), protocol="replicate", model=model_name, prompt=plan.prompt,
              params={"plan": plan, "input": inputs, "version": version,
                      "seed": inputs.get("seed") if isinstance(inputs.get("seed"), int) else int(time.time()) % 65536},
              job_ms=jobs.job_duration_ms(state, plan.prompt, video=isinstance(plan, VideoPlan)), fault=kind)
    state.jobs.put(job.id, job)
    entry = request.get(LOG_ENTRY)
    if entry is not None:
        entry["prediction_id"] = job.id
    wait = _wait_seconds(request)
    if wait is not None:
        await jobs.wait_until_done(job, wait)
    answer = await prediction_json(request, job)
    return web.json_response(answer, status=201, headers={"Location": answer["urls"]["get"]})


async def create_for_model(request: web.Request) -> web.Response:
    """``POST /replicate/v1/models/{owner}/{name}/predictions``."""
    try:
        name = f"{request.match_info['owner']}/{request.match_info['name']}"
        return await _create(request, name, "hidden")
    except ReplicateError as exc:
        return exc.response()


async def create(request: web.Request) -> web.Response:
    """``POST /replicate/v1/predictions`` with ``version`` (an id, ``owner/name`` or ``owner/name:id``)."""
    try:
        _check_auth(request)
        ok, body = request.get(JSON_BODY, (False, None))
        version = body.get("version") if ok and isinstance(body, dict) else None
        if not isinstance(version, str) or not version:
            raise ReplicateError(422, "Input validation failed", "- version: version is required\n",
                                 invalid_fields=[{"type": "required", "field": "version",
                                                  "description": "version is required"}])
        name, _, version_id = version.partition(":")
        if _HASH.match(name):
            version_id, name = name, _VERSIONS.get(name, "")
            if not name:
                raise ReplicateError(422, "Invalid version", "The specified version does not exist (or perhaps you "
                                     "don't have permission to use it?)")
        return await _create(request, name, version_id or _version_of(name))
    except ReplicateError as exc:
        return exc.response()


def _find(request: web.Request) -> Job:
    job = get_state(request).jobs.get(request.match_info["id"])
    if not isinstance(job, Job) or job.protocol != "replicate":
        raise ReplicateError(404, "Not found", "The requested resource could not be found.")
    return job


async def get_prediction(request: web.Request) -> web.Response:
    """``GET /replicate/v1/predictions/{id}``."""
    try:
        _check_auth(request)
        return web.json_response(await prediction_json(request, _find(request)))
    except ReplicateError as exc:
        return exc.response()


async def cancel(request: web.Request) -> web.Response:
    """``POST /replicate/v1/predictions/{id}/cancel``: the prediction, canceled unless already done."""
    try:
        _check_auth(request)
        job = _find(request)
        entry = request.get(LOG_ENTRY)
        if entry is not None:
            entry["cancel"] = job.id
        job.cancel()
        return web.json_response(await prediction_json(request, job))
    except ReplicateError as exc:
        return exc.response()



def add_routes(app: web.Application) -> None:
    """Mount the prediction API under ``/replicate/v1`` and files under ``/replicate/files``."""
    app.router.add_post(f"{PREFIX}/v1/models/{{owner}}/{{name}}/predictions", create_for_model)
    app.router.add_post(f"{PREFIX}/v1/predictions", create)
    app.router.add_get(f"{PREFIX}/v1/predictions/{{id}}", get_prediction)
    app.router.add_post(f"{PREFIX}/v1/predictions/{{id}}/cancel", cancel)
    app.router.add_get(f"{PREFIX}/files/{{name}}", serve_file)


def version_id(model: str) -> str:
    """The fake version id the simulator accepts for ``model`` in ``POST /v1/predictions``."""
    return _version_of(model)
