"""The fal apps the simulator knows: how each one is sized, which formats and counts it
accepts, and fal's validation errors (FastAPI/pydantic v2 ``detail`` lists, 422).

fal hosts hundreds of apps with their own schemas; unknown app ids fall back to the
common ``image_size`` schema of the FLUX family, so a new provider file still gets
exactly-sized images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .flux_sizes import FLUX_ULTRA
from .gemini_sizes import GEMINI_IMAGE_DIMENSIONS
from .imagen_sizes import IMAGEN_DIMENSIONS

Size = tuple[int, int]

# fal's ImageSize enum (every image_size app's schema, e.g. fal.ai/models/fal-ai/flux/dev/api:
# "square_hd, square, portrait_4_3, portrait_16_9, landscape_4_3, landscape_16_9").
IMAGE_SIZE_ENUM: dict[str, Size] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
# Seedream 4.5 adds auto_2K / auto_4K (default auto_2K; its v4 sibling's default is
# {"width":2048,"height":2048}: fal.ai/models/fal-ai/bytedance/seedream/v4/text-to-image/llms.txt).
# For text-to-image "auto" is taken as square: UNVERIFIED.
SEEDREAM_SIZES: dict[str, Size] = {"auto_2K": (2048, 2048), "auto_4K": (4096, 4096)}
MAX_SIDE = 14142  # fal's custom ImageSize bound (width/height <= 14142)


class FalValidationError(Exception):
    """A 422 with FastAPI's ``{"detail": [{"loc", "msg", "type", ...}]}`` body."""

    def __init__(self, field_name: str, msg: str, type_: str, value: Any = None, ctx: dict[str, Any] | None = None):
        super().__init__(msg)
        item: dict[str, Any] = {"loc": ["body", field_name], "msg": msg, "type": type_}
        if value is not None:
            item["input"] = value
        if ctx:
            item["ctx"] = ctx
        self.detail = [item]

    def response(self) -> web.Response:
        return web.json_response({"detail": self.detail}, status=422, headers={"X-Fal-Retryable": "false"})


@dataclass(frozen=True)
class FalApp:
    """The parts of one app's schema the simulator honours."""

    size_mode: str = "image_size"  # or "aspect_ratio" (+ resolution), or "size_enum" (WxH strings only)
    default_size: str = "landscape_4_3"
    extra_sizes: dict[str, Size] = field(default_factory=dict)
    size_enum: dict[str, Size] = field(default_factory=dict)  # size_mode "size_enum": the only image_size values
    ratio_table: dict[str, dict[str, Size]] = field(default_factory=dict)  # resolution -> ratio -> size
    default_ratio: str = "1:1"
    default_resolution: str = "1K"
    formats: tuple[str, ...] = ("jpeg", "png")
    default_format: str = "jpeg"
    max_images: int = 4
    extras: tuple[str, ...] = ()  # result style: "description" (adds it), "images_only" (nothing but images)
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)  # other enum fields (first = default)


_FLUX = FalApp()
_FLUX2 = FalApp(formats=("jpeg", "png", "webp"), max_images=1)  # FLUX.2 [pro]/[max]: no num_images field
_GEMINI_PRO = FalApp(size_mode="aspect_ratio", ratio_table=GEMINI_IMAGE_DIMENSIONS["gemini-3-pro-image"],
                     formats=("jpeg", "png", "webp"), default_format="png", extras=("description",))
_GEMINI_FLASH = FalApp(size_mode="aspect_ratio",
                       ratio_table={("0.5K" if k == "512" else k): v
                                    for k, v in GEMINI_IMAGE_DIMENSIONS["gemini-3.1-flash-image"].items()},
                       default_ratio="auto", formats=("jpeg", "png", "webp"), default_format="png",
                       extras=("description",))
_IMAGEN = FalApp(size_mode="aspect_ratio", ratio_table=IMAGEN_DIMENSIONS, formats=("jpeg", "png", "webp"),
                 default_format="png")
