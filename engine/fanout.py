"""Emulated `n`: split into batches of the route's native maximum and run them concurrently.

Outputs keep request order; the first failure cancels the other batches and fails the attempt whole,
so a caller never gets half an answer.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, Iterator, TypeVar

from mediagate import context, errormap, extract, polling, upstream
from mediagate.canonical import Canonical
from mediagate.catalog import Route
from mediagate.errors import UpstreamError
from mediagate.extract import RawOutput
from mediagate.runtime import Runtime
from mediagate.provider import Operation, Provider
from mediagate.upstream import Target

T = TypeVar("T")


def batches(n: int, native_max: int) -> list[int]:
    full, rest = divmod(n, native_max)
    return [native_max] * full + ([rest] if rest else [])


async def submit(rt: Runtime, provider: Provider, op: Operation, ctx: dict[str, Any], target: Target) -> Any:
    """Send the operation's request; its JSON reply, or the provider's error normalized."""
    reply = await rt.transport.send(provider, await upstream.render_async(provider, op, ctx, target))
    if not 200 <= reply.status < 300:
        raise upstream.reply_error(provider, reply)
    if reply.json is None:
        raise errormap.make("upstream_malformed", f"{provider.name} answered {reply.status} with a body that is not JSON.")
    return reply.json


async def call_once(rt: Runtime, req: Canonical, route: Route, target: Target, n: int) -> list[RawOutput]:
    provider = route.provider
    op = route.operation(req.operation)
    ctx = context.build(req, route, n)
    body = await submit(rt, provider, op, ctx, target)
    if op.job is not None:
        body = await polling.follow(rt.transport, provider, op.job, target, ctx, body, rt.background)
    outputs = extract.outputs(op, body)
    if len(outputs) < n:
        raise errormap.make("upstream_error", f"{provider.name} returned {len(outputs)} of {n} images.")
    return outputs[:n]


async def all_or_nothing(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; results in order, or the first UpstreamError after every sibling has been
    cancelled and awaited (nothing left running, no exception left unretrieved)."""
    if len(coros) == 1:
        return [await coros[0]]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as eg:
        upstream_errors = [e for e in _leaves(eg) if isinstance(e, UpstreamError)]
        if upstream_errors and len(upstream_errors) == len(list(_leaves(eg))):
            raise upstream_errors[0] from None
        raise
    return [t.result() for t in tasks]


def _leaves(eg: BaseExceptionGroup) -> Iterator[BaseException]:
    for e in eg.exceptions:
        if isinstance(e, BaseExceptionGroup):
            yield from _leaves(e)
        else:
            yield e


async def run(rt: Runtime, req: Canonical, route: Route, target: Target) -> list[RawOutput]:
    sizes = batches(req.n, route.native_n)
    try:
        results = await all_or_nothing([call_once(rt, req, route, target, k) for k in sizes])
    except UpstreamError as exc:
        if len(sizes) == 1:
            raise
        raise errormap.make(exc.code, f"{exc.message} (in one of {len(sizes)} concurrent calls; "
                            "the whole request failed rather than return part of it)",
                            exc.status, exc.param, exc.retryable, exc.retry_after_s) from None
    return [o for batch in results for o in batch]
