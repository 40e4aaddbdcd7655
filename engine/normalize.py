"""The normalize stage: one registered operation per model-spec keyword.

Order of registration is the order of application. Each reads the validated body from the canonical
request and returns a new canonical request, recording every value it changed or dropped.
"""

from __future__ import annotations

from typing import Any

from mediagate import shape as shapes
from mediagate.canonical import OPENAI_IMAGE_FIELDS, UNIVERSAL_FIELDS, Canonical, adjustment
from mediagate.errors import invalid_request
from mediagate.numbers import plain
from mediagate.operations import operation

LOSSY_FORMATS = frozenset({"jpeg", "webp", "avif"})
VECTOR_FORMATS = frozenset({"svg"})   # mediagate.imaging.VECTOR_FORMATS
VIDEO_ONLY = ("input_reference", "webhook_url", "idempotency_key")          # refused on image requests
VIDEO_REFUSED = ("output_format", "output_compression", "response_format", "stream")  # refused on video requests


@operation("limits", default={})
def limits(arg: dict[str, Any], req: Canonical) -> Canonical:
    """Prompt and count (the schema already bounds them; each route knows its own native batch size)."""
    body = req.body
    return req.with_(prompt=body.get("prompt", ""), n=int(body.get("n", 1)))


@operation("shape", default={"bounds": {}, "default": {"size": "1024x1024"}}, compile=shapes.ShapeSpec.from_spec)
def shape(spec: shapes.ShapeSpec, req: Canonical) -> Canonical:
    body = req.body
    size, ratio, tier = body.get("size"), body.get("aspect_ratio"), body.get("resolution")
    if req.implicit_size and size in (None, "auto") and ratio is None:
        if tier is None:
            resolved, _ = shapes.resolve(spec, req.implicit_size, None, None)  # follows the input image: nothing asked, nothing adjusted
            return req.with_(shape=resolved)
        # resolution alone scales without changing shape (seed 001): the input image's ratio at the asked tier;
        # the ratio was not the caller's, so only what happened to the resolution is theirs to read
        w, h = shapes.parse_size(req.implicit_size)
        resolved, adjustments = shapes.resolve(spec, None, shapes.reduced_ratio(w, h), tier)
        return req.with_(shape=resolved).adjusted(*(a for a in adjustments if a["param"] != "aspect_ratio"))
    resolved, adjustments = shapes.resolve(spec, size, ratio, tier)
    return req.with_(shape=resolved).adjusted(*adjustments)


@operation("inputs", default={})
def inputs(spec: dict[str, Any], req: Canonical) -> Canonical:
    """What the model requires of its input images, checked when the request is made (not when a job fails)."""
    if spec.get("required") and not req.images and not req.inputs_pending:
        param = "input_reference" if req.operation == "video" else "image"
        raise invalid_request(f"Model '{req.model_id}' generates from an image only: send one as '{param}'.", param,
                              "missing_required_parameter")
    if spec.get("match_size") and req.images and req.shape.size:
        first = req.images[0]
        if (first.width, first.height) != (req.shape.width, req.shape.height):
            param = "input_reference" if req.operation == "video" else "image"
            raise invalid_request(f"The {param} image is {first.width}x{first.height}; model '{req.model_id}' needs it "
                                  f"to be exactly the output size, {req.shape.size}.", param, "invalid_image_size")
    most = spec.get("max_with_mask")
    if most is not None and req.mask is not None and len(req.images) > most:
        raise invalid_request(f"With a mask, model '{req.model_id}' edits at most {most} input image(s); "
                              f"{len(req.images)} were sent.", "image", "too_many_images")
    formats = spec.get("formats")
    if formats:   # refused, not re-encoded here: an image is never converted on the event loop
        for i, image in enumerate(req.images):
            if image.format not in formats:
                param = "input_reference" if req.operation == "video" else "image"
                raise invalid_request(f"Input image {i + 1} is {image.format}; model '{req.model_id}' takes "
                                      f"{' or '.join(formats)} input images.", param, "invalid_image_format")
    return req


@operation("thinking", default={"levels": ["off"]})
def thinking(spec: dict[str, Any], req: Canonical) -> Canonical:
    """Validated per model: a level the model lacks is a 400 listing the supported set, never a guess."""
    body = req.body
    value = body.get("thinking")
    alias = body.get("thinking_level")
    if value is not None and alias is not None and value != alias:
        raise invalid_request(f"thinking ({value!r}) and its alias thinking_level ({alias!r}) disagree.", "thinking")
    value = value if value is not None else alias
    levels = spec["levels"]
    if value is None:
        return req.with_(thinking=spec.get("default"))
    if value not in levels:
        raise invalid_request(
            f"thinking {value!r} is not supported by model '{req.model_id}'. Supported values: {', '.join(levels)}.",
            "thinking" if body.get("thinking") is not None else "thinking_level", "unsupported_value")
    return req.with_(thinking=value)