# fal.ai/models/fal-ai/flux-pro/v1.1-ultra: aspect_ratio (default 16:9), output_format jpeg|png
# (default jpeg), num_images 1-4, no image_size; ~4 MP frames (flux_sizes).
_FLUX_ULTRA = FalApp(size_mode="aspect_ratio", ratio_table={"ultra": FLUX_ULTRA}, default_ratio="16:9",
                     default_resolution="ultra")
# fal.ai/docs/model-api-reference/image-generation-api/gpt-image-1.5: image_size is an enum of
# WxH strings (default 1024x1024), quality low|medium|high (default high), background
# auto|transparent|opaque, num_images 1-4, output_format jpeg|png|webp (default png); the
# result is only {"images": [...]}.
_GPT_IMAGE_SIZES: dict[str, Size] = {"1024x1024": (1024, 1024), "1536x1024": (1536, 1024), "1024x1536": (1024, 1536)}
_GPT_IMAGE = FalApp(size_mode="size_enum", default_size="1024x1024", size_enum=_GPT_IMAGE_SIZES,
                    formats=("jpeg", "png", "webp"), default_format="png", extras=("images_only",),
                    options={"quality": ("high", "low", "medium"), "background": ("auto", "transparent", "opaque")})

# sources: fal.ai/models/<app>/api input schemas (flux/dev: image_size default landscape_4_3,
# output_format jpeg|png default jpeg, num_images 1-4; flux-2-max: image_size, no num_images;
# seedream v4.5: image_size default auto_2K, num_images 1-6, PNG out; qwen-image: output_format
# default png; gemini-3-pro-image-preview: aspect_ratio default 1:1, resolution 1K|2K|4K,
# output_format default png, num_images 1-4; imagen4/preview: aspect_ratio 1:1|16:9|9:16|3:4|4:3).
APPS: dict[str, FalApp] = {
    "fal-ai/flux/schnell": _FLUX,
    "fal-ai/flux/dev": _FLUX,
    "fal-ai/flux-pro/v1.1": _FLUX,
    "fal-ai/flux-pro/v1.1-ultra": _FLUX_ULTRA,
    "fal-ai/gpt-image-1.5": _GPT_IMAGE,
    "fal-ai/gpt-image-1.5/edit": _GPT_IMAGE,
    "fal-ai/flux-2": FalApp(formats=("jpeg", "png", "webp")),
    "fal-ai/flux-2-pro": _FLUX2,
    "fal-ai/flux-2-max": _FLUX2,
    "fal-ai/flux-2-flex": _FLUX2,
    "fal-ai/bytedance/seedream/v4.5/text-to-image": FalApp(default_size="auto_2K", extra_sizes=SEEDREAM_SIZES,
                                                          formats=("png",), default_format="png",
                                                          max_images=6),
    "fal-ai/qwen-image": FalApp(default_format="png"),
    "fal-ai/gemini-3-pro-image-preview": _GEMINI_PRO,
    "fal-ai/nano-banana-pro": _GEMINI_PRO,
    "fal-ai/gemini-3.1-flash-image-preview": _GEMINI_FLASH,
    "fal-ai/imagen4/preview": _IMAGEN,
    "fal-ai/imagen4/preview/ultra": _IMAGEN,
    "fal-ai/imagen4/preview/fast": FalApp(size_mode="aspect_ratio", ratio_table={"1K": IMAGEN_DIMENSIONS["1K"]},
                                          formats=("jpeg", "png", "webp"), default_format="png"),
}
GENERIC = FalApp(formats=("jpeg", "png", "webp"))


@dataclass
class FalPlan:
    """A validated fal input: what to render and how to answer."""

    prompt: str
    width: int
    height: int
    num_images: int
    fmt: str
    seed: int | None
    sync_mode: bool
    safety_checker: bool
    transparent: bool = False


def app_for(app_id: str) -> FalApp:
    return APPS.get(app_id, GENERIC)


def _enum_error(name: str, value: Any, allowed: list[str]) -> FalValidationError:
    shown = " or ".join(", ".join(f"'{a}'" for a in allowed).rsplit(", ", 1))
    return FalValidationError(name, f"Input should be {shown}", "enum", value, {"expected": shown})


