"""Who is calling and what they may spend: gateway keys checked on every request (DESIGN.md §2, §5a).

`authenticate` runs in the endpoint wrapper (401, 403 for an endpoint, requests per minute, the wrong-key
throttle); `admit` runs once a generating handler has its body (403 for a model, images and video-seconds
per minute, concurrent jobs, and the budget reserved with the dryRun price); `settle` replaces the
reservation with the cost the response reports. Every counter is a Counters window, so the limits hold
across `--workers` and, on Redis, across instances.
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from mediagate import history, keys, metrics, pricing, reqctx
from mediagate.errors import GatewayError, invalid_api_key
from mediagate.runtime import Runtime

MINUTE_S = 60.0
AUTH_FAILURES_PER_MIN = 20          # wrong keys from one client address before its requests are refused (429)
JOB_SLOT_WINDOW_S = 7 * 86400       # a concurrent-job slot never outlives this, even if its release was lost
BUDGET_SLACK_S = 3600.0             # a period's spend counter is kept this long after the period ends
HEADER_WHITESPACE = " \t"           # HTTP's optional whitespace (RFC 9110 OWS): the one rule for every header form
DEFAULT_TEAM = history.DEFAULT_TEAM  # the team of MEDIAGATE_API_KEYS keys, of keys made without one, and of an open gateway
# the `reason` label of mediagate_refusals_total: a fixed set, never a caller's value
REFUSAL_REASONS = ("auth_throttle", "endpoint_not_allowed", "model_not_allowed", "rpm", "images_per_min",
                   "video_seconds_per_min", "concurrent_jobs", "budget")


@dataclass
class Caller:
    key: dict[str, Any] | None = None          # a stored key; None: an unrestricted key, or no keys configured
    team: str | None = None
    rate_headers: dict[str, str] = field(default_factory=dict)
    reserved: tuple[str, int, float] | None = None    # (spend counter, micros reserved, window) until settled


def presented(request: Request) -> str:
    """The key in `Authorization: Bearer …` or `api-key: …`, trimmed by the one whitespace rule."""
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, rest = auth.strip(HEADER_WHITESPACE).partition(" ")
        return rest.strip(HEADER_WHITESPACE) if scheme.lower() == "bearer" else ""
    return request.headers.get("api-key", "").strip(HEADER_WHITESPACE)


def _equal_any(token: str, secrets: frozenset[str]) -> bool:
    given = token.encode("utf-8", "surrogateescape")
    found = False
    for s in secrets:  # every one compared, in constant time each: no early exit says which was close
        found |= hmac.compare_digest(given, s.encode())
    return found


def refused(reason: str) -> None:
    metrics.REFUSALS.labels(reason).inc()


def rate_limited(message: str, limit: int, count: int, reset_s: float) -> GatewayError:
    reset = str(max(1, math.ceil(reset_s)))
    return GatewayError(429, message, "rate_limit_error", "rate_limit_exceeded", None,
                        {"Retry-After": reset, "X-RateLimit-Limit": str(limit),
                         "X-RateLimit-Remaining": str(max(0, limit - count)), "X-RateLimit-Reset": reset})


def forbidden(message: str) -> GatewayError:
    return GatewayError(403, message, "invalid_request_error", "model_not_allowed")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, rt: Runtime, endpoint: str) -> Caller:
    """The caller of this request (also left on `request.state.caller`), or a GatewayError."""
    ring: keys.KeyRing = rt.stores.keys
    caller = Caller()
    request.state.caller = caller
    if not rt.settings.api_keys and not await ring.any_keys():
        history.authenticated(None, None)
        return caller   # no keys anywhere: an open gateway, as before keys existed
    failures = f"authfail:{_client(request)}"
    if await rt.counters.peek(failures) >= AUTH_FAILURES_PER_MIN:
        refused("auth_throttle")
        raise rate_limited("Too many requests with a wrong API key from this address; wait before trying again.",
                           AUTH_FAILURES_PER_MIN, AUTH_FAILURES_PER_MIN, MINUTE_S)
    token = presented(request)
    if token and _equal_any(token, rt.settings.api_keys):
        history.authenticated(None, None)
        return caller
    doc = await ring.verify(token) if token else None
    if doc is None:
        await rt.counters.hit(failures, 1, MINUTE_S)
        raise invalid_api_key()
    caller.key, caller.team = doc, doc.get("team")
    history.authenticated(caller.team, doc)   # known from here: its refusals below are in its history too
    if not keys.allowed(doc.get("endpoints") or [], endpoint):
        refused("endpoint_not_allowed")
        raise forbidden(f"This API key may not call {endpoint}.")
    rpm = doc.get("limits", {}).get("rpm")
    if rpm:
        count, reset = await rt.counters.hit(f"rpm:{doc['id']}", 1, MINUTE_S)
        caller.rate_headers = {"X-RateLimit-Limit": str(rpm), "X-RateLimit-Remaining": str(max(0, rpm - count)),
                               "X-RateLimit-Reset": str(max(1, math.ceil(reset)))}
        if count > rpm:
            refused("rpm")
            raise rate_limited(f"This API key is limited to {rpm} requests per minute.", rpm, count, reset)
    return caller


def caller_of(request: Request) -> Caller:
    return getattr(request.state, "caller", None) or Caller()


def team_of(request: Request) -> str:
    """The team that owns what this request creates and may see (videos, idempotency keys, history)."""
    return caller_of(request).team or DEFAULT_TEAM


async def _take(rt: Runtime, counter: str, amount: int, limit: int, window_s: float, what: str, reason: str) -> None:
    """Add `amount` to a window, or refuse (429) and give it back when that would cross `limit`."""
    count, reset = await rt.counters.hit(counter, amount, window_s)
    if count > limit:
        await rt.counters.hit(counter, -amount, window_s)
        refused(reason)
        raise rate_limited(f"This API key is limited to {limit} {what}.", limit, count - amount, reset)


def _whole(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


async def admit(request: Request, rt: Runtime, body: Any, operation: str, images: Any = (), mask: Any = None,
                sandbox: bool = False) -> None:
    """A stored key's model, quantity and budget checks, before anything is sent (403, 429, 402)."""
    caller = caller_of(request)
    doc = caller.key
    if doc is None or not isinstance(body, dict):
        return
    from mediagate import chat, pipeline
    try:
        model, _ = rt.catalog.resolve(body.get("model"))
    except (GatewayError, TypeError):
        return  # the handler answers the unknown model itself
    if not keys.allowed(doc.get("models") or [], model.id):
        refused("model_not_allowed")
        raise forbidden(f"This API key may not use the model '{model.id}'.")
    limits = doc.get("limits", {})
    n = _whole(body.get("n"), 1)
    if operation in ("generate", "edit") and limits.get("images_per_min"):
        await _take(rt, f"images:{doc['id']}", n, limits["images_per_min"], MINUTE_S, "images per minute",
                    "images_per_min")
    if operation == "video" and limits.get("video_seconds_per_min"):
        try:
            _, _, req = pipeline.prepare(rt, body, "video")
            seconds = math.ceil((req.seconds or 0) * (req.n or 1))
        except GatewayError:
            seconds = 0  # the handler refuses the body itself
        await _take(rt, f"vsec:{doc['id']}", seconds, limits["video_seconds_per_min"], MINUTE_S,
                    "seconds of video per minute", "video_seconds_per_min")
    if operation == "video" and limits.get("max_concurrent_jobs"):
        await _take(rt, f"jobs:{doc['id']}", 1, limits["max_concurrent_jobs"], JOB_SLOT_WINDOW_S, "video jobs at once",
                    "concurrent_jobs")
        request.state.job_slot = True
    budget = doc.get("budget_micros")
    if budget is None:
        return
    if operation == "chat":
        estimate = chat.estimate(rt, body, sandbox)
    else:
        estimate = await pipeline.estimate(rt, body, sandbox, operation, images, mask)
    micros = int(estimate.get("total_cost_micros") or 0)
    period_id, left_s = keys.period(doc, time.time())
    counter, window = f"spend:{doc['id']}:{period_id}", left_s + BUDGET_SLACK_S
    spent, _ = await rt.counters.hit(counter, micros, window)
    if spent > budget:
        await rt.counters.hit(counter, -micros, window)
        refused("budget")
        raise GatewayError(402, f"This request (estimated ${micros / pricing.MICROS:.6f}) would cross the API key's "
                           f"{doc.get('budget_period')} budget of ${budget / pricing.MICROS:.2f} "
                           f"(${(spent - micros) / pricing.MICROS:.6f} spent).", "insufficient_quota", "insufficient_quota")
    caller.reserved = (counter, micros, window)


