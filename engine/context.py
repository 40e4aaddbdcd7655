"""The template context: the small, documented view of a canonical request that route templates see.

| name | value |
| --- | --- |
| prompt | the caller's prompt |
| n | images to ask for in this upstream call (a batch of the fan-out) |
| shape | width, height, size (WxH), aspect_ratio, resolution (tier), custom (a free size within bounds) |
| thinking | off / on / minimal / high, or none for the model's default |
| enhance_prompt | on / off, or none when the model does not rewrite prompts |
| params | the model's declared parameters (none when not sent and no default) |
| extra | the caller's unknown fields (also merged into the body where the operation says) |
| output | format and compression to ask the provider for (none: provider default) |
| response_format | what the caller asked for (the gateway delivers it whatever the provider returns) |
| route | upstream_model, provider |
| config | the provider's non-secret settings (project, location, ...) |
| values | the model's tables merged with the route's |
| model | id |
| images | edit inputs, each {bytes, b64, mime, data_url, width, height, format, filename} (b64 and data_url made on first read); [] when generating |
| mask | the edit mask in the same form, or none; `mask.edit_area_b64` is it as a black-and-white PNG, black where to edit |
| seconds | video length (a number; templates write it as the provider wants, e.g. `seconds ~ ''` for a string) |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mediagate.canonical import Canonical
from mediagate.numbers import plain

if TYPE_CHECKING:
    from mediagate.catalog import Route


def build(req: Canonical, route: "Route", n: int) -> dict[str, Any]:
    images = [i.as_context() for i in req.images]
    return {
        "prompt": req.prompt,
        "n": n,
        "shape": req.shape.as_context(),
        "thinking": req.thinking,
        "enhance_prompt": req.enhance_prompt,
        "params": dict(req.params),
        "extra": dict(req.extra),
        "output": {"format": req.upstream_format, "compression": req.upstream_compression},
        "response_format": req.response_format,
        "route": {"upstream_model": route.model_for(req.operation), "provider": route.provider.id},
        "config": route.provider.config,
        "values": route.values,
        "model": {"id": req.model_id},
        "images": images,
        "mask": req.mask.as_context() if req.mask is not None else None,
        "seconds": plain(req.seconds) if req.seconds is not None else None,
    }