def _int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise FalValidationError(name, "Input should be a valid integer", "int_type", value)
    if value < low:
        raise FalValidationError(name, f"Input should be greater than or equal to {low}", "greater_than_equal",
                                 value, {"ge": low})
    if value > high:
        raise FalValidationError(name, f"Input should be less than or equal to {high}", "less_than_equal",
                                 value, {"le": high})
    return value


def _image_size(app: FalApp, value: Any) -> Size:
    if app.size_mode == "size_enum":  # an enum of WxH strings: presets and dicts are rejected
        if value is None:
            return app.size_enum[app.default_size]
        if not isinstance(value, str) or value not in app.size_enum:
            raise _enum_error("image_size", value, list(app.size_enum))
        return app.size_enum[value]
    sizes = {**IMAGE_SIZE_ENUM, **app.extra_sizes}
    if value is None:
        return sizes[app.default_size]
    if isinstance(value, str):
        if value not in sizes:
            raise _enum_error("image_size", value, list(sizes))
        return sizes[value]
    if isinstance(value, dict):
        dims = []
        for key in ("width", "height"):
            side = value.get(key)
            if isinstance(side, bool) or not isinstance(side, int):
                raise FalValidationError("image_size", f"image_size.{key} should be a valid integer", "int_type",
                                         value)
            if not 1 <= side <= MAX_SIDE:
                raise FalValidationError("image_size", f"image_size.{key} should be between 1 and {MAX_SIDE}",
                                         "value_error", value)
            dims.append(side)
        return dims[0], dims[1]
    raise FalValidationError("image_size", "Input should be a valid dictionary or instance of ImageSize",
                             "model_type", value)


def _ratio_size(app: FalApp, body: dict[str, Any]) -> Size:
    # An app with a single tier has no resolution field: fal ignores unknown fields.
    resolution = body.get("resolution") or app.default_resolution if len(app.ratio_table) > 1 \
        else app.default_resolution
    if resolution not in app.ratio_table:
        raise _enum_error("resolution", resolution, list(app.ratio_table))
    table = app.ratio_table[resolution]
    ratio = body.get("aspect_ratio") or app.default_ratio
    if ratio == "auto":
        ratio = "1:1"  # text-to-image "auto" lets the model pick; the simulator picks square
    elif ratio not in table:
        raise _enum_error("aspect_ratio", ratio, (["auto"] if app.default_ratio == "auto" else []) + list(table))
    return table[ratio]


def build_plan(app_id: str, body: Any) -> FalPlan:
    """Validate a submit body against the app's schema (raises FalValidationError)."""
    if not isinstance(body, dict):
        raise FalValidationError("__root__", "Input should be a valid dictionary", "dict_type")
    app = app_for(app_id)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise FalValidationError("prompt", "Field required", "missing")
    width, height = _image_size(app, body.get("image_size")) if app.size_mode in ("image_size", "size_enum") \
        else _ratio_size(app, body)
    chosen: dict[str, str] = {}
    for name, allowed in app.options.items():
        value = body.get(name) or allowed[0]
        if not isinstance(value, str) or value not in allowed:
            raise _enum_error(name, value, sorted(allowed))
        chosen[name] = value
    count = _int(body, "num_images", 1, 1, app.max_images) if app.max_images > 1 else 1
    fmt = body.get("output_format") or app.default_format
    if len(app.formats) == 1:
        fmt = app.formats[0]  # the app has no output_format field: unknown fields are ignored
    elif fmt not in app.formats:
        raise _enum_error("output_format", fmt, list(app.formats))
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FalValidationError("seed", "Input should be a valid integer", "int_type", seed)
    return FalPlan(prompt=prompt, width=width, height=height, num_images=count, fmt=fmt, seed=seed,
                   sync_mode=bool(body.get("sync_mode", False)),
                   safety_checker=body.get("enable_safety_checker", True) is not False,
                   transparent=chosen.get("background") == "transparent" and fmt != "jpeg")