def _micros(cost_usd: Any) -> int | None:
    try:
        return round(float(cost_usd) * pricing.MICROS)
    except (TypeError, ValueError):
        return None


async def settle(request: Request, rt: Runtime, cost_usd: Any) -> None:
    """Replace this request's reservation with its reported cost (None: not priced, the estimate stands)."""
    caller = caller_of(request)
    if caller.reserved is None:
        return
    counter, reserved, window = caller.reserved
    caller.reserved = None
    actual = _micros(cost_usd)
    if actual is not None and actual != reserved:
        await rt.counters.hit(counter, actual - reserved, window)


async def settle_error(request: Request, rt: Runtime, err: GatewayError) -> None:
    """A refused or failed request pays what its error says may have been billed (X-Mediagate-Cost), else nothing."""
    await release(request, rt, err.headers.get("X-Mediagate-Cost", 0))


async def release(request: Request, rt: Runtime, cost_usd: Any = 0) -> None:
    """Nothing (more) was started for this request: give back its job slot and settle at `cost_usd`."""
    if getattr(request.state, "job_slot", False):
        doc = caller_of(request).key
        if doc is not None:
            await rt.counters.hit(f"jobs:{doc['id']}", -1, JOB_SLOT_WINDOW_S)
        request.state.job_slot = False
    await settle(request, rt, cost_usd)


