"""Per-model request rules of the OpenAI Images API, and its error format.

Kept apart from the HTTP handlers so the rules read as a table: which sizes,
qualities, ``n`` and response formats each model family accepts, and the exact
400/404 bodies the real API answers with when a request breaks them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

Family = Literal["gpt-image", "dall-e-3", "dall-e-2", "generic"]


class OpenAIError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


@dataclass(frozen=True)
class ModelSpec:
    """What one model accepts. Empty ``sizes`` means a rule-based (any ``WxH``) model."""

    name: str
    family: Family
    sizes: tuple[str, ...]
    default_size: str
    qualities: tuple[str, ...]
    default_quality: str | None
    n_max: int
    prompt_max: int
    default_response_format: str


_GPT_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
_GPT_QUALITIES = ("low", "medium", "high", "auto")
_GPT25_QUALITIES = ("low", "medium", "high", "xhigh", "max", "auto")


def _gpt(name: str, sizes: tuple[str, ...] = _GPT_SIZES) -> ModelSpec:
    return ModelSpec(name, "gpt-image", sizes, "auto", _GPT_QUALITIES, "auto", 10, 32000, "b64_json")


MODELS: dict[str, ModelSpec] = {
    "gpt-image-1": _gpt("gpt-image-1"),
    "gpt-image-1.5": _gpt("gpt-image-1.5"),
    "gpt-image-1-mini": _gpt("gpt-image-1-mini"),
    "gpt-image-2": _gpt("gpt-image-2", ()),  # any WxH within the rules in _gpt_image_2_size
    # gpt-image-2.5 (2026-09-08): gpt-image-2's request rules plus two quality tiers above high
    # (docs.apiyi.com/en/news/gpt-image-2-5-launch; wavespeed.ai/gpt-image-2-5-api; third-party)
    "gpt-image-2.5-flare": ModelSpec("gpt-image-2.5-flare", "gpt-image", (), "auto", _GPT25_QUALITIES, "auto", 10, 32000, "b64_json"),
    "gpt-image-2.5-sunburst": ModelSpec("gpt-image-2.5-sunburst", "gpt-image", (), "auto", _GPT25_QUALITIES, "auto", 10, 32000,
                                        "b64_json"),
    "dall-e-3": ModelSpec(
        "dall-e-3", "dall-e-3", ("1024x1024", "1792x1024", "1024x1792"), "1024x1024",
        ("standard", "hd"), "standard", 1, 4000, "url",
    ),
    "dall-e-2": ModelSpec(
        "dall-e-2", "dall-e-2", ("256x256", "512x512", "1024x1024"), "1024x1024",
        ("standard",), "standard", 10, 1000, "url",
    ),
}
# Ids in OpenAI's own namespace that we do not model are "not found", as on api.openai.com;
# anything else is served the way a generic OpenAI-compatible image server would.
_OPENAI_NAMESPACE = re.compile(r"^(gpt-|dall-e|chatgpt-|sora-|o\d|davinci|babbage|text-|tts-|whisper)")
_GPT_ONLY_FIELDS = ("output_format", "output_compression", "background", "moderation", "input_fidelity")

# Output tokens per image for gpt-image models at 1024x1024 and at 1536x1024 / 1024x1536.
_GPT_TOKENS = {"low": (272, 408), "medium": (1056, 1584), "high": (4160, 6240)}


def generic_spec(name: str) -> ModelSpec:
    """Rules for a non-OpenAI id: a typical OpenAI-compatible server (LocalAI, vLLM-omni, ...)."""
    return ModelSpec(name, "generic", (), "512x512", (), None, 4, 32000, "b64_json")


def lookup(model: Any, body: dict[str, Any]) -> ModelSpec:
    """Resolve the model id like the real API, defaulting to dall-e-2 unless GPT-image fields are used."""
    if model is None or model == "":
        return MODELS["gpt-image-1" if any(k in body for k in _GPT_ONLY_FIELDS) else "dall-e-2"]
    if not isinstance(model, str):
        raise OpenAIError(400, f"Invalid type for 'model': expected a string, but got {type(model).__name__} instead.",
                          param="model", code="invalid_type")
    if model in MODELS:
        return MODELS[model]
    if _OPENAI_NAMESPACE.match(model):
        raise OpenAIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                          code="model_not_found")
    return generic_spec(model)


def raise_server_fault(kind: str, model: str, limit: str) -> None:
    """OpenAI's own bodies for the faults every endpoint shares (429, 500, 503); other kinds return.

    `limit` names the rate limit in OpenAI's wording, e.g. "images per minute (IPM): Limit 5, Used 5"."""
    if kind == "429":
        raise OpenAIError(429, f"Rate limit reached for {model} in organization org-sandbox on {limit}, Requested 1. "
                          "Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to learn more.",
                          type_="requests", code="rate_limit_exceeded", headers={"retry-after": "1", "retry-after-ms": "1000"})
    if kind == "500":
        raise OpenAIError(500, "The server had an error while processing your request. Sorry about that!",
                          type_="server_error")
    if kind == "503":
        raise OpenAIError(503, "The engine is currently overloaded, please try again later.", type_="server_error")


