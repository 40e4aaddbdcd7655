"""Request history and usage (`GET /v1/requests`, `GET /v1/usage`): one record per generation request, and
daily usage sums per team, key, model and provider — the HistoryStore Protocol and the recorder that writes
to it off the hot path (stores: mediagate.history_sqlite, mediagate.history_redis).

A request is recorded once its answer is sent (a stream: its last byte) by putting it on a bounded queue; a
background task writes the queue in batches. A full queue (the store far behind) drops the record and
counts it (`mediagate_history_dropped_total`): history never slows or fails a response. A video job's cost
and seconds are known only when it ends: the instance that ran it sends a "finish" for the creating
request's record. Usage sums are kept as integer micros and milliseconds, each one a record's own
contribution, so the sums equal the `metadata.cost` of the responses to the micro.

Records keep no prompt and no image unless the key opted in (`store_payloads`); those payloads are cut to
PAYLOAD_STRING_CHARS per string and can be deleted on their own (`DELETE /v1/requests/{id}/payloads`).
Records live MEDIAGATE_REQUEST_RETENTION_DAYS; usage days USAGE_KEEP_DAYS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from mediagate import metrics, pricing, reqctx
from mediagate.jobstore import StoreUnavailable

log = logging.getLogger("mediagate")
RECORDED_ENDPOINTS = frozenset({"images.generations", "images.edits", "chat.completions", "videos.create"})
DEFAULT_TEAM = "default"            # MEDIAGATE_API_KEYS keys and an open gateway
RECORD_QUEUE_MAX = 10_000           # records waiting to be written; beyond this they are dropped (and counted)
RECORD_BATCH = 200                  # records written to the store in one call
RECORD_LINGER_S = 0.05              # a lone record waits this long for others to share its store transaction
FLUSH_WAIT_S = 1.0                  # a history read waits at most this for this process's queue to drain
STORE_RETRIES = 5                   # a batch the store refused is retried this many times, STORE_RETRY_S apart
STORE_RETRY_S = 1.0
FINISH_RETRIES = 10                 # a finish whose record is not written yet (another instance) is retried
SWEEP_INTERVAL_S = 3600.0
USAGE_KEEP_DAYS = 400               # daily usage sums outlive request records: a year's comparison
PAYLOAD_STRING_CHARS = 2000         # a stored prompt or image string is cut to this (b64 images are megabytes)
PAYLOAD_LIST_ITEMS = 20
PAYLOAD_DEPTH = 8
CUT_MARKER = "…"
METRICS = ("requests", "images", "video_ms")   # plus cost_micros:{currency}
DAY_S = 86400


def day_of(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


class HistoryStore(Protocol):
    async def add(self, records: list[dict[str, Any]]) -> None:
        """Insert records and add each one's usage (`usage_delta`)."""
    async def finish(self, record_id: str, fields: dict[str, Any], delta: dict[str, Any]) -> bool:
        """Update a record and add `delta` to usage; False when the record is not (yet) there."""
    async def get(self, record_id: str, team: str | None) -> dict[str, Any] | None: ...
    async def page(self, team: str | None, key: str | None, status: str | None, start: float, end: float,
                   after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; (records, cursor of the next page or None)."""
    async def drop_payloads(self, record_id: str, team: str | None) -> bool: ...
    async def usage(self, team: str | None, key: str | None, first_day: str, last_day: str) -> list[dict[str, Any]]:
        """Rows {day, team, key, model, provider, metric, value} (metric: requests, images, video_ms, cost_micros:CUR)."""
    async def sweep(self, records_before: float, usage_before_day: str) -> None: ...
    async def close(self) -> None: ...


# ------------------------------------------------------------------ what a request leaves in its context

def authenticated(caller_team: str | None, key_doc: dict[str, Any] | None) -> None:
    """The caller is known (a stored key, even one about to be refused for a limit, or an unrestricted one): from
    here on the request is recorded (if it is a generation), and log lines carry the key's name and team."""
    ctx = reqctx.current()
    if ctx is not None:
        if key_doc is not None:
            ctx.key, ctx.team = key_doc.get("name"), caller_team
        ctx.details["team"] = caller_team or DEFAULT_TEAM
        ctx.details["key_id"] = key_doc.get("id") if key_doc else None
        ctx.details["store_payloads"] = bool(key_doc and key_doc.get("store_payloads"))


def current_team() -> str:
    """The team of the request in progress (DEFAULT_TEAM outside one, or before its key was checked)."""
    ctx = reqctx.current()
    return str(ctx.details.get("team", DEFAULT_TEAM)) if ctx is not None else DEFAULT_TEAM


def note(**fields: Any) -> None:
    ctx = reqctx.current()
    if ctx is not None:
        ctx.details.update(fields)


def _cut(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= PAYLOAD_STRING_CHARS else value[:PAYLOAD_STRING_CHARS] + CUT_MARKER
    if depth >= PAYLOAD_DEPTH:
        return CUT_MARKER
    if isinstance(value, dict):
        return {str(k)[:100]: _cut(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, list):
        return [_cut(v, depth + 1) for v in value[:PAYLOAD_LIST_ITEMS]]
    return value


def note_body(body: Any) -> None:
    """The request's body, kept only for a key with store_payloads (strings cut)."""
    ctx = reqctx.current()
    if ctx is not None and ctx.details.get("store_payloads"):
        ctx.details.setdefault("payloads", {})["request"] = _cut(body)


def note_result(body: Any) -> None:
    """A JSON answer: its metadata (attempts, adjustments, images made) and, opted in, its data."""
    ctx = reqctx.current()
    if ctx is None or not isinstance(body, dict):
        return
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    ctx.details["attempts"] = meta.get("attempts") or []
    ctx.details["adjustments"] = meta.get("adjustments") or []
    if isinstance(body.get("data"), list):
        ctx.details["images"] = len(body["data"])
    if ctx.details.get("store_payloads"):
        kept = {k: v for k, v in body.items() if k in ("data", "choices", "id", "prompt")}
        ctx.details.setdefault("payloads", {})["response"] = _cut(kept)


def _micros(value: Any) -> int | None:
    try:
        return round(float(value) * pricing.MICROS)
    except (TypeError, ValueError):
        return None


def build(ctx: reqctx.RequestContext, response: Response, model: str | None, provider: str | None) -> dict[str, Any]:
    """The record of one answered request (what `GET /v1/requests/{id}` shows, plus cost_micros)."""
    d = ctx.details
    elapsed = time.monotonic() - ctx.started
    cost_micros, currency = None, None
    if ctx.cost is not None:
        cost_micros, currency = _micros(ctx.cost[0]), ctx.cost[1]
    elif response.headers.get("x-mediagate-cost") is not None:   # a chat's cost, or what a failure may have cost
        cost_micros = _micros(response.headers["x-mediagate-cost"])
        currency = response.headers.get("x-mediagate-cost-currency", "USD") if cost_micros is not None else None
    status = response.status_code
    pending = status == 202 and d.get("video_id") is not None
    return {"id": d["record_id"], "object": "request", "created_at": round(time.time() - elapsed, 3),
            "request_id": ctx.request_id, "key": ctx.key, "key_id": d.get("key_id"), "team": d["team"],
            "endpoint": ctx.endpoint, "model": model, "provider": provider,
            "status": "pending" if pending else "succeeded" if status < 400 else "failed", "http_status": status,
            "error_code": ctx.error_code, "cost_micros": cost_micros, "cost_currency": currency,
            "latency_ms": round(elapsed * 1000, 1), "attempts": d.get("attempts", []), "adjustments": d.get("adjustments", []),
            "images": d.get("images", 0), "video_seconds": 0, "video_id": d.get("video_id"),
            "payloads": d.get("payloads")}


def usage_delta(record: dict[str, Any]) -> dict[str, Any]:
    """One record's contribution to its day's usage (the record's day, even for a video finished later)."""
    values = {"requests": 1, "images": int(record.get("images") or 0), "video_ms": round((record.get("video_seconds") or 0) * 1000)}
    if record.get("cost_micros"):
        values[f"cost_micros:{record.get('cost_currency') or 'USD'}"] = int(record["cost_micros"])
    return {"day": day_of(record["created_at"]), "team": record["team"], "key": record.get("key") or "",
            "model": record.get("model") or "", "provider": record.get("provider") or "", "values": values}


def job_cost(job: dict[str, Any]) -> float | None:
    """What an ended video job cost: its price when completed, what its failed attempts may have cost otherwise
    (the same sum mediagate.auth charges to the key's budget)."""
    if job.get("cost") is not None:
        return float(job["cost"])
    if job.get("status") == "failed":
        return sum(a.get("cost") or 0 for a in job.get("attempts", []) if isinstance(a, dict))
    return None


def public(record: dict[str, Any], summary: bool = False, with_payloads: bool = False) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in ("cost_micros", "payloads")}
    out["cost"] = None if record.get("cost_micros") is None else round(record["cost_micros"] / pricing.MICROS, 6)
    out["payloads_stored"] = bool(record.get("payloads"))
    if with_payloads:
        out["payloads"] = record.get("payloads")
    if summary:
        for k in ("attempts", "adjustments", "request_id", "key_id"):
            out.pop(k, None)
    return out


# ------------------------------------------------------------------ the recorder (off the hot path)

class Recorder:
    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(RECORD_QUEUE_MAX)
        self._hurry = asyncio.Event()   # a reader (or shutdown) waits on the queue: write now, no linger

    def submit(self, kind: str, item: Any) -> None:
        try:
            self.queue.put_nowait((kind, item))
        except asyncio.QueueFull:
            metrics.HISTORY_DROPPED.inc()

    def record(self, request: Request, ctx: reqctx.RequestContext, response: Response, model: str | None,
               provider: str | None) -> None:
        """Called when a request's answer is sent: a generation that passed the key check is recorded."""
        if ctx.endpoint not in RECORDED_ENDPOINTS or "team" not in ctx.details:
            return
        if request.query_params.get("dryRun", "").lower() in ("1", "true", "yes"):
            return
        self.submit("add", build(ctx, response, model, provider))

    def job_ended(self, job: dict[str, Any]) -> None:
        """A video job ended: its creating request's record gets the outcome, cost and seconds."""
        record_id, created = job.get("request_record"), job.get("created_at")
        if not record_id or created is None:
            return
        cost = job_cost(job)
        micros = _micros(cost) if cost is not None else None
        completed = job.get("status") == "completed"
        seconds = float(job.get("seconds") or 0) * max(1, len(job.get("outputs", []))) if completed else 0.0
        state = "succeeded" if completed else "failed" if job.get("status") == "failed" else "cancelled"
        fields = {"status": state, "cost_micros": micros,
                  "cost_currency": job.get("cost_currency") or ("USD" if micros else None), "video_seconds": seconds,
                  "provider": job.get("provider"), "attempts": job.get("attempts", []),
                  "error_code": (job.get("error") or {}).get("code"), "finished_at": job.get("completed_at")}
        values: dict[str, int] = {"video_ms": round(seconds * 1000)}
        if micros:
            values[f"cost_micros:{fields['cost_currency']}"] = micros
        delta = {"day": day_of(created), "team": job.get("team") or DEFAULT_TEAM, "key": job.get("key_name") or "",
                 "model": job.get("model") or "", "provider": job.get("provider") or "", "values": values}
        self.submit("finish", (record_id, fields, delta, 0))

    async def flush(self, timeout_s: float = FLUSH_WAIT_S) -> None:
        """Wait (bounded) until what this process queued is written: a reader sees its own requests."""
        self._hurry.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.queue.join()

    async def run(self) -> None:
        """Write the queue in batches. A record that finds the queue otherwise empty lingers RECORD_LINGER_S for
        company: at a steady few hundred requests a second that is one transaction (and one trip to the store's
        thread) per ~10 records instead of one per record."""
        while True:
            batch = [await self.queue.get()]
            if self.queue.qsize() < RECORD_BATCH - 1 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECORD_LINGER_S):
                        await self._hurry.wait()
            self._hurry.clear()
            while len(batch) < RECORD_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:  # never let one bad batch end the recorder
                log.exception("request history: a batch of %d could not be written", len(batch))
                metrics.HISTORY_DROPPED.inc(len(batch))
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _write(self, batch: list[tuple[str, Any]]) -> None:
        """Adds in one call, then each finish; a retry after the store failed redoes only what was not written."""
        adds = [item for kind, item in batch if kind == "add"]
        finishes = [item for kind, item in batch if kind == "finish"]
        for attempt in range(STORE_RETRIES):
            try:
                if adds:
                    await self.store.add(adds)
                    adds = []
                while finishes:
                    record_id, fields, delta, tries = finishes[0]
                    if not await self.store.finish(record_id, fields, delta) and tries < FINISH_RETRIES:
                        asyncio.get_running_loop().call_later(STORE_RETRY_S, self.submit, "finish",
                                                              (record_id, fields, delta, tries + 1))
                    finishes.pop(0)
                return
            except StoreUnavailable:
                if attempt == STORE_RETRIES - 1:
                    log.warning("request history: store unavailable; %d record(s) dropped", len(adds) + len(finishes))
                    metrics.HISTORY_DROPPED.inc(len(adds) + len(finishes))
                    return
                await asyncio.sleep(STORE_RETRY_S)

    async def sweeper(self, retention_days: int, interval_s: float = SWEEP_INTERVAL_S) -> None:
        """Delete records older than the retention and usage days older than USAGE_KEEP_DAYS (every instance
        may run this: deletes are idempotent)."""
        while True:
            now = time.time()
            try:
                await self.store.sweep(now - retention_days * DAY_S, day_of(now - USAGE_KEEP_DAYS * DAY_S))
            except Exception:
                log.warning("request history: sweep failed; retrying at the next interval", exc_info=True)
            await asyncio.sleep(interval_s)
