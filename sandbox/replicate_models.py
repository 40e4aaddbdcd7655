"""The Replicate models the simulator knows: their inputs, output sizes and output shape.

``output`` is model-specific on Replicate: a LIST of file URLs or ONE URL string, taken
from each model's published output schema. Unknown models get the FLUX-style generic
schema and a list output, so a new provider file still works against the simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .flux_sizes import FLUX_ULTRA

Size = tuple[int, int]

# replicate/cog-flux predict.py ASPECT_RATIOS ("Aspect ratios from the original implementation"),
# and size_from_aspect_megapixels(): megapixels "0.25" halves both sides (all stay multiples of 16).
FLUX_RATIOS: dict[str, Size] = {
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832), "2:3": (832, 1216),
    "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152), "4:3": (1152, 896), "9:16": (768, 1344),
    "9:21": (640, 1536),
}
# flux-1.1-pro's choices (replicate.com/black-forest-labs/flux-1.1-pro/api). Its non-custom sizes
# come from BFL's API; the simulator reuses the cog-flux sizes for them: UNVERIFIED.
FLUX_PRO_RATIOS = ("1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
# FLUX.2 [pro]/[max] on Replicate: aspect_ratio + resolution (megapixels) or custom 256-2048 px
# rounded to multiples of 16 (replicate.com/black-forest-labs/flux-2-max/api).
FLUX2_RATIOS = ("1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3", "21:9", "9:21")
FLUX2_RESOLUTIONS: dict[str, float] = {"0.5 MP": 0.5, "1 MP": 1.0, "2 MP": 2.0, "4 MP": 4.0}
# Seedream 4.x recommended 2K sizes (BytePlus ModelArk / Volcengine "size" docs); 4K is taken
# as 2K doubled: UNVERIFIED.
SEEDREAM_2K: dict[str, Size] = {
    "1:1": (2048, 2048), "4:3": (2304, 1728), "3:4": (1728, 2304), "16:9": (2560, 1440), "9:16": (1440, 2560),
    "3:2": (2496, 1664), "2:3": (1664, 2496), "21:9": (3024, 1296),
}
# Qwen-Image recommended sizes (Qwen-Image README, mirrored by SiliconFlow's image API docs:
# 1328x1328, 1664x928, 928x1664, 1472x1140, 1140x1472, 1584x1056, 1056x1584). The
# optimize_for_speed sizes (~1 MP) are UNVERIFIED.
QWEN_QUALITY: dict[str, Size] = {
    "1:1": (1328, 1328), "16:9": (1664, 928), "9:16": (928, 1664), "4:3": (1472, 1140), "3:4": (1140, 1472),
    "3:2": (1584, 1056), "2:3": (1056, 1584),
}
QWEN_SPEED: dict[str, Size] = {
    "1:1": (1024, 1024), "16:9": (1365, 768), "9:16": (768, 1365), "4:3": (1183, 887), "3:4": (887, 1183),
    "3:2": (1254, 836), "2:3": (836, 1254),
}


class ReplicateError(Exception):
    """An RFC 7807 problem answer (``{"title", "detail", "status", ...}``)."""

    def __init__(self, status: int, title: str | None, detail: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body: dict[str, Any] = {"detail": detail, "status": status}
        if title is not None:
            self.body["title"] = title
        self.body.update(extra)
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers,
                                 content_type="application/problem+json")


def invalid(field: str, description: str, type_: str) -> ReplicateError:
    """Replicate's 422 for bad input: a summary plus ``invalid_fields``."""
    return ReplicateError(422, "Input validation failed", f"- input.{field}: {description}\n",
                          invalid_fields=[{"type": type_, "field": f"input.{field}", "description": description}])


@dataclass(frozen=True)
class ReplicateModel:
    """What the simulator needs to know of one model."""

    family: str  # flux | flux-pro | flux-ultra | flux2 | seedream | qwen
    output: str  # "list" or "string": the model's output schema
    default_format: str = "webp"
    formats: tuple[str, ...] = ("webp", "jpg", "png")
    max_outputs: int = 4


# Output kinds: replicate.com/<model>/api "Output schema" —
#   flux-schnell, flux-dev: {'type': 'array', 'items': {'type': 'string', 'format': 'uri'}}
#   flux-1.1-pro, flux-1.1-pro-ultra, flux-2-pro, flux-2-max: {'type': 'string', 'format': 'uri'}
#   seedream-4.5: {'type': 'array', 'items': {'format': 'uri', ...}}
#   qwen-image: array (UNVERIFIED; the published schema was not in the stored pages)
MODELS: dict[str, ReplicateModel] = {
    "black-forest-labs/flux-schnell": ReplicateModel("flux", "list"),
    "black-forest-labs/flux-dev": ReplicateModel("flux", "list"),
    "black-forest-labs/flux-1.1-pro": ReplicateModel("flux-pro", "string", max_outputs=1),
    # replicate.com/black-forest-labs/flux-1.1-pro-ultra/api: aspect_ratio (default 1:1),
    # output_format jpg|png (default jpg), raw, image_prompt; ~4 MP frames (flux_sizes).
    "black-forest-labs/flux-1.1-pro-ultra": ReplicateModel("flux-ultra", "string", default_format="jpg",
                                                           formats=("jpg", "png"), max_outputs=1),
    "black-forest-labs/flux-2-pro": ReplicateModel("flux2", "string", max_outputs=1),
    "black-forest-labs/flux-2-max": ReplicateModel("flux2", "string", max_outputs=1),
    "bytedance/seedream-4.5": ReplicateModel("seedream", "list", default_format="jpg", formats=("jpg",),
                                             max_outputs=15),
    "qwen/qwen-image": ReplicateModel("qwen", "list"),
    # replicate.com/stability-ai/stable-diffusion-3.5-large/api: aspect_ratio (the FLUX set of 11), output a list,
    # one image per prediction; ~1 MP frames per ratio like FLUX's (UNVERIFIED)
    "stability-ai/stable-diffusion-3.5-large": ReplicateModel("flux", "list", max_outputs=1),
}
GENERIC = ReplicateModel("flux", "list")


