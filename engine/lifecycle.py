"""Model lifecycle: a retired upstream model is not called, a deprecated one is announced.

The model spec's `lifecycle` says where the model stands at its owner; a route's own `lifecycle` says
where it stands at that route's provider (a compatible server the operator runs may still serve a
model its owner retired: `lifecycle: {status: active}` on that route). A route whose effective status is
`retired` is never tried; a request whose routes are all retired, or whose remaining routes can be called
nowhere, is answered 410 `model_retired` naming the successor. A deprecated model is served with the
`Deprecation` (RFC 9745) and `Sunset` (RFC 8594) headers and one log line per request.
"""

from __future__ import annotations

import calendar
import logging
import time
from email.utils import formatdate
from typing import Any, Callable, Iterable

from mediagate.errors import GatewayError

log = logging.getLogger("mediagate.lifecycle")

RETIRED_STATUS = 410                     # Gone: the resource existed and will not come back here
DEPRECATED_HEADER = "X-Mediagate-Deprecated"


def of_model(model: Any) -> dict[str, Any]:
    return dict(model.spec.get("lifecycle") or {})


def of_route(model: Any, route: Any) -> dict[str, Any]:
    """The route's own lifecycle where it declares one, else the model's."""
    own = getattr(route, "lifecycle", None)
    return dict(own) if own else of_model(model)


def serving(model: Any, routes: Iterable[Any]) -> list[Any]:
    """The routes that may still be called: every one whose effective status is not `retired`."""
    return [r for r in routes if of_route(model, r).get("status") != "retired"]


def retired(model: Any, forced: str | None = None) -> GatewayError:
    """410 naming the shutdown date and the successor, in the public error shape."""
    life = of_model(model)
    when = f" on {life['shutdown']}" if life.get("shutdown") else ""
    where = f" by provider '{forced}'" if forced else ""
    successor = f" Use '{life['replacement']}' instead." if life.get("replacement") else ""
    return GatewayError(RETIRED_STATUS, f"The model '{model.id}' was retired{where}{when} and no configured route of this "
                        f"gateway still serves it.{successor}", "invalid_request_error", "model_retired", "model")


def check(model: Any, forced: str | None, callable_route: Callable[[Any], bool]) -> None:
    """Refuse a request that only retired routes (or none that can be called) would serve.

    `callable_route(route)`: whether the route's provider can be called (configured, or sandboxed). A model
    that is not retired keeps its usual errors for unconfigured routes (502 listing each)."""
    routes = [r for r in model.routes if forced is None or r.provider.id == forced]
    alive = serving(model, routes)
    if not alive:
        raise retired(model, forced)
    if of_model(model).get("status") == "retired" and not any(callable_route(r) for r in alive):
        raise retired(model, forced)


def _epoch(day: str) -> int:
    return calendar.timegm(time.strptime(day, "%Y-%m-%d"))


def headers(model: Any) -> dict[str, str]:
    """Response headers announcing a deprecated model: `Deprecation: @<epoch>` (RFC 9745) when the spec
    declares the day it was `deprecated`, `Sunset` (RFC 8594) when it declares a `shutdown` day, and always
    `X-Mediagate-Deprecated` naming the model, its dates and its replacement."""
    life = of_model(model)
    if life.get("status") != "deprecated":
        return {}
    out: dict[str, str] = {}
    details = [f"model={model.id}"]
    if life.get("deprecated"):
        out["Deprecation"] = f"@{_epoch(life['deprecated'])}"
    if life.get("shutdown"):
        out["Sunset"] = formatdate(_epoch(life["shutdown"]), usegmt=True)
        details.append(f"shutdown={life['shutdown']}")
    if life.get("replacement"):
        details.append(f"replacement={life['replacement']}")
    out[DEPRECATED_HEADER] = "; ".join(details)
    return out


def announce(model: Any) -> dict[str, str]:
    """The deprecation headers for one served request, and its one log line."""
    out = headers(model)
    if out:
        log.warning("deprecated model %s served (%s)", model.id, out[DEPRECATED_HEADER])
    return out