def _choices(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted) if len(quoted) < 2 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def invalid_value(param: str, value: Any, allowed: tuple[str, ...]) -> OpenAIError:
    return OpenAIError(400, f"Invalid value: '{value}'. Supported values are: {_choices(allowed)}.",
                       param=param, code="invalid_value")


def int_in_range(body: dict[str, Any], param: str, default: int, low: int, high: int) -> int:
    """Validate an integer field with OpenAI's min/max error bodies."""
    value = body.get(param)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # multipart fields arrive as text
    if not isinstance(value, int) or isinstance(value, bool):
        raise OpenAIError(400, f"Invalid type for '{param}': expected an integer, but got {type(value).__name__} "
                          "instead.", param=param, code="invalid_type")
    if value < low:
        raise OpenAIError(400, f"Invalid '{param}': integer below minimum value. Expected a value >= {low}, "
                          f"but got {value} instead.", param=param, code="integer_below_min_value")
    if value > high:
        raise OpenAIError(400, f"Invalid '{param}': integer above maximum value. Expected a value <= {high}, "
                          f"but got {value} instead.", param=param, code="integer_above_max_value")
    return value


def parse_wxh(size: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", size.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _gpt_image_2_size(size: str) -> tuple[int, int] | None:
    """gpt-image-2: multiples of 16, edges <= 3840, ratio within 1:3..3:1, 0.65-8.3 MP."""
    dims = parse_wxh(size)
    if dims is None:
        return None
    w, h = dims
    ok = (w % 16 == 0 and h % 16 == 0 and max(w, h) <= 3840 and max(w, h) <= 3 * min(w, h)
          and 655_360 <= w * h <= 8_294_400)
    return dims if ok else None


GENERIC_MAX_SIDE_PX = 4096   # a self-hosted server's largest side (SDXL/Flux servers go to 4K; the size bench needs 4096²)


def _generic_size(size: str) -> tuple[int, int] | None:
    """Generic servers: any WxH, both multiples of 8 within 64..GENERIC_MAX_SIDE_PX."""
    dims = parse_wxh(size)
    if dims is None:
        return None
    return dims if all(v % 8 == 0 and 64 <= v <= GENERIC_MAX_SIDE_PX for v in dims) else None


def resolve_size(spec: ModelSpec, size: Any, auto: tuple[int, int] | None = None) -> tuple[int, int]:
    """Check ``size`` against the model and return pixels.

    ``auto`` (or no size) means ``auto`` if given (edits derive it from the input image),
    else 1024x1024 for GPT-image and the model default otherwise.
    """
    if size is None or size == "":
        size = "auto" if spec.family == "generic" else spec.default_size
    if not isinstance(size, str):
        raise OpenAIError(400, "Invalid type for 'size': expected a string.", param="size", code="invalid_type")
    if size == "auto" and spec.family in ("gpt-image", "generic"):
        if auto is not None:
            return auto
        return (1024, 1024) if spec.family == "gpt-image" else (parse_wxh(spec.default_size) or (512, 512))
    if spec.sizes:
        if size not in spec.sizes:
            raise invalid_value("size", size, spec.sizes)
        dims = parse_wxh(size)
        assert dims is not None
        return dims
    dims = _gpt_image_2_size(size) if spec.family == "gpt-image" else _generic_size(size)
    if dims is None:
        rule = ("width and height must be multiples of 16, at most 3840, with an aspect ratio between 1:3 "
                "and 3:1 and between 655360 and 8294400 pixels" if spec.family == "gpt-image"
                else f"width and height must be multiples of 8 between 64 and {GENERIC_MAX_SIDE_PX}")
        raise OpenAIError(400, f"Invalid value: '{size}'. Size must be 'auto' or WIDTHxHEIGHT; {rule}.",
                          param="size", code="invalid_value")
    return dims


def gpt_output_tokens(quality: str, width: int, height: int) -> int:
    """Approximate per-image output tokens the way gpt-image bills them."""
    square, rect = _GPT_TOKENS.get(quality, _GPT_TOKENS["high"])
    if (width, height) == (1024, 1024):
        return square
    if {width, height} == {1024, 1536}:
        return rect
    return max(1, round(square * width * height / (1024 * 1024)))
