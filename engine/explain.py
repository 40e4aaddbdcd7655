"""What the engine would send: per route, the exact upstream request(s) a body becomes, and every adjustment.

Shared by `mediagate explain` and `POST /v1/explain` (the console's explain view). Nothing is sent. Provider
secrets never enter the rendering (each is the placeholder `<NAME>`) and auth headers are masked on top, so
the output is safe to show to anyone holding a gateway key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mediagate import catalog as catalog_mod
from mediagate import context, routing, upstream
from mediagate.paths import PathError
from mediagate.templates import TemplateError

if TYPE_CHECKING:
    from mediagate.inputs import InputImage


def placeholder_image(size: str) -> "InputImage":
    """A real PNG of `size` (WxH), so multipart parts, base64 and data: URLs render as they would."""
    import io

    from PIL import Image

    from mediagate.inputs import MAX_INPUT_IMAGE_PIXELS, InputImage
    w, sep, h = size.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise ValueError(f"--image {size!r}: expected WxH, e.g. 1024x1024")
    width, height = int(w), int(h)
    if width * height > MAX_INPUT_IMAGE_PIXELS:
        raise ValueError(f"--image {size}: more than {MAX_INPUT_IMAGE_PIXELS} pixels")
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buf, "PNG")
    return InputImage(buf.getvalue(), "png", width, height)


DEFAULT_PLACEHOLDER = "1024x1024"   # the input explain assumes for an edit given no --image


def explain(cat: catalog_mod.Catalog, model_name: str, body: dict[str, Any], operation: str | None = None,
            images: list[str] | None = None, mask: bool = False) -> dict[str, Any]:
    """Per route, the exact upstream request(s) the engine would send, and every adjustment.

    `images` are WxH sizes of placeholder inputs (an edit without any gets one DEFAULT_PLACEHOLDER image);
    `mask` adds a mask the size of the first. A template or path that fails raises TemplateError/PathError
    with the spec file it belongs to in `file`."""
    from mediagate import chat
    from mediagate.fanout import batches
    model, forced = cat.resolve(model_name)
    body = {"model": model_name, **body}
    op = operation or model.spec["operations"][0]
    if op not in model.validators:
        raise ValueError(f"model {model.id} has no {op!r} operation (it has {', '.join(model.validators)})")
    model.validators[op].validate(body)
    sizes = list(images or ([DEFAULT_PLACEHOLDER] if op == "edit" else []))
    if sizes and op not in ("edit", "video"):
        raise ValueError(f"--image applies to edit and video requests, not {op!r}")
    if mask and op != "edit":
        raise ValueError("--mask applies to edit requests")
    limit = model.input_image_limit if op == "edit" else 1
    if len(sizes) > limit:
        raise ValueError(f"model {model.id} takes at most {limit} input image(s); {len(sizes)} were given")
    inputs = tuple(placeholder_image(s) for s in sizes)
    seeds: dict[str, Any] = {}
    if inputs:
        seeds["images"] = inputs
    if op == "edit":
        first = inputs[0]
        seeds["implicit_size"] = f"{first.width}x{first.height}"
        if mask:
            seeds["mask"] = placeholder_image(seeds["implicit_size"])
    req = model.canonical(body, op, **seeds)
    routes = []
    tried = routing.order(model, forced)
    retired = [r for r in model.routes if r not in tried and (forced is None or r.provider.id == forced)]
    for route in tried + retired:   # a route whose upstream retired the model is shown, marked, never tried
        target = upstream.Target(route.provider.base_url, {k: "<" + k + ">" for k in route.provider.secrets}, False)
        try:
            contexts = ([chat._ctx(model, route, body)] if op == "chat"
                        else [context.build(req, route, k) for k in batches(req.n, route.native_n)])
            calls = [upstream.render(route.provider, route.operation(op), ctx, target).redacted() for ctx in contexts]
        except (TemplateError, PathError) as exc:
            # a route body's templates live in the model file, everything else in the provider's
            exc.file = model.file if exc.path.startswith("$.routes") else route.provider.file  # type: ignore[attr-defined]
            raise
        routes.append({"provider": route.provider.id, "upstream_model": route.model_for(op), "priority": route.priority,
                       "calls": len(calls), "request": calls[0], **({"batch_sizes": batches(req.n, route.native_n)} if len(calls) > 1 else {}),
                       **({"retired": "the upstream retired this model: never tried"} if route in retired else {})})
    out: dict[str, Any] = {"model": model.id, "shape": req.shape.as_context(), "adjustments": list(req.adjustments)}
    if model.spec.get("lifecycle", {}).get("status") in ("deprecated", "retired"):
        out["lifecycle"] = model.spec["lifecycle"]
    if inputs:
        out["inputs"] = {"images": [f"{i.width}x{i.height}" for i in inputs], "mask": mask}
    return {**out, "routes": routes}
