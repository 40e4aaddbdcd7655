"""Route order: a forced provider, else priority groups (lower first) shuffled by weight inside a group,
with providers in cooldown moved to the end (still tried, last), routes whose upstream retired the model left
out (mediagate.lifecycle); and when a failure lets the next route run.

No double billing (nginx's `proxy_next_upstream` rule for non-idempotent requests): after a retryable
failure the next route is tried only when the provider provably did not take the work (never sent, 429,
an error rule's `not_billed`) or the model's operator opted in (`fallback_after_send`). A provider that
deduplicates by key (`idempotency` on the operation) is instead retried itself, once, under the same key.
"""

from __future__ import annotations

import dataclasses
import random
import time
from itertools import groupby
from typing import Any

from mediagate import errormap, lifecycle, metrics, pricing
from mediagate.catalog import Model, Route
from mediagate.errors import GatewayError, UpstreamError, invalid_request
from mediagate.health import Health
from mediagate.upstream import Target


def order(model: Model, forced_provider: str | None, rng: random.Random | None = None,
          health: Health | None = None) -> list[Route]:
    routes = lifecycle.serving(model, model.routes)   # a route whose upstream retired the model is never tried
    if forced_provider is not None:
        return [r for r in routes if r.provider.id == forced_provider]
    rng = rng or random
    out: list[Route] = []
    for _, group in groupby(sorted(routes, key=lambda r: r.priority), key=lambda r: r.priority):
        pool = list(group)
        while pool:
            pick = 0 if len(pool) == 1 else rng.choices(range(len(pool)), weights=[r.weight for r in pool])[0]
            out.append(pool.pop(pick))
    if health is not None:
        out = [r for r in out if not health.cooling(r.provider.id)] + [r for r in out if health.cooling(r.provider.id)]
    return out


IDEMPOTENT_RETRIES = 1   # tries of the same route under the same key after a failure it may have taken


def not_configured(route: Route) -> UpstreamError:
    return errormap.make("upstream_auth_failed", f"{route.provider.name} is not configured (no credentials).", sent=False)


async def authorize(rt: Any, route: Route, target: Target) -> Target:
    """`Runtime.authorize`, its failure marked as not sent: without a token the work request never left."""
    try:
        return await rt.authorize(route.provider, target)
    except UpstreamError as err:
        raise dataclasses.replace(err, sent=False) from None


def may_fall_back(err: UpstreamError, model: Model, taken: bool | None = None) -> bool:
    """Whether the next route may run after this retryable failure without risking a second charge (or with
    the operator's consent); `taken`: whether any try at this route may have been taken (default: this one)."""
    return err.retryable and (not (err.taken if taken is None else taken) or model.fallback_after_send)


def idempotent_retries(route: Route, operation: str) -> int:
    return IDEMPOTENT_RETRIES if route.operation(operation).idempotent else 0


def attempt(route: Route, operation: str, started: float, error: UpstreamError | None = None,
            sandbox: bool = False, cooling: bool = False, cost: dict[str, Any] | None = None,
            replay: bool = False) -> dict[str, Any]:
    """One try at one route, as `metadata.attempts` lists it (images, videos and chat alike): whether the
    provider received it (`sent`), may bill it (`may_be_billed`) and for how much (`cost`, when priced)."""
    a: dict[str, Any] = {"provider": route.provider.id, "upstream_model": route.model_for(operation),
                         "outcome": "ok" if error is None else error.code,
                         "latency_ms": round((time.monotonic() - started) * 1000, 1),
                         "sent": True if error is None else error.sent,
                         "may_be_billed": True if error is None else error.taken}
    if cost is not None and a["may_be_billed"]:
        a["cost"] = round(cost["total_cost_micros"] / pricing.MICROS, 6)
        a["cost_currency"] = cost["currency"]
    if replay:
        a["idempotent_retry"] = True  # the same key as the try before: the provider charges the pair once
    if sandbox:
        a["sandbox"] = True
    if cooling:
        a["cooldown"] = True  # tried last: the provider had failed repeatedly just before
    metrics.ATTEMPTS.labels(route.provider.id, a["outcome"]).inc()
    if error is not None:
        a["error"] = {"code": error.code, "message": error.message, "retryable": error.retryable,
                      **({"upstream_status": error.status} if error.status else {})}
    return a


def takes_prompt(route: Route, prompt: str) -> bool:
    """Whether the route's provider takes a prompt this long (its own `limits.prompt_chars`, where declared)."""
    return route.prompt_chars is None or len(prompt) <= route.prompt_chars


def skipped_for_prompt(route: Route, operation: str, prompt: str) -> dict[str, Any]:
    """The attempt record of a route passed over because its provider takes shorter prompts (never sent)."""
    return {"provider": route.provider.id, "upstream_model": route.model_for(operation), "outcome": "skipped",
            "sent": False, "may_be_billed": False,
            "reason": f"the prompt has {len(prompt)} characters; this route takes at most {route.prompt_chars}"}


def prompt_too_long(routes: list[Route], prompt: str) -> GatewayError:
    longest = max(r.prompt_chars or 0 for r in routes)
    return invalid_request(f"'prompt' is too long for every provider of this model: {len(prompt)} characters, at most "
                           f"{longest}.", "prompt", "string_above_max_length")
