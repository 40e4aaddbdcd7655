"""Emulated `n`: split into batches of the route's native maximum and run them concurrently.

Outputs keep request order; the first failure cancels the other batches and fails the attempt whole,
so a caller never gets half an answer.
"""

from __future__ import annotations

import asyncio

from engine import context, errormap, extract, polling, upstream
from engine.canonical import Canonical
from engine.catalog import Route
from engine.errors import UpstreamError
from engine.extract import RawOutput
from engine.runtime import Runtime
from engine.upstream import Target


def batches(n: int, native_max: int) -> list[int]:
    full, rest = divmod(n, native_max)
    return [native_max] * full + ([rest] if rest else [])


async def call_once(rt: Runtime, req: Canonical, route: Route, target: Target, n: int) -> list[RawOutput]:
    provider = route.provider
    op = provider.operations[req.operation]
    ctx = context.build(req, route, n)
    reply = await rt.transport.send(provider, upstream.render(provider, op, ctx, target))
    if not 200 <= reply.status < 300:
        raise upstream.reply_error(provider, reply)
    if reply.json is None:
        raise errormap.make("upstream_malformed", f"{provider.name} answered {reply.status} with a body that is not JSON.")
    body = reply.json
    if op.job is not None:
        body = await polling.follow(rt.transport, provider, op.job, target, ctx, body, rt.background)
    outputs = extract.outputs(op, body)
    if len(outputs) < n:
        raise errormap.make("upstream_error", f"{provider.name} returned {len(outputs)} of {n} images.")
    return outputs[:n]


async def run(rt: Runtime, req: Canonical, route: Route, target: Target) -> list[RawOutput]:
    sizes = batches(req.n, route.native_n)
    if len(sizes) == 1:
        return await call_once(rt, req, route, target, sizes[0])
    tasks = [asyncio.ensure_future(call_once(rt, req, route, target, k)) for k in sizes]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in pending:
            t.cancel()
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                if isinstance(exc, UpstreamError):
                    raise errormap.make(exc.code, f"{exc.message} (in one of {len(sizes)} concurrent calls; "
                                        "the whole request failed rather than return part of it)",
                                        exc.status, exc.param, exc.retryable, exc.retry_after_s)
                raise exc  # type: ignore[misc]
        return [o for t in tasks for o in t.result()]
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
