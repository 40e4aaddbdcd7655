"""The ``/__control__`` API tests and benchmarks use to steer the simulator."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .faults import PROTOCOLS, parse_spec, supports
from .jobs import MAX_JOB_MS
from .state import get_state

PREFIX = "/__control__"
MAX_CHUNK_MS = 60_000.0


def _bad(message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object body, ``{}`` when empty; ValueError when not an object."""
    raw = await request.read()
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


async def queue_fault(request: web.Request) -> web.Response:
    """Queue ``fault`` for the next ``count`` requests of ``protocol`` (null = any)."""
    try:
        body = await _body(request)
        spec = str(body["fault"])
        parse_spec(spec)
    except (ValueError, KeyError) as exc:
        return _bad(f"invalid fault request: {exc}")
    count = body.get("count", 1)
    protocol = body.get("protocol")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return _bad("count must be a positive integer")
    if protocol is not None and protocol not in PROTOCOLS:
        return _bad(f"protocol must be null or one of {sorted(PROTOCOLS)}")
    if protocol is not None and not supports(protocol, spec):
        return _bad(f"protocol {protocol} cannot express fault {spec!r}")
    state = get_state(request)
    state.queue_fault(spec.strip().lower(), count, protocol)
    return web.json_response({"ok": True, "queued": [f.as_dict() for f in state.faults]})


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [f.as_dict() for f in get_state(request).faults]})


def _config(request: web.Request) -> dict[str, float]:
    state = get_state(request)
    return {"latency_ms": state.latency_ms, "job_ms": state.job_ms, "video_job_ms": state.video_job_ms,
            "chunk_ms": state.chunk_ms}


async def set_config(request: web.Request) -> web.Response:
    """Set the base latency, the async job times and/or the streaming chunk delay.

    ``job_ms`` sets how long every async job runs, video jobs included, unless the same
    call also gives ``video_job_ms`` (video jobs default to a longer time of their own).
    """
    state = get_state(request)
    try:
        body = await _body(request)
        latency = float(body.get("latency_ms", state.latency_ms))
        job_ms = float(body.get("job_ms", state.job_ms))
        video_job_ms = float(body.get("video_job_ms", job_ms if "job_ms" in body else state.video_job_ms))
        chunk_ms = float(body.get("chunk_ms", state.chunk_ms))
    except (ValueError, TypeError) as exc:
        return _bad(f"invalid config: {exc}")
    if latency < 0:
        return _bad("latency_ms must be >= 0")
    for name, value in (("job_ms", job_ms), ("video_job_ms", video_job_ms)):
        if not 0 <= value <= MAX_JOB_MS:
            return _bad(f"{name} must be between 0 and {MAX_JOB_MS:.0f}")
    if not 0 <= chunk_ms <= MAX_CHUNK_MS:
        return _bad(f"chunk_ms must be between 0 and {MAX_CHUNK_MS:.0f}")
    state.latency_ms = latency
    state.job_ms = job_ms
    state.video_job_ms = video_job_ms
    state.chunk_ms = chunk_ms
    return web.json_response({"ok": True, "config": _config(request)})


async def get_config(request: web.Request) -> web.Response:
    return web.json_response({"config": _config(request)})


async def reset(request: web.Request) -> web.Response:
    get_state(request).reset()
    return web.json_response({"ok": True})


async def list_requests(request: web.Request) -> web.Response:
    """The logged protocol requests, oldest first; ``?protocol=`` filters."""
    protocol = request.query.get("protocol")
    entries = [e for e in get_state(request).requests if protocol in (None, e["protocol"])]
    return web.json_response({"requests": entries})


async def post_counts(request: web.Request) -> web.Response:
    """How many POSTs each path received since the last reset (the request log keeps only the latest)."""
    return web.json_response({"posts": dict(get_state(request).posts)})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def add_routes(app: web.Application) -> None:
    """Mount the control API under ``/__control__``."""
    app.router.add_post(f"{PREFIX}/faults", queue_fault)
    app.router.add_get(f"{PREFIX}/faults", list_faults)
    app.router.add_post(f"{PREFIX}/config", set_config)
    app.router.add_get(f"{PREFIX}/config", get_config)
    app.router.add_post(f"{PREFIX}/reset", reset)
    app.router.add_get(f"{PREFIX}/requests", list_requests)
    app.router.add_get(f"{PREFIX}/health", health)
    app.router.add_get(f"{PREFIX}/counts", post_counts)