@dataclass
class ReplicatePlan:
    """A validated input: what to render and how to shape the output."""

    prompt: str
    width: int
    height: int
    count: int
    fmt: str
    quality: int | None
    safety_checker: bool


def model_for(name: str) -> ReplicateModel:
    return MODELS.get(name, GENERIC)


def _choice(inputs: dict[str, Any], name: str, allowed: tuple[str, ...] | list[str], default: str) -> str:
    value = inputs.get(name, default)
    if value not in allowed:
        shown = ", ".join(f'"{a}"' for a in allowed)
        raise invalid(name, f"{name} must be one of the following: {shown}", "enum")
    return str(value)


def _int(inputs: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = inputs.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, "Invalid type. Expected: integer, given: " + type(value).__name__, "invalid_type")
    if value < low:
        raise invalid(name, f"Must be greater than or equal to {low}", "number_gte")
    if value > high:
        raise invalid(name, f"Must be less than or equal to {high}", "number_lte")
    return value


def _round_to(value: int, step: int) -> int:
    return max(step, int(value / step + 0.5) * step)  # half up, not banker's rounding


def _custom(inputs: dict[str, Any], low: int, high: int, step: int) -> Size:
    """``aspect_ratio: custom``: width/height required, range-checked, rounded to ``step``."""
    sides = []
    for name in ("width", "height"):
        side = _int(inputs, name, None, low, high)
        if side is None:
            raise invalid(name, f"{name} is required when aspect_ratio is custom", "required")
        sides.append(_round_to(side, step))
    return sides[0], sides[1]


def _size(model: ReplicateModel, inputs: dict[str, Any]) -> Size:
    if model.family == "flux":
        ratio = _choice(inputs, "aspect_ratio", list(FLUX_RATIOS), "1:1")
        mp = _choice(inputs, "megapixels", ("1", "0.25"), "1")
        width, height = FLUX_RATIOS[ratio]
        return (width // 2, height // 2) if mp == "0.25" else (width, height)
    if model.family == "flux-pro":
        ratio = _choice(inputs, "aspect_ratio", [*FLUX_PRO_RATIOS, "custom"], "1:1")
        return _custom(inputs, 256, 1440, 32) if ratio == "custom" else FLUX_RATIOS[ratio]
    if model.family == "flux-ultra":
        return FLUX_ULTRA[_choice(inputs, "aspect_ratio", list(FLUX_ULTRA), "1:1")]
    if model.family == "flux2":
        ratio = _choice(inputs, "aspect_ratio", [*FLUX2_RATIOS, "custom"], "1:1")
        if ratio == "custom":
            return _custom(inputs, 256, 2048, 16)
        mp = FLUX2_RESOLUTIONS[_choice(inputs, "resolution", list(FLUX2_RESOLUTIONS), "1 MP")]
        a, b = (int(x) for x in ratio.split(":"))
        # ratio x megapixels, multiples of 16, max side 2048 (the model card's limits): UNVERIFIED
        width = math.sqrt(mp * 1024 * 1024 * a / b)
        height = width * b / a
        scale = min(1.0, 2048 / max(width, height))
        return _round_to(int(width * scale), 16), _round_to(int(height * scale), 16)
    if model.family == "seedream":
        size = _choice(inputs, "size", ("1K", "2K", "4K", "custom"), "2K")
        if size == "custom":
            return _custom(inputs, 1024, 4096, 1)
        ratio = _choice(inputs, "aspect_ratio", ["match_input_image", *SEEDREAM_2K], "match_input_image")
        width, height = SEEDREAM_2K["1:1" if ratio == "match_input_image" else ratio]
        factor = {"1K": 0.5, "2K": 1.0, "4K": 2.0}[size]
        return int(width * factor), int(height * factor)
    # qwen
    ratio = _choice(inputs, "aspect_ratio", list(QWEN_QUALITY), "16:9")
    mode = _choice(inputs, "image_size", ("optimize_for_quality", "optimize_for_speed"), "optimize_for_quality")
    return (QWEN_QUALITY if mode == "optimize_for_quality" else QWEN_SPEED)[ratio]


def build_plan(model: ReplicateModel, inputs: Any) -> ReplicatePlan:
    """Validate ``input`` against the model (raises the 422 ``ReplicateError``)."""
    if not isinstance(inputs, dict):
        raise invalid("", "Invalid type. Expected: object", "invalid_type")
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise invalid("prompt", "prompt is required", "required")
    width, height = _size(model, inputs)
    if model.family == "seedream":
        count = _int(inputs, "max_images", 1, 1, 15) or 1
        if inputs.get("sequential_image_generation", "disabled") != "auto":
            count = 1
    else:
        count = _int(inputs, "num_outputs", 1, 1, model.max_outputs) if model.max_outputs > 1 else 1
    fmt = model.default_format if len(model.formats) == 1 else \
        _choice(inputs, "output_format", model.formats, model.default_format)
    quality = _int(inputs, "output_quality", 80, 0, 100)
    return ReplicatePlan(prompt=prompt, width=width, height=height, count=count or 1, fmt=fmt, quality=quality,
                         safety_checker=not bool(inputs.get("disable_safety_checker", False)))
