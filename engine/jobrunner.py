"""Running video jobs: one process at a time per job, by lease; exactly one submission per upstream job.

Every process runs a scheduler. A job is run by whoever holds its lease in the job store (mediagate.jobstore):
the process that created it claims it at once; a lease that is not renewed (its holder died, or lost the
store) runs out after `job_lease_s` and the next scheduler scan claims it — so a killed instance's jobs
are taken over within one lease plus one scan. Every write a runner makes is fenced by its lease: a
runner that lost it stops before it can write (or submit) anything.

Submissions: before a job's request is sent upstream its batch is recorded as *submitting*; the provider's
reply (its job id) is recorded as *submitted* as soon as it arrives. A runner that takes a job over resumes
polling every submitted batch. A batch left *submitting* may or may not have reached the provider: it is
never sent again (money is real) — the job fails with a clear error instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import Any

from mediagate import carried, context, errormap, extract, fanout, inputs, metrics, pricing, routing, upstream, webhooks
from mediagate.canonical import Canonical
from mediagate.catalog import Model, Route
from mediagate.errors import GatewayError, UpstreamError
from mediagate.inputs import InputImage
from mediagate.jobstore import LeaseLost, StoreUnavailable
from mediagate.polling import follow
from mediagate.runtime import Runtime
from mediagate.videos import MAX_VIDEO_BYTES, VIDEO_FETCH_TIMEOUT_S, VIDEO_MIME, VIDEO_TTL_S, video_kind

log = logging.getLogger("mediagate")
SCAN_INTERVAL_S = 1.0             # how often a scheduler looks for jobs without a live lease
SCAN_BATCH = 50                   # jobs claimed per scan at most
RECORD_RETRY_S = 0.5              # a submission reply is written again this often while the store is down


def new_owner() -> str:
    """This process's lease owner id: readable in the store, unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class JobRunner:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.owner = new_owner()
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.deleting: set[str] = set()           # jobs being deleted: their upstream job is cancelled on the way out
        self._renewed: dict[str, float] = {}      # job id -> monotonic time of its last successful renewal
        self._claiming: set[str] = set()          # claims under way in this process

    @property
    def ttl_s(self) -> float:
        return self.rt.settings.job_lease_s

    async def start(self, job_id: str) -> bool:
        """Claim and run a job in this process; False when another process holds it (or it runs here already:
        the create path and the scheduler's scan may race for the same job, and the store lets an owner
        claim again what it holds, so this process checks its own runners first)."""
        if job_id in self.tasks or job_id in self._claiming:
            return False
        self._claiming.add(job_id)
        try:
            if not await self.rt.jobs.claim(job_id, self.owner, self.ttl_s):
                return False
            self._renewed[job_id] = time.monotonic()
            task = asyncio.ensure_future(self._run(job_id))
            self.tasks[job_id] = task
            task.add_done_callback(lambda _: self._forget(job_id))
            return True
        finally:
            self._claiming.discard(job_id)

    def _forget(self, job_id: str) -> None:
        self.tasks.pop(job_id, None)
        self._renewed.pop(job_id, None)

    async def scan(self) -> int:
        """Claim every job nobody holds a live lease on; returns how many this process took."""
        taken = 0
        for job_id in await self.rt.jobs.claimable(time.time(), SCAN_BATCH):
            if await self.start(job_id):
                taken += 1
                log.warning("video job %s: taken over by %s (no live lease)", job_id, self.owner)
        return taken

    async def renew_all(self) -> None:
        """Renew this process's leases; stop runners whose job was deleted or taken by another process, and
        runners that could not renew for a whole lease (the store was unreachable: another may run it now)."""
        for job_id, task in list(self.tasks.items()):
            try:
                if await self.rt.jobs.renew(job_id, self.owner, self.ttl_s):
                    self._renewed[job_id] = time.monotonic()
                    continue
                if await self.rt.jobs.get(job_id) is None:
                    self.deleting.add(job_id)  # deleted through another instance: cancel upstream too
                    log.warning("video job %s: deleted elsewhere; cancelling", job_id)
                else:
                    log.warning("video job %s: lease lost to another process; stopping here", job_id)
            except StoreUnavailable:
                if time.monotonic() - self._renewed.get(job_id, 0) < self.ttl_s:
                    continue
                log.warning("video job %s: store unreachable for a whole lease; stopping here", job_id)
            task.cancel()

    async def run_forever(self) -> None:
        """The scheduler: renew leases every third of a lease, scan for orphans every SCAN_INTERVAL_S."""
        last_scan = 0.0
        while True:
            try:
                await self.renew_all()
                if time.monotonic() - last_scan >= SCAN_INTERVAL_S:
                    last_scan = time.monotonic()
                    await self.scan()
            except StoreUnavailable:
                pass  # the scan is retried; jobs resume once the store is back
            except Exception:
                log.exception("video scheduler failed; retrying")
            await asyncio.sleep(min(SCAN_INTERVAL_S, self.ttl_s / 3))

    async def stop(self) -> None:
        """A shutdown: stop runners (upstream jobs keep running) and hand their leases back at once, so
        another process (or the next start) resumes them without waiting for the lease to run out."""
        tasks = dict(self.tasks)
        for task in tasks.values():
            task.cancel()
        if tasks:
            await asyncio.wait(set(tasks.values()), timeout=5)
        for job_id in tasks:
            with contextlib.suppress(Exception):
                await self.rt.jobs.release(job_id, self.owner)

    async def cancel_local(self, job_id: str) -> bool:
        """Cancel a job running here, upstream job included; False when it does not run here."""
        task = self.tasks.get(job_id)
        if task is None or task.done():
            return False
        self.deleting.add(job_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self.deleting.discard(job_id)
        return True

    # ------------------------------------------------------------------ one job

    async def _run(self, job_id: str) -> None:
        try:  # who ran it, in order: the audit trail of takeovers (not part of the public video object)
            job = await self.rt.jobs.mutate(job_id, lambda d: {**d, "runners": d.get("runners", []) + [self.owner]}, self.owner)
        except (LeaseLost, StoreUnavailable):
            return
        if job is None:
            return
        try:
            model, req = _canonical(self.rt, job)
            await self._attempt_routes(job, model, req)
        except (asyncio.CancelledError, LeaseLost, StoreUnavailable):
            pass  # another process (or the next start) resumes it from what the store holds
        except GatewayError as err:
            await self._finish_failed(job_id, err.code or "upstream_error", err.message)
        except Exception:  # a job must end in a state a caller can read, whatever happened
            log.exception("video job %s crashed", job_id)
            await self._finish_failed(job_id, "internal_error", "The gateway failed while running this job.")
        finally:
            self.deleting.discard(job_id)

    async def _attempt_routes(self, job: dict[str, Any], model: Model, req: Canonical) -> None:
        rt = self.rt
        attempts: list[dict[str, Any]] = list(job.get("attempts", []))
        errors: list[UpstreamError] = []
        resume = job.get("upstream") or {}
        routes = routing.order(model, job.get("forced"), health=rt.health)
        if resume.get("provider"):  # resuming: the job's own route first, so its upstream jobs are polled again
            routes = sorted(routes, key=lambda r: r.provider.id != resume["provider"])
        planned = req
        if routes and not any(routing.takes_prompt(r, req.prompt) for r in routes):
            err = routing.prompt_too_long(routes, req.prompt)
            await self._finish_failed(job["id"], err.code or "string_above_max_length", err.message)
            return
        for route in routes:
            if not routing.takes_prompt(route, req.prompt):  # this provider takes shorter prompts: never sent
                attempts.append(routing.skipped_for_prompt(route, "video", req.prompt))
                continue
            req, own = carried.adapt(planned, route)  # this route's own adjustments (a fallback's too)
            started = time.monotonic()
            target = rt.target(route.provider, job.get("sandbox", False))
            if target is None:
                attempts.append(routing.attempt(route, "video", started, routing.not_configured(route)))  # listed, not a failure
                continue
            recorded = resume if resume.get("provider") == route.provider.id else {}
            try:
                target = await routing.authorize(rt, route, target)
                outputs = await fanout.all_or_nothing([
                    self._one(job["id"], route, target, req, k, i, recorded.get("submitted", {}).get(str(i)),
                              str(i) in recorded.get("submitting", {}))
                    for i, k in enumerate(fanout.batches(req.n, route.native_n))])
            except UpstreamError as err:
                errors.append(err)
                attempts.append(routing.attempt(route, "video", started, err, target.sandbox) | _own(own))
                if err.retryable:  # only a success clears a cooldown; a caller's error says nothing
                    rt.health.record(route.provider.id, ok=False)
                await rt.jobs.update(job["id"], self.owner, attempts=attempts, upstream={})
                resume = {}
                if not err.retryable or err.code == "submit_interrupted":
                    client = errormap.to_client(err)
                    await self._finish_failed(job["id"], client.code or err.code, client.message)
                    return
                if not routing.may_fall_back(err, model):  # the provider may have taken (and billed) it: not twice
                    client = errormap.after_send([a for a in attempts if "error" in a], errors)
                    await self._finish_failed(job["id"], client.code or "all_providers_exhausted", client.message)
                    return
                metrics.FALLBACKS.labels(route.provider.id).inc()
                continue
            rt.health.record(route.provider.id, ok=True)
            attempts.append(routing.attempt(route, "video", started, None, target.sandbox) | _own(own))
            await self._finish_completed(job["id"], model, req, route, [o for batch in outputs for o in batch], attempts,
                                         list(job.get("adjustments", [])) + own)
            return
        err = errormap.exhausted([a for a in attempts if "error" in a], errors)
        await self._finish_failed(job["id"], err.code or "all_providers_exhausted", err.message)

    async def _one(self, job_id: str, route: Route, target: upstream.Target, req: Canonical, n: int, index: int,
                   saved: Any, interrupted: bool) -> list[dict[str, Any]]:
        """One upstream job of the fan-out: submit once (or resume what was submitted), follow, download."""
        provider = route.provider
        op = route.operation("video")
        ctx = context.build(req, route, n)
        if op.idempotent:   # the same key on every submission of this batch, across restarts and instances
            ctx["idempotency_key"] = f"{job_id}-{index}"
        if saved is not None and op.job is not None:
            try:
                return await self._finish_one(job_id, route, target, op, ctx, n, saved)
            except UpstreamError as err:
                # the provider itself says it has no such job (or its host is gone): it cannot run or bill it,
                # so submitting again is safe
                if err.status != 404 and err.code != "upstream_unavailable":
                    raise
                log.warning("video job %s: the recorded upstream job is gone (%s); submitting again", job_id, err.code)
                saved = None
        elif saved is None and interrupted and op.idempotent:
            log.warning("video job %s: resubmitting an interrupted submission under its idempotency key", job_id)
        elif saved is None and interrupted:
            raise errormap.make("submit_interrupted", f"The gateway stopped while submitting this job to {provider.name}; "
                                "it may have been accepted (and billed) there, so it was not sent again.", retryable=False)
        if saved is None:
            await self._record(job_id, _submitting(provider.id, index))
            saved = await fanout.submit(self.rt, provider, op, ctx, target)
            await self._record(job_id, _submitted(provider.id, route.model_for("video"), index, saved), retry=True)
        return await self._finish_one(job_id, route, target, op, ctx, n, saved)

    async def _record(self, job_id: str, change: Any, retry: bool = False) -> None:
        """A fenced write; with `retry`, kept trying while the store is down (an upstream job id must not be
        lost) for as long as this process may still hold the lease."""
        deadline = time.monotonic() + self.ttl_s
        while True:
            try:
                await self.rt.jobs.mutate(job_id, change, self.owner)
                return
            except StoreUnavailable:
                if not retry or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(RECORD_RETRY_S)

    async def _finish_one(self, job_id: str, route: Route, target: upstream.Target, op: Any, ctx: dict[str, Any], n: int,
                          saved: Any) -> list[dict[str, Any]]:
        rt = self.rt
        provider = route.provider
        body = saved
        if op.job is not None:
            async def progress(value: float | None) -> None:
                if value is not None:
                    await rt.jobs.update(job_id, self.owner, status="in_progress", progress=max(0, min(99, int(value))))
            body = await follow(rt.transport, provider, op.job, target, ctx, saved, rt.background, progress,
                                cancel_upstream=lambda: job_id in self.deleting)
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
            stored = await rt.videos_media.put(data, kind)
            files.append({"name": stored.name, "bytes": len(data), "mime": VIDEO_MIME[kind]})
        return files

    async def _finish_completed(self, job_id: str, model: Model, req: Canonical, route: Route,
                                files: list[dict[str, Any]], attempts: list[dict[str, Any]],
                                adjustments: list[dict[str, Any]]) -> None:
        produced = pricing.Produced(tuple((req.shape.width or 0, req.shape.height or 0) for _ in files),
                                    len(fanout.batches(req.n, route.native_n)),
                                    pricing.facts(req.shape.as_context(), req.params, req.thinking, None),
                                    seconds=req.seconds or 0)
        cost = pricing.price(route.pricing, produced)
        now = int(time.time())
        job = await self.rt.jobs.update(job_id, self.owner, status="completed", progress=100, completed_at=now,
                                        expires_at=now + VIDEO_TTL_S, outputs=files, attempts=attempts,
                                        provider=route.provider.id, executed_model=route.model_for("video"),
                                        adjustments=adjustments,
                                        cost=round(cost["total_cost_micros"] / pricing.MICROS, 6) if cost else None,
                                        cost_currency=cost["currency"] if cost else None)
        if job is not None:
            metrics.priced(model.id, route.provider.id, cost, job.get("team"))
            await self._ended(job)
            await webhooks.enqueue(self.rt.jobs, job, "video.completed")

    async def _finish_failed(self, job_id: str, code: str, message: str) -> None:
        job = await self.rt.jobs.update(job_id, self.owner, status="failed", completed_at=int(time.time()),
                                        error={"code": code, "message": message})
        if job is not None:
            await self._ended(job)
            await webhooks.enqueue(self.rt.jobs, job, "video.failed")

    async def _ended(self, job: dict[str, Any]) -> None:
        """The job's cost is charged to its key (budget) and its concurrency slot freed."""
        if self.rt.job_finished is not None:
            try:
                await self.rt.job_finished(self.rt, job)
            except Exception:  # billing must never keep a finished job from being announced
                log.warning("video job %s: could not charge its key (state store unavailable?)", job["id"], exc_info=True)


def _own(adjustments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"adjustments": adjustments} if adjustments else {}


def _submitting(provider_id: str, index: int) -> Any:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        state = doc.get("upstream") or {}
        if state.get("provider") != provider_id:
            state = {"provider": provider_id, "submitted": {}, "submitting": {}}
        state.setdefault("submitting", {})[str(index)] = int(time.time())
        return {**doc, "upstream": state}
    return change


def _submitted(provider_id: str, upstream_model: str, index: int, reply: Any) -> Any:
    """One batch's upstream job added to the document in one atomic step (batches record concurrently)."""
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        state = doc.get("upstream") or {}
        if state.get("provider") != provider_id:
            state = {"provider": provider_id, "submitted": {}, "submitting": {}}
        state.setdefault("submitted", {})[str(index)] = reply
        state.setdefault("submitting", {}).pop(str(index), None)
        return {**doc, "upstream": state, "provider": provider_id, "executed_model": upstream_model, "status": "in_progress"}
    return change


def _canonical(rt: Runtime, job: dict[str, Any]) -> tuple[Model, Canonical]:
    model, _ = rt.catalog.resolve(job["model"])
    images = tuple(_image(b) for b in job.get("input_reference", []))
    return model, model.canonical(job["request"], "video", images=images)


def _image(b64: str) -> InputImage:
    return inputs.decode(base64.b64decode(b64), "input_reference")
