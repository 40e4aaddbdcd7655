"""Video jobs: accept at once (202), run in the background, survive restarts, notify by webhook.

A job is a row in the job store. Its runner resolves routes like any request, submits to the provider's
job protocol, writes the provider's submit reply to the row straight away — so after a restart the
runner resumes polling that same upstream job instead of starting a new one — and finally stores the
file in the media store, where `GET /videos/{id}/content` streams it from.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from typing import Any

from mediagate import context, errormap, extract, fanout, inputs, pricing, routing, safefetch, upstream, webhooks
from mediagate.canonical import Canonical
from mediagate.catalog import Model, Route
from mediagate.errors import GatewayError, UpstreamError, invalid_request, not_found
from mediagate.inputs import InputImage
from mediagate.pipeline import prepare
from mediagate.polling import follow
from mediagate.runtime import Runtime

log = logging.getLogger("mediagate")
VIDEO_TTL_S = 24 * 3600                 # a finished video's file is kept this long (expires_at)
MAX_VIDEO_BYTES = 512 * 1024 * 1024     # one generated video
VIDEO_FETCH_TIMEOUT_S = 300.0
PAGE_LIMIT_MAX = 100


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
                         "outputs": len(job.get("outputs", []))}}


def _num(x: float | None) -> str | None:
    return None if x is None else str(int(x)) if float(x).is_integer() else str(x)


async def create(rt: Runtime, body: Any, input_reference: Any, force_sandbox: bool) -> tuple[int, dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("idempotency_key"), str):
        existing = await rt.jobs.by_idempotency_key(body["idempotency_key"])
        if existing is not None:
            return 200, public(existing)
    model, forced, req = prepare(rt, body, "video")
    if model.kind != "video":
        raise invalid_request(f"Model '{model.id}' does not make videos.", "model", "unsupported_model")
    images: tuple[InputImage, ...] = ()
    if input_reference is not None:
        loaded, _ = await inputs.load([input_reference], None, 1, rt.fetch_policy)
        images = tuple(loaded)
    req = model.canonical(req.body, "video", images=images)
    if body.get("webhook_url"):
        await safefetch.check_resolved(body["webhook_url"], rt.fetch_policy, "webhook_url")
    now = int(time.time())
    job = {"id": "video_" + secrets.token_hex(16), "object": "video", "model": model.id, "status": "queued", "progress": 0,
           "created_at": now, "prompt": req.prompt, "seconds": _num(req.seconds), "size": req.shape.size,
           "n": req.n, "forced": forced, "sandbox": force_sandbox, "request": dict(req.body),
           "input_reference": [base64.b64encode(i.data).decode() for i in images],
           "idempotency_key": body.get("idempotency_key"), "webhook_url": body.get("webhook_url"),
           "adjustments": list(req.adjustments), "upstream": {}}
    stored = await rt.jobs.create(job)
    if stored["id"] != job["id"]:  # the same idempotency key won a race
        return 200, public(stored)
    spawn(rt, job["id"])
    return 202, public(job)


def spawn(rt: Runtime, job_id: str) -> None:
    task = asyncio.ensure_future(_run(rt, job_id))
    rt.video_tasks[job_id] = task
    task.add_done_callback(lambda _: rt.video_tasks.pop(job_id, None))


async def resume_all(rt: Runtime) -> int:
    """Restart the runner of every job a previous process left unfinished (it resumes polling)."""
    jobs = await rt.jobs.unfinished()
    for job in jobs:
        spawn(rt, job["id"])
    return len(jobs)


def _canonical(rt: Runtime, job: dict[str, Any]) -> tuple[Model, Canonical]:
    model, _ = rt.catalog.resolve(job["model"])
    images = tuple(_image(b) for b in job.get("input_reference", []))
    return model, model.canonical(job["request"], "video", images=images)


def _image(b64: str) -> InputImage:
    return inputs.decode(base64.b64decode(b64), "input_reference")


async def _run(rt: Runtime, job_id: str) -> None:
    job = await rt.jobs.get(job_id)
    if job is None:
        return
    try:
        model, req = _canonical(rt, job)
        await _attempt_routes(rt, job, model, req)
    except asyncio.CancelledError:
        raise
    except GatewayError as err:
        await _finish_failed(rt, job_id, err.code or "upstream_error", err.message)
    except Exception:  # a job must end in a state a caller can read, whatever happened
        log.exception("video job %s crashed", job_id)
        await _finish_failed(rt, job_id, "internal_error", "The gateway failed while running this job.")


async def _attempt_routes(rt: Runtime, job: dict[str, Any], model: Model, req: Canonical) -> None:
    attempts: list[dict[str, Any]] = list(job.get("attempts", []))
    errors: list[UpstreamError] = []
    resume = job.get("upstream") or {}
    routes = routing.order(model, job.get("forced"), health=rt.health)
    if resume.get("provider"):  # a restart: the job's own route first, so its upstream jobs are resumed
        routes = sorted(routes, key=lambda r: r.provider.id != resume["provider"])
    for route in routes:
        started = time.monotonic()
        target = rt.target(route.provider, job.get("sandbox", False))
        if target is None:
            errors.append(routing.not_configured(route))
            attempts.append(routing.attempt(route, "video", started, errors[-1]))
            continue
        try:
            target = await rt.authorize(route.provider, target)
            saved = resume.get("submitted", {}) if resume.get("provider") == route.provider.id else {}
            outputs = await fanout.all_or_nothing([
                _one(rt, job["id"], route, target, req, k, i, saved.get(str(i)))
                for i, k in enumerate(fanout.batches(req.n, route.native_n))])
        except UpstreamError as err:
            errors.append(err)
            attempts.append(routing.attempt(route, "video", started, err, target.sandbox))
            rt.health.record(route.provider.id, ok=not err.retryable)
            await rt.jobs.update(job["id"], attempts=attempts, upstream={})
            resume = {}
            if not err.retryable:
                client = errormap.to_client(err)
                await _finish_failed(rt, job["id"], client.code or err.code, client.message)
                return
            continue
        rt.health.record(route.provider.id, ok=True)
        attempts.append(routing.attempt(route, "video", started, None, target.sandbox))
        await _finish_completed(rt, job["id"], model, req, route, [o for batch in outputs for o in batch], attempts)
        return
    err = errormap.exhausted([a for a in attempts if "error" in a], errors)
    await _finish_failed(rt, job["id"], err.code or "all_providers_exhausted", err.message)


async def _one(rt: Runtime, job_id: str, route: Route, target: upstream.Target, req: Canonical, n: int, index: int,
               saved: Any) -> list[dict[str, Any]]:
    """One upstream job of the fan-out: submit (or resume what was submitted), follow, download."""
    provider = route.provider
    op = route.operation("video")
    ctx = context.build(req, route, n)
    if saved is not None and op.job is not None:
        try:
            return await _finish_one(rt, job_id, route, target, op, ctx, n, saved)
        except UpstreamError as err:
            # the upstream no longer knows the job we recorded (or its host is gone): submit it again, once
            if err.status != 404 and err.code != "upstream_unavailable":
                raise
            log.warning("video job %s: the recorded upstream job is gone (%s); submitting again", job_id, err.code)
            saved = None
    if saved is None:
        saved = await fanout.submit(rt, provider, op, ctx, target)
        await _record_submitted(rt, job_id, provider.id, route.model_for("video"), index, saved)
    return await _finish_one(rt, job_id, route, target, op, ctx, n, saved)


async def _finish_one(rt: Runtime, job_id: str, route: Route, target: upstream.Target, op: Any, ctx: dict[str, Any], n: int,
                      saved: Any) -> list[dict[str, Any]]:
    provider = route.provider
    body = saved
    if op.job is not None:
        async def progress(value: float | None) -> None:
            if value is not None:
                await rt.jobs.update(job_id, status="in_progress", progress=max(0, min(99, int(value))))
        body = await follow(rt.transport, provider, op.job, target, ctx, saved, rt.background, progress,
                            cancel_upstream=lambda: job_id in rt.deleting)
    files = []
    for out in extract.outputs(op, body)[:n]:
        if out.data is not None:
            data = out.data
        elif out.b64 is not None:
            data = base64.b64decode(out.b64)
        else:
            assert out.url is not None
            data = await rt.transport.fetch(provider, target, out.url, MAX_VIDEO_BYTES, VIDEO_FETCH_TIMEOUT_S)
        kind = video_kind(data)
        if kind is None:
            raise errormap.make("upstream_malformed", f"{provider.name} returned a file that is not a video.")
        stored = await asyncio.to_thread(rt.videos_media.put, data, kind)
        files.append({"name": stored.name, "bytes": len(data), "mime": VIDEO_MIME[kind]})
    return files


async def _record_submitted(rt: Runtime, job_id: str, provider_id: str, upstream_model: str, index: int, reply: Any) -> None:
    """Add one batch's upstream job to the row in one locked step (batches of a fan-out record concurrently)."""
    def add(doc: dict[str, Any]) -> dict[str, Any]:
        state = doc.get("upstream") or {}
        if state.get("provider") != provider_id:
            state = {"provider": provider_id, "submitted": {}}
        state["submitted"][str(index)] = reply
        return {**doc, "upstream": state, "provider": provider_id, "executed_model": upstream_model, "status": "in_progress"}
    await rt.jobs.mutate(job_id, add)


