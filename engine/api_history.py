"""Usage and request history: `GET /v1/usage`, `GET /v1/requests`, `GET /v1/requests/{id}` and
`DELETE /v1/requests/{id}/payloads`.

A team's key sees its own team only; MEDIAGATE_ADMIN_KEY sees every team (and may filter by one). Before
reading, this process's recorder queue is drained (bounded by history.FLUSH_WAIT_S), so a caller sees its own
requests at once on the instance that answered them; other instances' within their own flush.
"""

from __future__ import annotations

import datetime
import hmac
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mediagate import auth, history, origin, pricing, reqctx
from mediagate import endpoint as ep
from mediagate.endpoint import endpoint
from mediagate.errors import GatewayError, invalid_request, not_found
from mediagate.runtime import Runtime

GROUPS = ("day", "team", "key", "model", "provider")
STATUSES = ("succeeded", "failed", "pending", "cancelled")
DEFAULT_USAGE_DAYS = 30
MAX_USAGE_DAYS = 400
PAGE_LIMIT_MAX = 100
DEFAULT_PAGE_LIMIT = 20
MAX_FILTER_CHARS = 200
MAX_TIME_S = 253402300799.0     # 9999-12-31T23:59:59Z: the last instant a date can name


async def _scope(request: Request, rt: Runtime, name: str) -> str | None:
    """The team this caller may read (None: every team, for the admin key); 401 / 429 like any endpoint."""
    origin.check_host(request, rt.settings)
    origin.check_origin(request, rt.settings)
    admin, token = rt.settings.admin_key, auth.presented(request)
    if admin and token and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), admin.encode()):
        return None
    caller = await auth.authenticate(request, rt, name)
    ctx = reqctx.current()
    if ctx is not None and caller.key is not None:
        ctx.key, ctx.team = caller.key.get("name"), caller.team
    return caller.team or history.DEFAULT_TEAM


def _filter(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and (not value or len(value) > MAX_FILTER_CHARS):
        raise invalid_request(f"'{name}' must be 1 to {MAX_FILTER_CHARS} characters.", name)
    return value


def _team(request: Request, scope: str | None) -> str | None:
    """The team filter: the admin key may name any; a team's key only its own (403 otherwise, never widened)."""
    asked = _filter(request, "team")
    if scope is not None and asked is not None and asked != scope:
        raise GatewayError(403, "This API key may read its own team's history only.", "invalid_request_error",
                           "permission_denied", "team")
    return asked if scope is None else scope


def _when(value: str | None, param: str) -> float | None:
    """A UNIX time in seconds, or an ISO 8601 date or date-time (UTC unless it names a zone)."""
    if value is None:
        return None
    try:
        when = float(value) if value.isascii() and value.replace(".", "", 1).isdigit() else _iso(value)
    except (ValueError, OverflowError):
        when = -1.0
    if not 0 <= when <= MAX_TIME_S:
        raise invalid_request(f"'{param}' must be a UNIX time in seconds or an ISO 8601 date or date-time "
                              "(1970 to 9999).", param)
    return when


def _iso(value: str) -> float:
    when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_PAGE_LIMIT))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= PAGE_LIMIT_MAX:
        raise invalid_request(f"'limit' must be a whole number from 1 to {PAGE_LIMIT_MAX}.", "limit")
    return int(raw)


