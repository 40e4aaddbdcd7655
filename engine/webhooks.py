"""Webhook deliveries signed per Standard Webhooks, retried with backoff, kept across restarts.

Headers: webhook-id, webhook-timestamp, webhook-signature = "v1," + base64(HMAC-SHA256(key, id.timestamp.body)),
the key being the base64 part of a `whsec_...` secret. Receivers must answer 2xx; anything else is retried
on the schedule below. The target URL is held to the same rules as a caller's image URL (no private
addresses unless the operator allows them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any

from mediagate import metrics, safefetch
from mediagate.jobstore import JobStore, StoreUnavailable

log = logging.getLogger("mediagate")
RETRY_SCHEDULE_S = (5, 30, 120, 600, 1800, 7200)   # after the first try; then the delivery is given up
DELIVERY_TIMEOUT_S = 15.0
CLAIM_S = DELIVERY_TIMEOUT_S * 2 + 5               # a claimed delivery is due again after this, if unanswered
CLAIM_BATCH = 50                                   # deliveries sent at once per instance per poll
POLL_INTERVAL_S = 1.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.split("_", 1)[1] if secret.startswith("whsec_") else secret, validate=True)


def check_secret(secret: str) -> None:
    """Refuse at start-up a secret no receiver could verify against (not whsec_ + base64)."""
    try:
        if not secret.startswith("whsec_") or len(_key(secret)) < 16:
            raise ValueError
    except ValueError:
        raise ValueError("MEDIAGATE_WEBHOOK_SECRET must be whsec_ followed by base64 of at least 16 bytes") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """What a receiver does (used by the tests, and handy for users)."""
    ts = int(headers["webhook-timestamp"])
    if abs(time.time() - ts) > tolerance_s:
        return False
    expected = sign(secret, headers["webhook-id"], ts, body).split(",", 1)[1]
    return any(hmac.compare_digest(expected.encode(), s.split(",", 1)[1].encode())
               for s in headers["webhook-signature"].split() if s.startswith("v1,"))


def event(kind: str, video: dict[str, Any]) -> dict[str, Any]:
    return {"id": "evt_" + secrets.token_hex(12), "object": "event", "created_at": int(time.time()), "type": kind,
            "data": {"id": video["id"], "status": video["status"], "model": video["model"]}}


async def enqueue(store: JobStore, job: dict[str, Any], kind: str) -> None:
    if not job.get("webhook_url"):
        return
    evt = event(kind, job)
    await store.add_delivery({"id": evt["id"], "job_id": job["id"], "url": job["webhook_url"], "event": evt})
    await _note(store, job["id"], {"id": evt["id"], "type": kind, "state": "pending", "attempts": 0,
                                   "last_status": None, "next_attempt_at": int(time.time())})


async def _note(store: JobStore, job_id: str, outcome: dict[str, Any]) -> None:
    """A delivery's latest outcome on its job too, so whoever reads the video sees its webhooks (the URL is
    left out: it may carry the receiver's token). Best effort: the outbox, not this note, drives retries."""
    def put(job: dict[str, Any]) -> dict[str, Any]:
        kept = [d for d in job.get("webhook_deliveries", []) if d.get("id") != outcome["id"]]
        return {**job, "webhook_deliveries": kept + [outcome]}
    try:
        await store.mutate(job_id, put)
    except StoreUnavailable:
        log.warning("webhook %s: outcome not noted on video %s (store unavailable)", outcome["id"], job_id)


async def _deliver(store: JobStore, secret: str, policy: safefetch.FetchPolicy, d: dict[str, Any]) -> bool:
    body = json.dumps(d["event"], separators=(",", ":")).encode()
    ts = int(time.time())
    headers = {"content-type": "application/json", "webhook-id": d["id"], "webhook-timestamp": str(ts),
               "webhook-signature": sign(secret, d["id"], ts, body), "user-agent": "mediagate-webhooks"}
    attempts = d["attempts"] + 1
    try:
        status = await safefetch.post(d["url"], body, headers, policy, DELIVERY_TIMEOUT_S)
        ok = 200 <= status < 300
        metrics.WEBHOOKS.labels("delivered" if ok else "rejected").inc()
    except Exception as exc:  # any failure is one failed attempt; the schedule decides what next
        status, ok = 0, False
        metrics.WEBHOOKS.labels("unreachable").inc()
        log.warning("webhook %s to %s failed: %s", d["id"], d["url"], type(exc).__name__)
    doc = {k: v for k, v in d.items() if k != "attempts"} | {"last_status": status}
    try:
        await _record(store, d["id"], attempts, ok, doc)
    except StoreUnavailable:  # the claim runs out and the delivery is tried again once the store is back
        log.warning("webhook %s: outcome not recorded (store unavailable)", d["id"])
        return ok
    given_up = not ok and attempts > len(RETRY_SCHEDULE_S)
    await _note(store, d["job_id"], {
        "id": d["id"], "type": d["event"].get("type"), "attempts": attempts, "last_status": status,
        "state": "delivered" if ok else "given_up" if given_up else "retrying",
        "next_attempt_at": None if ok or given_up else int(time.time() + RETRY_SCHEDULE_S[attempts - 1])})
    return ok


async def _record(store: JobStore, delivery_id: str, attempts: int, ok: bool, doc: dict[str, Any]) -> None:
    """Done, given up after the last scheduled retry, or due again at the next step of the schedule."""
    if ok:
        await store.update_delivery(delivery_id, time.time(), attempts, True, doc)
    elif attempts > len(RETRY_SCHEDULE_S):
        log.warning("webhook %s to %s given up after %d attempts", delivery_id, doc.get("url"), attempts)
        metrics.WEBHOOKS.labels("given_up").inc()
        await store.update_delivery(delivery_id, time.time(), attempts, True, doc | {"given_up": True})
    else:
        await store.update_delivery(delivery_id, time.time() + RETRY_SCHEDULE_S[attempts - 1], attempts, False, doc)


async def deliver_due(store: JobStore, secret: str, policy: safefetch.FetchPolicy) -> int:
    """Claim every due delivery and send them concurrently (one slow receiver holds up no other); returns
    how many succeeded. A claim outlasts a delivery's timeout, so no other instance sends the same event
    meanwhile; one whose sender died is due again when its claim runs out."""
    claimed = await store.claim_deliveries(time.time(), CLAIM_S, CLAIM_BATCH)
    results = await asyncio.gather(*(_deliver(store, secret, policy, d) for d in claimed), return_exceptions=True)
    return sum(1 for r in results if r is True)


async def run(store: JobStore, secret: str, policy: safefetch.FetchPolicy, interval_s: float = POLL_INTERVAL_S) -> None:
    """The delivery loop: each poll claims what is due and sends it in the background, so a receiver that
    takes its full timeout delays neither the deliveries beside it nor the next poll's."""
    inflight: set[asyncio.Task[bool]] = set()
    try:
        while True:
            try:
                room = CLAIM_BATCH - len(inflight)
                for d in await store.claim_deliveries(time.time(), CLAIM_S, room) if room > 0 else []:
                    task = asyncio.create_task(_deliver(store, secret, policy, d))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
            except StoreUnavailable:
                pass  # the outbox waits in the store; retried next poll
            except Exception:
                log.exception("webhook delivery loop failed; retrying")
            await asyncio.sleep(interval_s)
    finally:
        for task in inflight:
            task.cancel()