def job_fields(request: Request) -> dict[str, Any]:
    """What a video job carries: its team (who may see it), the request record its finish completes, and for a
    stored key what its finish is charged to (the reservation moves to the job)."""
    caller = caller_of(request)
    ctx = reqctx.current()
    out: dict[str, Any] = {"team": team_of(request)}
    if ctx is not None and "record_id" in ctx.details:
        out["request_record"] = ctx.details["record_id"]
    if caller.key is None:
        return out
    out.update(key_id=caller.key["id"], key_name=caller.key.get("name"))
    if caller.reserved is not None:
        counter, micros, window = caller.reserved
        out["billing"] = {"counter": counter, "reserved_micros": micros, "window_s": window}
    if getattr(request.state, "job_slot", False):
        out["job_slot"] = True
    return out


def job_kept(request: Request) -> None:
    """The job was stored: its finish settles the reservation and frees the slot, not this request."""
    caller_of(request).reserved = None
    request.state.job_slot = False


async def job_finished(rt: Runtime, job: dict[str, Any]) -> None:
    """A video job ended (completed, failed or deleted): charge its cost and free its slot."""
    billing = job.get("billing")
    if billing:
        cost = job.get("cost")
        if cost is None and job.get("status") == "failed":
            cost = sum(a.get("cost") or 0 for a in job.get("attempts", []) if isinstance(a, dict))
        actual = _micros(cost)
        if actual is not None and actual != billing["reserved_micros"]:
            await rt.counters.hit(billing["counter"], actual - billing["reserved_micros"], billing["window_s"])
    if job.get("job_slot") and job.get("key_id"):
        await rt.counters.hit(f"jobs:{job['key_id']}", -1, JOB_SLOT_WINDOW_S)


async def check_admin(request: Request, rt: Runtime) -> None:
    """The admin API answers only to MEDIAGATE_ADMIN_KEY; with none set it is off (401 for everyone). Wrong
    admin keys count toward the same per-address throttle as wrong API keys."""
    admin = rt.settings.admin_key
    if not admin:
        raise GatewayError(401, "The admin API is off: set MEDIAGATE_ADMIN_KEY to use it.", "invalid_request_error",
                           "invalid_api_key")
    failures = f"authfail:{_client(request)}"
    if await rt.counters.peek(failures) >= AUTH_FAILURES_PER_MIN:
        refused("auth_throttle")
        raise rate_limited("Too many requests with a wrong key from this address; wait before trying again.",
                           AUTH_FAILURES_PER_MIN, AUTH_FAILURES_PER_MIN, MINUTE_S)
    token = presented(request)
    if not token or not hmac.compare_digest(token.encode("utf-8", "surrogateescape"), admin.encode()):
        await rt.counters.hit(failures, 1, MINUTE_S)
        raise GatewayError(401, "Missing or invalid admin key (MEDIAGATE_ADMIN_KEY).", "invalid_request_error",
                           "invalid_api_key")
