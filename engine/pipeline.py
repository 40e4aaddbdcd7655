"""One image request's way through the engine:

resolve model -> validate against the compiled schema -> normalize (mediagate.normalize operations) ->
route -> fan out and call (mediagate.fanout) -> map errors, fall back only where no second charge can
follow (mediagate.routing.may_fall_back) -> post-process
(mediagate.postprocess) -> the OpenAI-shaped response with metadata.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from mediagate import (carried, deadline, errormap, fanout, inputs, lifecycle, metrics, postprocess, pricing, replybudget,
                       reqctx, routing)
from mediagate.errors import GatewayError, UpstreamError, invalid_request
from mediagate.canonical import Canonical
from mediagate.catalog import Model, Route
from mediagate.runtime import Runtime


@dataclass
class Result:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def prepare(rt: Runtime, body: Any, operation: str = "generate",
            force_sandbox: bool = False) -> tuple[Model, str | None, Canonical]:
    """Resolve the model (a retired one refused), validate against its compiled schema and normalize:
    shared by calls and dry runs."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", None, "invalid_json")
    name = body.get("model")
    if name is None:
        raise invalid_request("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(name, str):
        raise invalid_request("Invalid type for 'model': expected a string.", "model", "invalid_type")
    model, forced = rt.catalog.resolve(name)
    reqctx.note(model=model.id)
    lifecycle.check(model, forced, lambda r: rt.target(r.provider, force_sandbox) is not None)
    validator = model.validators.get(operation)
    if validator is None:
        raise invalid_request(f"Model '{model.id}' does not support this endpoint.", "model", "unsupported_model")
    body = validator.without_nulls(body)
    validator.validate(body)
    return model, forced, model.canonical(body, operation, inputs_pending=True)   # inputs come in a second pass


def _produced(req: Canonical, route: Route, sizes: tuple[tuple[int, int], ...], size: str | None,
              fmt: str | None, calls: int | None = None) -> pricing.Produced:
    return pricing.Produced(sizes, len(fanout.batches(req.n, route.native_n)) if calls is None else calls,
                            pricing.facts({**req.shape.as_context(), "size": size}, req.params, req.thinking, fmt),
                            seconds=req.seconds or 0.0)


async def with_inputs(rt: Runtime, model: Model, req: Canonical, images: list[Any], mask: Any) -> Canonical:
    """An edit's canonical request with its input images decoded, checked and in place."""
    loaded, mask_image = await inputs.load(images, mask, model.input_image_limit, rt.fetch_policy)
    first = loaded[0]
    return model.canonical(req.body, req.operation, images=tuple(loaded), mask=mask_image,
                           implicit_size=f"{first.width}x{first.height}")


async def generate(rt: Runtime, body: Any, base_url: str, force_sandbox: bool = False,
                   operation: str = "generate", images: list[Any] | None = None, mask: Any = None) -> Result:
    model, forced, req = prepare(rt, body, operation, force_sandbox)
    if operation == "edit":
        req = await with_inputs(rt, model, req, images or [], mask)
        carried.refuse_unsendable(model, forced, req)
    limit_s = deadline.request_deadline_s(rt.settings, model)
    try:
        async with asyncio.timeout(limit_s):
            return await _route(rt, model, forced, req, base_url, force_sandbox)
    except TimeoutError:
        raise deadline.expired(limit_s) from None


async def estimate(rt: Runtime, body: Any, force_sandbox: bool = False, operation: str = "generate",
                   images: list[Any] | None = None, mask: Any = None) -> dict[str, Any]:
    """`?dryRun=true`: validate (inputs included), route and price without calling any provider."""
    model, forced, req = prepare(rt, body, operation, force_sandbox)
    if operation == "edit":
        req = await with_inputs(rt, model, req, images or [], mask)
        carried.refuse_unsendable(model, forced, req)
    ordered = routing.order(model, forced, health=rt.health)
    if ordered and not any(routing.takes_prompt(r, req.prompt) for r in ordered):
        raise routing.prompt_too_long(ordered, req.prompt)
    routes = [r for r in ordered if rt.target(r.provider, force_sandbox) is not None and routing.takes_prompt(r, req.prompt)]
    if not routes:
        raise errormap.exhausted([], [])
    route = routes[0]
    req, _ = carried.adapt(req, route)
    sizes = ((req.shape.width or 0, req.shape.height or 0),) * req.n
    cost = pricing.price(route.pricing, _produced(req, route, sizes, req.shape.size, req.output_format or req.upstream_format))
    return {"estimated": True, "model": model.id, "provider": route.provider.id, "executed_model": route.model_for(req.operation),
            **(cost or pricing.UNPRICED), "adjustments": list(req.adjustments)}


def _own(adjustments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"adjustments": adjustments} if adjustments else {}


def _possible_cost(req: Canonical, route: Route, err: UpstreamError) -> dict[str, Any] | None:
    """What a failed attempt may have cost: the batches the provider may have taken, priced as requested."""
    taken = err.taken_batches if err.taken_batches is not None else (
        tuple(fanout.batches(req.n, route.native_n)) if err.taken else ())
    if not taken:
        return None
    sizes = ((req.shape.width or 0, req.shape.height or 0),) * sum(taken)
    return pricing.price(route.pricing, _produced(req, route, sizes, req.shape.size, req.output_format or req.upstream_format,
                                                  calls=len(taken)))


def _upstream(outputs: list[Any]) -> dict[str, Any]:
    """`metadata.upstream`: one object per upstream call that surfaced reply fields (outputs.metadata)."""
    calls: list[dict[str, Any]] = []
    for out in outputs:
        if out.upstream is not None and not any(out.upstream is c for c in calls):
            calls.append(out.upstream)
    return {"upstream": calls} if calls else {}


def _failed(err: GatewayError, charges: pricing.Charges) -> GatewayError:
    err.headers.update(charges.headers())
    return err


async def _route(rt: Runtime, model: Model, forced: str | None, req: Canonical, base_url: str,
                 force_sandbox: bool) -> Result:
    attempts: list[dict[str, Any]] = []
    errors: list[UpstreamError] = []
    planned = req
    charges = pricing.Charges()
    ordered = routing.order(model, forced, health=rt.health)
    if ordered and not any(routing.takes_prompt(r, planned.prompt) for r in ordered):
        raise routing.prompt_too_long(ordered, planned.prompt)
    for route in ordered:
        if not routing.takes_prompt(route, planned.prompt):  # this provider takes shorter prompts: never sent
            attempts.append(routing.skipped_for_prompt(route, planned.operation, planned.prompt))
            continue
        req, own = carried.adapt(planned, route)  # this route's own adjustments (a fallback's too)
        started = time.monotonic()
        cooling = rt.health.cooling(route.provider.id)
        target = rt.target(route.provider, force_sandbox)
        if target is None:
            err = routing.not_configured(route)
            attempts.append(routing.attempt(route, req.operation, started, err))  # listed, not a failure: it was never tried
            continue
        retries = routing.idempotent_retries(route, req.operation)
        key = secrets.token_hex(16) if retries else None   # one per request and route, the same on every try
        group = key or f"attempt-{len(attempts)}"
        taken = False                                   # some try at this route may have been billed
        for tried in range(retries + 1):
            started = time.monotonic() if tried else started
            try:
                authorized = await routing.authorize(rt, route, target)
                async with replybudget.holding(rt.reply_budget):   # replies held until delivered (bounded)
                    outputs = await fanout.run(rt, req, route, authorized, key)
                    delivered, notes = await postprocess.deliver(rt, req, route.provider, authorized, outputs, base_url)
            except UpstreamError as err:
                possible = _possible_cost(req, route, err)
                attempts.append(routing.attempt(route, req.operation, started, err, target.sandbox, cooling, possible,
                                                replay=tried > 0) | _own(own))
                errors.append(err)
                charges.add(group, possible)
                taken = taken or err.taken
                if err.retryable:  # only a success clears a cooldown; a caller's error says nothing
                    rt.health.record(route.provider.id, ok=False)
                if not err.retryable:
                    raise _failed(errormap.to_client(err), charges) from None
                if routing.may_fall_back(err, model, taken):
                    metrics.FALLBACKS.labels(route.provider.id).inc()
                    break
                if tried < retries:
                    continue
                raise _failed(errormap.after_send(attempts, errors), charges) from None
            rt.health.record(route.provider.id, ok=True)
            first = delivered[0].info
            cost = pricing.price(route.pricing, _produced(req, route, tuple((d.info.width, d.info.height) for d in delivered),
                                                           f"{first.width}x{first.height}", first.format))
            attempts.append(routing.attempt(route, req.operation, started, None, target.sandbox, cooling, cost,
                                            replay=tried > 0) | _own(own))
            charges.add(group, cost, replace=True)
            total = charges.total(cost["currency"] if cost else None) if cost else None
            if total:
                reqctx.note_cost(total[0] / pricing.MICROS, total[1])
            body = {
                "created": int(time.time()),
                "size": f"{first.width}x{first.height}",
                "output_format": first.format,
                "data": [d.item for d in delivered],
                "metadata": {
                    "model": model.id,
                    "executed_model": route.model_for(req.operation),
                    "provider": route.provider.id,
                    "attempts": attempts,
                    "adjustments": list(req.adjustments) + notes,
                    # every attempt that may have been billed, this one included; None: not priced
                    "cost": round(total[0] / pricing.MICROS, 6) if total else None,
                    "cost_currency": total[1] if total else None,
                    **_upstream(outputs),
                },
            }
            headers = {"X-Mediagate-Provider": route.provider.id, "X-Mediagate-Model": model.id, **lifecycle.announce(model)}
            return Result(body, headers)
    raise _failed(errormap.exhausted(attempts, errors), charges)
