"""What one route really sends of the caller's request: its own adjustments, computed per route.

The normalize stage decides what a *model* does with each value; a route's request templates may still
drop one (a route body setting a key to null, an operation that takes no mask or no extra fields) or
override one (a passthrough field the template sets itself). This module finds out by rendering the
route's request body and comparing, so nothing a template does to a caller's value goes unrecorded:

- a value the route does not carry (rendering with another value gives the same body) is listed as
  ignored by that route;
- compression the route cannot ask for is applied by the gateway instead (re-encoding);
- each unknown field is listed as passed through, overridden (with the value the template sent) or not
  sent, with "did you mean" when it is a few edits from a field the gateway knows.

Only values the caller actually sent are examined, so a plain request renders nothing extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mediagate import context, suggest, upstream
from mediagate.canonical import OPENAI_IMAGE_FIELDS, UNIVERSAL_FIELDS, Canonical, adjustment
from mediagate.errors import invalid_request
from mediagate.normalize import LOSSY_FORMATS, upstream_output
from mediagate.templates import TemplateError

if TYPE_CHECKING:
    from mediagate.catalog import Model, Route

_SWITCHED = {"on": "off", "off": "on"}


def adapt(req: Canonical, route: "Route") -> tuple[Canonical, list[dict[str, Any]]]:
    """The request as `route` will carry it, and the adjustments that are this route's own."""
    op = route.operation(req.operation)
    own: list[dict[str, Any]] = []
    if route.output is not None and req.output_format is not None and req.operation != "video":
        req, note = _route_output(req, route)
        own += note
    if req.mask is not None and not op.takes_mask:
        own.append(adjustment("mask", _image_label(req.mask), None,
                              f"ignored by {route.provider.name}: its {req.operation} request takes no mask"))
    watched = _watched(req)
    if op.json is None or not (watched or req.extra):
        return req.adjusted(*own), own
    ctx = {**context.build(req, route, min(req.n, route.native_n)), "config": route.provider.config}
    try:
        base = op.json(ctx)
        for name, variants in watched.items():
            if all(op.json(_with(ctx, name, v)) == base for v in variants):
                if name == "output.compression":  # the gateway compresses instead: asked for, and applied
                    req = req.with_(reencode=True)
                else:
                    own.append(adjustment(name.removeprefix("params."), req.body.get(name.removeprefix("params.")), None,
                                          f"ignored by {route.provider.name}: this route's request does not carry it"))
    except TemplateError:
        return req.adjusted(*own), own  # the real render reports the template's problem
    own += _extra_notes(req, route, op, base)
    return req.adjusted(*own), own


def _route_output(req: Canonical, route: "Route") -> tuple[Canonical, list[dict[str, Any]]]:
    """A route's own `output` (narrower than the model's): what this route asks its provider for, and a note
    when the gateway converts or re-encodes for this route only."""
    assert route.output is not None and req.output_format is not None
    fmt = req.output_format
    comp = req.output_compression if fmt in LOSSY_FORMATS else None
    plan = upstream_output(route.output, fmt, comp)
    req = req.with_(**plan)
    if plan["upstream_format"] != fmt:
        return req, [adjustment("output_format", fmt, fmt, f"converted by the gateway: {route.provider.name} makes "
                                f"{', '.join(route.output['formats'])} on this route")]
    if plan["reencode"]:
        return req, [adjustment("output_compression", comp, comp, f"applied by the gateway: {route.provider.name} "
                                "takes no compression on this route")]
    return req, []


def _watched(req: Canonical) -> dict[str, list[Any]]:
    """Context values the caller set that a route might not carry, each with other values to render with."""
    out: dict[str, list[Any]] = {}
    body = req.body
    if "enhance_prompt" in body and req.enhance_prompt in _SWITCHED:
        out["enhance_prompt"] = [_SWITCHED[req.enhance_prompt]]
    if body.get("output_compression") is not None and req.upstream_compression is not None and not req.reencode:
        out["output.compression"] = [1 if req.upstream_compression != 1 else 100]
    for name, value in req.params.items():
        if name in body and value is not None:
            out["params." + name] = [None, _other(value)]
    decided = {a["param"] for a in req.adjustments}  # the model already changed these: that is their story
    return {k: v for k, v in out.items() if k.removeprefix("params.") not in decided}


def _other(value: Any) -> Any:
    """A value of the same kind that differs, to see whether a template reads the original at all."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "\u2062"
    return None


def _with(ctx: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    head, _, key = name.partition(".")
    if not key:
        return {**ctx, head: value}
    return {**ctx, head: {**ctx[head], key: value}}


def _extra_notes(req: Canonical, route: "Route", op: Any, base: Any) -> list[dict[str, Any]]:
    """One adjustment per unknown field: passed through, overridden by the template, or not sent."""
    if not req.extra:
        return []
    name = route.provider.name
    known = UNIVERSAL_FIELDS | OPENAI_IMAGE_FIELDS | set(req.params)
    if op.passthrough_into is None:
        return [adjustment(k, v, None, f"not sent: {name}'s {req.operation} request takes no extra fields{_hint(k, known)}")
                for k, v in req.extra.items()]
    clashes: dict[str, list[tuple[str, Any, Any]]] = {}
    for dotted, asked, sent in upstream.passthrough_collisions(base, op.passthrough_into, req.extra):
        clashes.setdefault(dotted.split(".")[0], []).append((dotted, asked, sent))
    out = []
    for k, v in req.extra.items():
        if k in clashes:
            out += [adjustment(d, asked, sent, f"overridden: {name}'s request sets {d} itself from the gateway's own "
                               f"fields{_hint(k, known)}") for d, asked, sent in clashes[k]]
        else:
            out.append(adjustment(k, v, v, f"passed through to {name} unchanged: not a field this gateway knows{_hint(k, known)}"))
    return out


def _hint(field: str, known: set[str]) -> str:
    close = suggest.nearest(field, known)
    return f"; did you mean '{close[0]}'?" if close else ""


def _image_label(image: Any) -> str:
    return f"{image.width}x{image.height} {image.format} image"


def refuse_unsendable(model: "Model", forced: str | None, req: Canonical) -> None:
    """A mask no route of the model can send is refused (400), not dropped on every route."""
    if req.mask is None:
        return
    routes = [r for r in model.routes if forced is None or r.provider.id == forced]
    if not any(r.operation(req.operation).takes_mask for r in routes):
        raise invalid_request(f"Model '{model.id}' takes no mask on {req.operation}s"
                              + (f" through {forced}" if forced else "") + "; send the edit without one.",
                              "mask", "unsupported_parameter")
