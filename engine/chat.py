"""POST /chat/completions: a passthrough to OpenAI-compatible chat providers.

The caller's body goes upstream as it is, with only the model renamed; the reply comes back as it is.
With `stream: true` the upstream's server-sent events are relayed as they arrive, chunk by chunk, and
a caller who disconnects closes the upstream connection. Until the first byte is relayed, retryable
failures fall back to the next route by the same rule as any other request (mediagate.routing.may_fall_back:
only when the provider provably did not take it); an accepted stream counts as taken. The request deadline covers it all: a plain
reply, the opening of a stream, and the stream to its end; a stream idle for longer than its provider's
`timeout_s`, or still running at the deadline, is ended with an SSE error event.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any, AsyncIterator

from mediagate import deadline, errormap, lifecycle, metrics, pricing, reqctx, routing, upstream
from mediagate.catalog import Model, Route
from mediagate.errors import GatewayError, UpstreamError, invalid_request
from mediagate.runtime import Runtime

CHARS_PER_TOKEN = 4  # a dry run's input estimate: the usual rough ratio for English text


def _validate(rt: Runtime, body: Any, force_sandbox: bool = False) -> tuple[Model, str | None]:
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", None, "invalid_json")
    name = body.get("model")
    if not isinstance(name, str):
        raise invalid_request("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    model, forced = rt.catalog.resolve(name)
    reqctx.note(model=model.id)
    lifecycle.check(model, forced, lambda r: rt.target(r.provider, force_sandbox) is not None)
    validator = model.validators.get("chat")
    if validator is None:
        raise invalid_request(f"Model '{model.id}' is not a chat model.", "model", "unsupported_model")
    validator.validate(validator.without_nulls(body))   # null is "not given" here too; relayed as sent (OpenAI takes it)
    return model, forced


def _ctx(model: Model, route: Route, body: dict[str, Any]) -> dict[str, Any]:
    return {"route": {"upstream_model": route.model_for("chat"), "provider": route.provider.id}, "values": route.values,
            "model": {"id": model.id}, "extra": {k: v for k, v in body.items() if k != "model"},
            "stream": bool(body.get("stream"))}


def _tokens_in(body: dict[str, Any]) -> int:
    chars = 0
    for message in body.get("messages", []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate(rt: Runtime, body: Any, force_sandbox: bool = False) -> dict[str, Any]:
    model, forced = _validate(rt, body, force_sandbox)
    routes = [r for r in routing.order(model, forced, health=rt.health) if rt.target(r.provider, force_sandbox) is not None]
    if not routes:
        raise errormap.exhausted([], [])
    route = routes[0]
    out_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    produced = pricing.Produced((), 1, {}, tokens={"input": _tokens_in(body), "output": int(out_tokens)})
    cost = pricing.price(route.pricing, produced) or pricing.UNPRICED
    return {"estimated": True, "model": model.id, "provider": route.provider.id, "executed_model": route.model_for("chat"),
            **cost, "notes": ["input tokens estimated from characters; output tokens from max_tokens (0 when not set)"]}


def _usage_cost(route: Route, reply: Any) -> dict[str, Any] | None:
    usage = reply.get("usage") if isinstance(reply, dict) else None
    if not isinstance(usage, dict):
        return None
    tokens = {k: usage.get(f) for k, f in (("input", "prompt_tokens"), ("output", "completion_tokens"))}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in tokens.values()):
        return None
    produced = pricing.Produced((), 1, {}, tokens=tokens)
    return pricing.price(route.pricing, produced)


async def complete(rt: Runtime, body: Any, force_sandbox: bool = False) -> tuple[int, dict[str, str], Any]:
    """(status, headers, body) where body is JSON or, for streams, an async iterator of SSE bytes."""
    model, forced = _validate(rt, body, force_sandbox)
    limit_s = deadline.request_deadline_s(rt.settings, model)
    ends_at = asyncio.get_running_loop().time() + limit_s
    try:
        async with asyncio.timeout_at(ends_at):
            return await _routes(rt, model, forced, body, force_sandbox, ends_at, limit_s)
    except TimeoutError:
        raise deadline.expired(limit_s) from None


async def _routes(rt: Runtime, model: Model, forced: str | None, body: dict[str, Any], force_sandbox: bool,
                  ends_at: float, limit_s: float) -> tuple[int, dict[str, str], Any]:
    attempts: list[dict[str, Any]] = []
    errors: list[UpstreamError] = []
    for route in routing.order(model, forced, health=rt.health):
        started = time.monotonic()
        target = rt.target(route.provider, force_sandbox)
        if target is None:
            err = routing.not_configured(route)
            attempts.append(routing.attempt(route, "chat", started, err))  # listed, not a failure: it was never tried
            continue
        op = route.operation("chat")
        try:
            target = await routing.authorize(rt, route, target)
            request = upstream.render(route.provider, op, _ctx(model, route, body), target)
            headers = {"X-Mediagate-Provider": route.provider.id, "X-Mediagate-Model": model.id, **lifecycle.headers(model)}
            if body.get("stream"):
                stream = _relay(rt, route, request, ends_at, limit_s)
                await stream.__anext__()  # opens the upstream stream: failures before the first byte can fall back
                rt.health.record(route.provider.id, ok=True)
                lifecycle.announce(model)
                return 200, headers, stream
            reply = await rt.transport.send(route.provider, request)
            if not 200 <= reply.status < 300:
                raise upstream.reply_error(route.provider, reply)
            if not isinstance(reply.json, dict):
                raise errormap.make("upstream_malformed", f"{route.provider.name} sent a reply that is not a JSON object.")
        except UpstreamError as err:
            attempts.append(routing.attempt(route, "chat", started, err, target.sandbox))
            errors.append(err)
            if err.retryable:  # only a success clears a cooldown; a caller's error says nothing
                rt.health.record(route.provider.id, ok=False)
            if not err.retryable:
                raise errormap.to_client(err) from None
            if not routing.may_fall_back(err, model):  # the provider may have run (and billed) it: not twice
                raise errormap.after_send(attempts, errors) from None
            metrics.FALLBACKS.labels(route.provider.id).inc()
            continue
        rt.health.record(route.provider.id, ok=True)
        lifecycle.announce(model)
        cost = _usage_cost(route, reply.json)
        if cost:
            headers["X-Mediagate-Cost"] = str(round(cost["total_cost_micros"] / pricing.MICROS, 6))
            headers["X-Mediagate-Cost-Currency"] = cost["currency"]
        return 200, headers, reply.json
    raise errormap.exhausted(attempts, errors)


async def _relay(rt: Runtime, route: Route, request: upstream.UpstreamRequest, ends_at: float,
                 limit_s: float) -> AsyncIterator[bytes]:
    """First yields b"" once the upstream answered 200 (or raises its error), then relays every chunk
    until the stream ends, stays idle past the provider's `timeout_s`, or reaches the request deadline."""
    loop = asyncio.get_running_loop()
    idle_s = route.provider.timeout_s
    async with rt.transport.stream(route.provider, request) as resp:
        if resp.status != 200:
            raise upstream.reply_error(route.provider, await upstream.read_reply(resp))
        yield b""
        chunks = resp.content.iter_any().__aiter__()
        while True:
            left = ends_at - loop.time()
            try:
                async with asyncio.timeout(max(0.0, min(idle_s, left))):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                yield _error_event(deadline.expired(limit_s) if left <= idle_s else GatewayError(
                    504, f"{route.provider.name} sent nothing for {idle_s:g} s; the stream was ended.",
                    "timeout_error", "upstream_timeout"))
                return
            except Exception:  # the provider broke off mid-stream
                yield _error_event(GatewayError(502, f"{route.provider.name} ended the stream early.", "upstream_error",
                                                "upstream_unavailable"))
                return
            yield chunk


def _error_event(err: GatewayError) -> bytes:
    """An OpenAI-shaped error as the stream's last SSE event (after any half-sent event)."""
    return b"\n\ndata: " + json.dumps(err.to_body()).encode() + b"\n\n"
