"""Route order: a forced provider, else priority groups (lower first) shuffled by weight inside a group,
with providers in cooldown moved to the end (still tried, last)."""

from __future__ import annotations

import random
import time
from itertools import groupby
from typing import Any

from mediagate import errormap
from mediagate.catalog import Model, Route
from mediagate.errors import UpstreamError
from mediagate.health import Health


def order(model: Model, forced_provider: str | None, rng: random.Random | None = None,
          health: Health | None = None) -> list[Route]:
    if forced_provider is not None:
        return [r for r in model.routes if r.provider.id == forced_provider]
    rng = rng or random
    out: list[Route] = []
    for _, group in groupby(sorted(model.routes, key=lambda r: r.priority), key=lambda r: r.priority):
        pool = list(group)
        while pool:
            pick = rng.choices(range(len(pool)), weights=[r.weight for r in pool])[0]
            out.append(pool.pop(pick))
    if health is not None:
        out = [r for r in out if not health.cooling(r.provider.id)] + [r for r in out if health.cooling(r.provider.id)]
    return out


def not_configured(route: Route) -> UpstreamError:
    return errormap.make("upstream_auth_failed", f"{route.provider.name} is not configured (no credentials).")


def attempt(route: Route, operation: str, started: float, error: UpstreamError | None = None,
            sandbox: bool = False, cooling: bool = False) -> dict[str, Any]:
    """One try at one route, as `metadata.attempts` lists it (images, videos and chat alike)."""
    a: dict[str, Any] = {"provider": route.provider.id, "upstream_model": route.model_for(operation),
                         "outcome": "ok" if error is None else error.code,
                         "latency_ms": round((time.monotonic() - started) * 1000, 1)}
    if sandbox:
        a["sandbox"] = True
    if cooling:
        a["cooldown"] = True  # tried last: the provider had failed repeatedly just before
    if error is not None:
        a["error"] = {"code": error.code, "message": error.message, "retryable": error.retryable,
                      **({"upstream_status": error.status} if error.status else {})}
    return a
