"""Emulated `n`: split into batches of the route's native maximum and run them concurrently.

Outputs keep request order; the first failure cancels the other batches and fails the attempt whole,
so a caller never gets half an answer. The failure says which batches the provider may still have taken
(succeeded, failed after being sent, or cancelled in flight): those are billed whatever the caller gets.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Coroutine, Iterator, TypeVar

from mediagate import context, errormap, extract, metrics, polling, upstream
from mediagate.canonical import Canonical
from mediagate.catalog import Route
from mediagate.errors import UpstreamError
from mediagate.extract import RawOutput
from mediagate.runtime import Runtime
from mediagate.provider import Operation, Provider
from mediagate.upstream import Target, Written

T = TypeVar("T")


def batches(n: int, native_max: int) -> list[int]:
    full, rest = divmod(n, native_max)
    return [native_max] * full + ([rest] if rest else [])


async def submit_reply(rt: Runtime, provider: Provider, op: Operation, ctx: dict[str, Any], target: Target,
                       written: Written | None = None) -> upstream.UpstreamReply:
    """Send the operation's request; its successful reply (JSON, or the declared file), or the error normalized."""
    reply = await rt.transport.send(provider, await upstream.render_async(provider, op, ctx, target), written)
    upstream.check_reply(provider, reply)
    if op.file_types is not None and op.job is None:
        extract.file_body(op, provider.name, reply.headers.get("content-type", ""), reply.body)
    elif reply.json is None:
        raise errormap.make("upstream_malformed", f"{provider.name} answered {reply.status} with a body that is not JSON.")
    return reply


async def submit(rt: Runtime, provider: Provider, op: Operation, ctx: dict[str, Any], target: Target,
                 written: Written | None = None) -> Any:
    """Send the operation's request; its JSON reply, or the provider's error normalized."""
    return (await submit_reply(rt, provider, op, ctx, target, written)).json


async def call_once(rt: Runtime, req: Canonical, route: Route, target: Target, n: int,
                    written: Written | None = None, idempotency_key: str | None = None) -> list[RawOutput]:
    provider = route.provider
    op = route.operation(req.operation)
    ctx = {**context.build(req, route, n), "idempotency_key": idempotency_key}
    reply = await submit_reply(rt, provider, op, ctx, target, written)
    body: Any = reply.body if op.file_types is not None and op.job is None else reply.json
    if op.job is not None:
        try:
            body = await polling.follow(rt.transport, provider, op.job, target, ctx, body, rt.background,
                                        submitted_headers=reply.headers)
        except UpstreamError as exc:  # the job was accepted: whatever a poll or result reply says, it was taken
            raise dataclasses.replace(exc, not_billed=False) from None
    # an async operation's reply view carries the submit reply's headers and status (its body is the final one)
    outputs = extract.outputs(op, body, reply.headers, reply.status)
    found = extract.metadata(op, extract.view(True, body, reply.headers, reply.status), provider.secrets.values())
    if found is not None:
        outputs = [dataclasses.replace(o, upstream=found) for o in outputs]
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


async def _recorded(call: Coroutine[Any, Any, T], failures: dict[int, UpstreamError], index: int) -> T:
    try:
        return await call
    except UpstreamError as exc:
        failures[index] = exc
        raise


async def run(rt: Runtime, req: Canonical, route: Route, target: Target,
              idempotency_key: str | None = None) -> list[RawOutput]:
    """Every batch's outputs in order. `idempotency_key` (when the operation declares a header for it) is
    suffixed per batch, so a retry of the attempt replays each batch under its own key."""
    sizes = batches(req.n, route.native_n)
    if len(sizes) > 1:
        metrics.FANOUT.labels(route.provider.id).inc()
        metrics.FANOUT_CALLS.labels(route.provider.id).inc(len(sizes))
    written = [Written() for _ in sizes]
    failures: dict[int, UpstreamError] = {}
    keys = [f"{idempotency_key}-{i}" if idempotency_key else None for i in range(len(sizes))]
    try:
        results = await all_or_nothing([_recorded(call_once(rt, req, route, target, k, written[i], keys[i]), failures, i)
                                        for i, k in enumerate(sizes)])
    except UpstreamError as exc:
        # a batch that failed is judged by its own error; one that succeeded or was cancelled after its request
        # went out may be finished (and billed) by the provider all the same
        taken = tuple(k for i, k in enumerate(sizes) if (failures[i].taken if i in failures else written[i].sent))
        if len(sizes) == 1:
            raise dataclasses.replace(exc, taken_batches=taken) from None
        raise dataclasses.replace(exc, message=f"{exc.message} (in one of {len(sizes)} concurrent calls; "
                                  "the whole request failed rather than return part of it)", taken_batches=taken) from None
    return [o for batch in results for o in batch]