async def _finish_completed(rt: Runtime, job_id: str, model: Model, req: Canonical, route: Route,
                            files: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> None:
    produced = pricing.Produced(tuple((req.shape.width or 0, req.shape.height or 0) for _ in files),
                                len(fanout.batches(req.n, route.native_n)),
                                pricing.facts(req.shape.as_context(), req.params, req.thinking, None), seconds=req.seconds or 0)
    cost = pricing.price(route.pricing, produced)
    now = int(time.time())
    job = await rt.jobs.update(job_id, status="completed", progress=100, completed_at=now, expires_at=now + VIDEO_TTL_S,
                               outputs=files, attempts=attempts, provider=route.provider.id,
                               executed_model=route.model_for("video"),
                               cost=round(cost["total_cost_micros"] / pricing.MICROS, 6) if cost else None,
                               cost_currency=cost["currency"] if cost else None)
    if job is not None:
        await webhooks.enqueue(rt.jobs, job, "video.completed")


async def _finish_failed(rt: Runtime, job_id: str, code: str, message: str) -> None:
    job = await rt.jobs.update(job_id, status="failed", completed_at=int(time.time()), error={"code": code, "message": message})
    if job is not None:
        await webhooks.enqueue(rt.jobs, job, "video.failed")


async def get(rt: Runtime, job_id: str) -> dict[str, Any]:
    job = await rt.jobs.get(job_id)
    if job is None:
        raise not_found(f"No video with id '{job_id[:100]}'.")
    return job


async def page(rt: Runtime, after: str | None, limit: int, order: str) -> dict[str, Any]:
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise invalid_request(f"'limit' must be between 1 and {PAGE_LIMIT_MAX}.", "limit")
    if order not in ("asc", "desc"):
        raise invalid_request("'order' must be asc or desc.", "order")
    jobs, more = await rt.jobs.page(after, limit, order == "desc")
    data = [public(j) for j in jobs]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


async def delete(rt: Runtime, job_id: str) -> dict[str, Any]:
    """Cancel a running job (upstream too, where the provider allows) and delete the video."""
    await get(rt, job_id)
    task = rt.video_tasks.get(job_id)
    if task is not None and not task.done():
        rt.deleting.add(job_id)  # so the job protocol's cancel step runs on the way out (a shutdown does not)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        rt.deleting.discard(job_id)
    job = await get(rt, job_id)  # read again: the runner may have written outputs meanwhile
    for f in job.get("outputs", []):
        rt.videos_media.remove(f["name"])
    await rt.jobs.delete(job_id)
    return {"id": job_id, "object": "video.deleted", "deleted": True}
