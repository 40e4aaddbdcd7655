"""Video jobs as the API sees them: accept at once (202), read, list, delete.

A job is a document in the job store; mediagate.jobrunner runs it in the background (on whichever process
holds its lease), and the finished file lands in the media store, where `GET /videos/{id}/content`
streams it from.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from mediagate import imaging, inputs, jsonbody, routing, safefetch
from mediagate.auth import DEFAULT_TEAM
from mediagate.errors import invalid_request, not_found
from mediagate.inputs import InputImage
from mediagate.numbers import plain_text
from mediagate.pipeline import prepare
from mediagate.runtime import Runtime

log = logging.getLogger("mediagate")
VIDEO_TTL_S = 24 * 3600                 # a finished video's file is kept this long (expires_at)
MAX_VIDEO_BYTES = 512 * 1024 * 1024     # one generated video
VIDEO_FETCH_TIMEOUT_S = 300.0
PAGE_LIMIT_MAX = 100
LIST_PROMPT_CHARS = 1000                # a prompt in `GET /videos` is cut to this; the job itself has it whole
TRUNCATED_MARKER = "…"                  # ends a cut prompt; metadata.prompt_chars gives the whole length


VIDEO_MIME = {"mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime"}


def video_kind(data: bytes) -> str | None:
    """The container, from the file's first bytes (ISO base media for MP4/MOV, EBML for WebM)."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mov" if data[8:10] == b"qt" else "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def public(job: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI video object (plus mediagate's metadata)."""
    return {"id": job["id"], "object": "video", "model": job["model"], "status": job["status"], "progress": job["progress"],
            "created_at": job["created_at"], "completed_at": job.get("completed_at"), "expires_at": job.get("expires_at"),
            "prompt": job.get("prompt"), "seconds": job.get("seconds"), "size": job.get("size"), "error": job.get("error"),
            "remixed_from_video_id": None,
            "metadata": {"provider": job.get("provider"), "executed_model": job.get("executed_model"),
                         "attempts": job.get("attempts", []), "adjustments": job.get("adjustments", []),
                         "cost": job.get("cost"), "cost_currency": job.get("cost_currency"),
                         "outputs": len(job.get("outputs", [])), "webhooks": job.get("webhook_deliveries", [])}}


def idempotency_scope(team: str, key: str) -> str:
    """An idempotency key as stored: scoped by team (the same key from two teams is two jobs). The team's
    length leads, so no team name and key can spell another pair's scope."""
    return f"{len(team)}:{team}:{key}"


async def create(rt: Runtime, body: Any, input_reference: Any, force_sandbox: bool,
                 owner: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """`owner`: what the job carries about its caller (team, request record; a stored key's id, budget
    reservation and job slot)."""
    owner = owner or {}
    team = owner.get("team") or DEFAULT_TEAM
    idem = None
    if isinstance(body, dict) and isinstance(body.get("idempotency_key"), str):
        idem = idempotency_scope(team, body["idempotency_key"])
        existing = await rt.jobs.by_idempotency_key(idem)
        if existing is not None:
            return 200, public(existing)
    model, forced, req = prepare(rt, body, "video", force_sandbox)
    if model.kind != "video":
        raise invalid_request(f"Model '{model.id}' does not make videos.", "model", "unsupported_model")
    candidates = [r for r in model.routes if forced is None or r.provider.id == forced]
    if candidates and not any(routing.takes_prompt(r, req.prompt) for r in candidates):
        raise routing.prompt_too_long(candidates, req.prompt)   # refused at create, not failed later
    images: tuple[InputImage, ...] = ()
    if input_reference is not None:
        loaded, _ = await inputs.load([input_reference], None, 1, rt.fetch_policy)
        images = tuple(loaded)
    req = model.canonical(req.body, "video", images=images)
    if body.get("webhook_url"):
        await safefetch.check_resolved(body["webhook_url"], rt.fetch_policy, "webhook_url")
    now = int(time.time())
    job = {"id": "video_" + secrets.token_hex(16), "object": "video", "model": model.id, "status": "queued", "progress": 0,
           "created_at": now, "prompt": req.prompt, "seconds": plain_text(req.seconds), "size": req.shape.size,
           "n": req.n, "forced": forced, "sandbox": force_sandbox, "request": dict(req.body),
           "input_reference": [await jsonbody.off_loop(imaging.b64encode, i.data) for i in images],
           "idempotency_key": idem, "webhook_url": body.get("webhook_url"),
           "adjustments": list(req.adjustments), "upstream": {}, **owner, "team": team}
    stored = await rt.jobs.create(job)
    if stored["id"] != job["id"]:  # the same idempotency key won a race
        return 200, public(stored)
    await rt.runner.start(job["id"])  # claimed here; if that fails a scheduler takes it within a lease
    return 202, public(job)


async def get(rt: Runtime, job_id: str, team: str) -> dict[str, Any]:
    """The job, if it is `team`'s: another team's video is a 404, exactly like one that does not exist."""
    job = await rt.jobs.get(job_id)
    if job is None or (job.get("team") or DEFAULT_TEAM) != team:
        raise not_found(f"No video with id '{job_id[:100]}'.")
    return job


async def page(rt: Runtime, after: str | None, limit: int, order: str, team: str) -> dict[str, Any]:
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise invalid_request(f"'limit' must be between 1 and {PAGE_LIMIT_MAX}.", "limit")
    if order not in ("asc", "desc"):
        raise invalid_request("'order' must be asc or desc.", "order")
    jobs, more = await rt.jobs.page(after, limit, order == "desc", team)
    data = [_listed(public(j)) for j in jobs]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


def _listed(video: dict[str, Any]) -> dict[str, Any]:
    """A list entry: bounded, so a page is bounded (PAGE_LIMIT_MAX entries of bounded size)."""
    prompt = video.get("prompt")
    if isinstance(prompt, str) and len(prompt) > LIST_PROMPT_CHARS:
        video["prompt"] = prompt[:LIST_PROMPT_CHARS] + TRUNCATED_MARKER
        video["metadata"]["prompt_truncated"] = True
        video["metadata"]["prompt_chars"] = len(prompt)
    return video


async def delete(rt: Runtime, job_id: str, team: str) -> dict[str, Any]:
    """Cancel a running job (upstream too, where the provider allows) and delete the video. A job running on
    another instance sees its deletion at its next lease renewal and cancels its upstream job there."""
    await get(rt, job_id, team)
    await rt.runner.cancel_local(job_id)
    job = await get(rt, job_id, team)  # read again: the runner may have written outputs meanwhile
    for f in job.get("outputs", []):
        await rt.videos_media.remove(f["name"])
    if await rt.jobs.delete(job_id) and job["status"] not in ("completed", "failed") and rt.job_finished:
        await rt.job_finished(rt, job)   # deleted before it finished: its reservation and slot end here
    return {"id": job_id, "object": "video.deleted", "deleted": True}