def _switch(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


@operation("enhance_prompt", default=None)
def enhance_prompt(spec: dict[str, Any] | None, req: Canonical) -> Canonical:
    """Converted where the model can rewrite prompts; ignored, and recorded, where it cannot."""
    requested = _switch(req.body.get("enhance_prompt"))
    if spec is None:
        if requested is None:
            return req
        return req.adjusted(adjustment("enhance_prompt", requested, None,
                                       "ignored: the model does not support prompt enhancement"))
    if requested is None:
        return req.with_(enhance_prompt=spec["default"])
    if requested == "off" and spec.get("always"):
        return req.with_(enhance_prompt="on").adjusted(
            adjustment("enhance_prompt", "off", "on", "the model always rewrites prompts"))
    return req.with_(enhance_prompt=requested)


@operation("output", default={"formats": ["png"], "default_format": "png", "compression": False})
def output(spec: dict[str, Any], req: Canonical) -> Canonical:
    """Ask the provider for a format it makes itself; the gateway converts or re-encodes the rest."""
    body = req.body
    if req.operation == "video":  # a video is an MP4 fetched from /videos/{id}/content: none of these can apply
        for name in VIDEO_REFUSED:
            if body.get(name) not in (None, False):
                raise invalid_request(f"'{name}' is not supported for videos (they are delivered as files from "
                                      "GET /v1/videos/{id}/content).", name, "unsupported_parameter")
        return req
    fmt: str | None = body.get("output_format")
    comp: int | None = body.get("output_compression")
    req = req.with_(response_format=body.get("response_format") or "url", output_format=fmt, output_compression=comp)
    if set(spec["formats"]) <= VECTOR_FORMATS:  # a vector model: its SVG is served as made, never rasterized
        if fmt is not None and fmt not in spec["formats"]:
            raise invalid_request(f"output_format '{fmt}' is a raster format; this model makes "
                                  f"{', '.join(spec['formats'])} vector images and the gateway does not rasterize them. Ask "
                                  f"for {spec['formats'][0]} or use a raster model.", "output_format", "unsupported_value")
        if fmt is None:
            req = req.adjusted(adjustment("output_format", None, spec["formats"][0],
                                          "this model makes vector images: served as " + spec["formats"][0]))
    if fmt is None:
        if comp is not None:
            return req.adjusted(adjustment("output_compression", comp, None,
                                           "ignored: no lossy output_format (jpeg, webp, avif) was requested"))
        return req
    if comp is not None and fmt not in LOSSY_FORMATS:
        req = req.adjusted(adjustment("output_compression", comp, None, f"ignored: {fmt} is lossless"))
        comp = None
    return req.with_(**upstream_output(spec, fmt, comp))


def upstream_output(spec: dict[str, Any], fmt: str, comp: int | None) -> dict[str, Any]:
    """What to ask a provider that makes `spec`'s formats for (`comp` only for a lossy `fmt`): the format
    itself when it makes it, else its default (the gateway converts); compression it honours, else re-encode.
    Shared by the model's `output` and a route's own `output` override (mediagate.carried)."""
    native = spec["formats"]
    if fmt in native:
        native_comp = bool(spec.get("compression"))
        return {"upstream_format": fmt, "upstream_compression": comp if native_comp else None,
                "reencode": comp is not None and not native_comp}
    return {"upstream_format": spec.get("default_format", native[0]), "upstream_compression": None, "reencode": False}


@operation("durations", default=None)
def durations(spec: dict[str, Any] | None, req: Canonical) -> Canonical:
    """Video length: `seconds` (alias `duration`, numbers or digit strings) matched to the nearest allowed."""
    body = req.body
    seconds, duration = body.get("seconds"), body.get("duration")
    if seconds is not None and duration is not None and _seconds(seconds) != _seconds(duration):
        raise invalid_request(f"seconds ({seconds!r}) and its alias duration ({duration!r}) disagree.", "duration")
    raw = seconds if seconds is not None else duration
    if spec is None:
        if raw is None:
            return req
        return req.adjusted(adjustment("seconds", raw, None, "ignored: the model makes no videos"))
    allowed = spec["allowed"]
    tier = req.shape.resolution
    narrowed = (spec.get("by_resolution") or {}).get(tier) if tier else None
    where = ""
    if narrowed:   # the model makes fewer lengths at the resolution the request got (`durations.by_resolution`)
        allowed, where = narrowed, f" at {tier}"
    if raw is None:
        default = float(spec.get("default", allowed[0]))
        return req.with_(seconds=float(min(allowed, key=lambda a: (abs(a - default), -a))))
    try:
        wanted = float(raw)
    except (TypeError, ValueError):
        raise invalid_request(f"Invalid value for 'seconds': {raw!r}; expected a number of seconds.", "seconds") from None
    if not 0 < wanted <= 3600:
        raise invalid_request(f"Invalid value for 'seconds': {raw!r}.", "seconds")
    chosen = float(min(allowed, key=lambda a: (abs(a - wanted), -a)))
    if chosen != wanted:
        req = req.adjusted(adjustment("seconds", raw, plain(chosen),
                                      f"nearest supported duration{where} ({', '.join(str(plain(a)) for a in allowed)} s)"))
    return req.with_(seconds=chosen)


def _seconds(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


@operation("params", default={})
def params(spec: dict[str, Any], req: Canonical) -> Canonical:
    """Declared model parameters (with defaults) for templates; everything unknown is passthrough."""
    body = req.body
    if req.operation != "video":
        for name in VIDEO_ONLY:
            if body.get(name) is not None:
                raise invalid_request(f"'{name}' is only accepted by POST /v1/videos.", name, "unsupported_parameter")
    declared = {name: body.get(name, p.get("default")) for name, p in spec.items()}
    extra = {k: v for k, v in body.items() if k not in UNIVERSAL_FIELDS and k not in spec and k not in OPENAI_IMAGE_FIELDS}
    dropped = [adjustment(k, body[k], None, f"ignored: model '{req.model_id}' has no {k} parameter")
               for k in sorted(OPENAI_IMAGE_FIELDS & body.keys()) if k not in spec]
    return req.with_(params=declared, extra=extra).adjusted(*dropped)
