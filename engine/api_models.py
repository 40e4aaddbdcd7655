"""GET /models and /models/{id}: OpenAI model objects; `?schema=true` adds the compiled request schemas and
`?detail=true` the routes (configured, sandboxed, cooling down), lifecycle and a price summary — what the
console's catalog shows. POST /explain: the upstream request(s) a body would become, per route."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mediagate import endpoint as ep
from mediagate import api_providers, errors
from mediagate.catalog import Model
from mediagate.endpoint import endpoint
from mediagate.errors import GatewayError
from mediagate.explain import explain
from mediagate.paths import PathError
from mediagate.runtime import Runtime
from mediagate.templates import TemplateError

MAX_EXPLAIN_IMAGES = 16          # placeholder inputs one explain may ask for (a model's input_images cap is lower)
MAX_EXPLAIN_IMAGE_SIDE_PX = 8192  # a placeholder's width or height (it is rendered as a real PNG, off the loop)


def _price_summary(model: Model) -> dict[str, Any] | None:
    """Per metric, the lowest and highest unit price over the model's and its routes' pricing."""
    pricings = [model.spec.get("pricing")] + [r.pricing for r in model.routes]
    ranges: dict[str, list[float]] = {}
    currency = "USD"
    for pricing in filter(None, pricings):
        currency = pricing.get("currency", currency)
        for comp in pricing.get("components", []):
            price = float(comp["unit_price"]) / float(comp.get("per", 1))
            lo, hi = ranges.get(comp["metric"], [price, price])
            ranges[comp["metric"]] = [min(lo, price), max(hi, price)]
    if not ranges:
        return None
    per = {metric: {"min": lo, "max": hi} for metric, (lo, hi) in sorted(ranges.items())}
    return {"currency": currency, "per_unit": per}


def _detail(rt: Runtime, model: Model) -> dict[str, Any]:
    routes = []
    for r in sorted(model.routes, key=lambda r: r.priority):
        routes.append({"provider": r.provider.id, "upstream_model": r.upstream_model, "priority": r.priority,
                       "weight": r.weight, **api_providers.provider_state(rt, r.provider)})
    return {"lifecycle": model.spec.get("lifecycle"), "routes": routes, "price": _price_summary(model)}


def _model_object(request: Request, rt: Runtime, model: Model) -> dict[str, Any]:
    obj = model.to_openai(request.app.state.started)
    if "lifecycle" in model.spec:
        obj["lifecycle"] = model.spec["lifecycle"]
    if ep.query_flag(request, "detail"):
        obj.update(_detail(rt, model))
    if ep.query_flag(request, "schema"):
        obj["schemas"] = model.schemas()
    return obj


@endpoint("models.list")
async def list_models(request: Request, rt: Runtime) -> Response:
    data = [_model_object(request, rt, m) for m in sorted(rt.catalog.models.values(), key=lambda m: m.id)]
    return ep.json_response({"object": "list", "data": data})


@endpoint("models.get")
async def get_model(request: Request, rt: Runtime) -> Response:
    model, _ = rt.catalog.resolve(request.path_params["model_id"])
    return ep.json_response(_model_object(request, rt, model))


def _placeholder_sizes(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_EXPLAIN_IMAGES:
        raise errors.invalid_request(f"'images' must be a list of at most {MAX_EXPLAIN_IMAGES} WxH sizes.", "images")
    for size in value:
        w, sep, h = str(size).lower().partition("x")
        if not (isinstance(size, str) and sep and w.isdigit() and h.isdigit()
                and 0 < int(w) <= MAX_EXPLAIN_IMAGE_SIDE_PX and 0 < int(h) <= MAX_EXPLAIN_IMAGE_SIDE_PX):
            raise errors.invalid_request(f"'images' holds {str(size)[:40]!r}; expected WxH, each side 1 to "
                                         f"{MAX_EXPLAIN_IMAGE_SIDE_PX} pixels.", "images")
    return value


@endpoint("explain")
async def explain_request(request: Request, rt: Runtime) -> Response:
    """`{"operation"?, "request": {model, ...}, "images"?: ["WxH"], "mask"?: bool}` -> what `mediagate explain` prints."""
    body = await ep.read_json(request, rt.settings.max_body_bytes)
    if not isinstance(body, dict) or not isinstance(body.get("request"), dict):
        raise errors.invalid_request("The body must be an object with 'request': the request to explain.", "request")
    req = body["request"]
    operation = body.get("operation")
    if operation is not None and not isinstance(operation, str):
        raise errors.invalid_request("'operation' must be a string.", "operation")
    images = _placeholder_sizes(body.get("images"))
    mask = body.get("mask", False)
    if not isinstance(mask, bool):
        raise errors.invalid_request("'mask' must be true or false.", "mask")
    model_name = req.get("model")
    if not isinstance(model_name, str):
        raise errors.invalid_request("'request.model' is required.", "model")
    catalog = rt.catalog
    try:  # templates and a placeholder PNG are rendered off the loop
        out = await asyncio.to_thread(explain, catalog, model_name, {k: v for k, v in req.items() if k != "model"},
                                      operation, images, mask)
    except ValueError as exc:
        raise errors.invalid_request(str(exc), "operation" if "operation" in str(exc) else "images") from None
    except (TemplateError, PathError) as exc:
        raise GatewayError(500, f"The model's spec cannot render this request ({exc.path}: {exc.message}).",
                           "server_error", "spec_error") from None
    return ep.json_response(out)
