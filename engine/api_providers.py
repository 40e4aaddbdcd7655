"""GET /providers: every provider protocol the gateway knows, its slug (the `provider/` prefix that forces it),
whether real credentials are set, whether the simulators serve it, whether it is cooling down after repeated
failures, and which models it serves — what an operator checks before and after setting keys."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mediagate import endpoint as ep
from mediagate import lifecycle
from mediagate.provider import Provider
from mediagate.endpoint import endpoint
from mediagate.runtime import Runtime


def describe(rt: Runtime) -> list[dict[str, Any]]:
    """One object per provider, sorted by id. `models` lists the models with a route to it that may still be
    tried (a route whose upstream retired the model is left out), as `{id, upstream_model}`."""
    served: dict[str, list[dict[str, str]]] = {pid: [] for pid in rt.catalog.providers}
    for model in sorted(rt.catalog.models.values(), key=lambda m: m.id):
        for route in lifecycle.serving(model, model.routes):
            entry = {"id": model.id, "upstream_model": route.upstream_model}
            if entry not in served[route.provider.id]:
                served[route.provider.id].append(entry)
    health = rt.health.snapshot()
    out = []
    for pid in sorted(rt.catalog.providers):
        p = rt.catalog.providers[pid]
        state = health.get(pid, {})
        out.append({
            "id": pid, "object": "provider", "slug": pid, "name": p.name,
            "description": p.spec.get("description", ""),
            **provider_state(rt, p),
            "cooldown_remaining_s": state.get("cooldown_remaining_s", 0.0),
            "consecutive_failures": state.get("consecutive_failures", 0),
            "models": served[pid],
        })
    return out


def provider_state(rt: Runtime, p: Provider) -> dict[str, Any]:
    """What a provider can do now, the same wherever it is shown (GET /v1/providers, a model's routes)."""
    return {"configured": not p.missing_secrets,               # every secret one of its credential sets needs is set
            "missing_env": list(p.missing_secrets),
            "sandboxed": rt.sandboxed(p),                      # the simulators answer for it on every request
            "cooling_down": rt.health.cooling(p.id)}


@endpoint("providers.list")
async def list_providers(request: Request, rt: Runtime) -> Response:
    return ep.json_response({"object": "list", "data": describe(rt)})