@endpoint("usage", authenticated=False)
async def usage(request: Request, rt: Runtime) -> Response:
    """Sums per day, team, key, model and provider (`group_by` picks which), over whole UTC days."""
    scope = await _scope(request, rt, "usage")
    now = time.time()
    start, end = _when(request.query_params.get("start"), "start"), _when(request.query_params.get("end"), "end")
    first = history.day_of(start if start is not None else now - (DEFAULT_USAGE_DAYS - 1) * history.DAY_S)
    last = history.day_of(end if end is not None else now)
    span = (datetime.date.fromisoformat(last) - datetime.date.fromisoformat(first)).days + 1
    if span < 1:
        raise invalid_request("'start' is after 'end'.", "start")
    if span > MAX_USAGE_DAYS:
        raise invalid_request(f"A usage query covers at most {MAX_USAGE_DAYS} days.", "start")
    group_by = [g.strip() for g in request.query_params.get("group_by", ",".join(GROUPS)).split(",") if g.strip()]
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown or len(set(group_by)) != len(group_by):
        raise invalid_request(f"'group_by' takes a comma-separated subset of {', '.join(GROUPS)}.", "group_by")
    team, key = _team(request, scope), _filter(request, "key")
    await rt.history.flush()
    rows = await rt.stores.history.usage(team, key, first, last)
    groups: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in rows:
        sums = groups.setdefault(tuple(row[g] for g in group_by), {})
        sums[row["metric"]] = sums.get(row["metric"], 0) + row["value"]
    data = [{**{g: (v if v != "" else None) for g, v in zip(group_by, k)}, **_sums(s)} for k, s in sorted(groups.items())]
    total: dict[str, int] = {}
    for s in groups.values():
        for metric, value in s.items():
            total[metric] = total.get(metric, 0) + value
    return ep.json_response({"object": "usage", "start": first, "end": last, "team": team, "key": key,
                             "group_by": group_by, "data": data, "total": _sums(total)})


def _sums(metrics: dict[str, int]) -> dict[str, Any]:
    costs = {m.split(":", 1)[1]: v for m, v in metrics.items() if m.startswith("cost_micros:")}
    out: dict[str, Any] = {"requests": metrics.get("requests", 0), "images": metrics.get("images", 0),
                           "video_seconds": metrics.get("video_ms", 0) / 1000}
    if len(costs) <= 1:
        currency, micros = next(iter(costs.items()), (None, 0))
        out.update(cost=round(micros / pricing.MICROS, 6), cost_currency=currency)
    else:   # several currencies are never added up
        out.update(cost=None, cost_currency=None, costs={c: round(v / pricing.MICROS, 6) for c, v in sorted(costs.items())})
    return out


@endpoint("requests.list", authenticated=False)
async def requests_list(request: Request, rt: Runtime) -> Response:
    """Newest first, `after` a cursor (`next_cursor` of the previous page); `summary=true` leaves out
    attempts and adjustments."""
    scope = await _scope(request, rt, "requests.list")
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise invalid_request(f"'status' must be one of {', '.join(STATUSES)}.", "status")
    start, end = _when(q.get("start"), "start"), _when(q.get("end"), "end")
    limit, summary = _limit(request), ep.query_flag(request, "summary")
    team, key, after = _team(request, scope), _filter(request, "key"), _filter(request, "after")
    await rt.history.flush()
    records, cursor = await rt.stores.history.page(team, key, status, start if start is not None else 0.0,
                                                   end if end is not None else time.time() + history.DAY_S, after, limit)
    return ep.json_response({"object": "list", "data": [history.public(r, summary) for r in records],
                             "has_more": cursor is not None, "next_cursor": cursor})


@endpoint("requests.get", authenticated=False)
async def requests_get(request: Request, rt: Runtime) -> Response:
    scope = await _scope(request, rt, "requests.get")
    await rt.history.flush()
    record_id = request.path_params["request_id"]
    record = await rt.stores.history.get(record_id, scope)
    if record is None:
        raise not_found(f"No request with id '{record_id[:100]}'.")
    return ep.json_response(history.public(record, with_payloads=True))


@endpoint("requests.delete_payloads", authenticated=False)
async def requests_delete_payloads(request: Request, rt: Runtime) -> Response:
    scope = await _scope(request, rt, "requests.delete_payloads")
    await rt.history.flush()
    record_id = request.path_params["request_id"]
    if not await rt.stores.history.drop_payloads(record_id, scope):
        raise not_found(f"No request with id '{record_id[:100]}'.")
    return ep.json_response({"id": record_id, "object": "request.payloads.deleted", "deleted": True})
