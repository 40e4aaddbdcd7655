"""Compiled request schemas: one JSON Schema per model and operation, generated from the model spec.

The same schema validates requests and is what `GET /v1/models/{id}?schema=true` serves, so the two
cannot drift. Each property carries its handling mode in `x-mediagate-mode`.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterator

import jsonschema

from mediagate.canonical import MAX_N, OPENAI_IMAGE_FIELDS, UNIVERSAL_FIELDS
from mediagate.errors import GatewayError, invalid_request
from mediagate.operations import REGISTRY
from mediagate.shape import ShapeSpec

IMAGE_FORMATS = ["png", "jpeg", "gif", "webp", "avif"]   # raster: the gateway converts between these
VECTOR_FORMATS = frozenset({"svg"})                      # declared by a model that makes vector images
DEFAULT_PROMPT_CHARS = 32000   # prompt characters for an image or video model that declares no limits.prompt_chars
                               # (the longest any shipped model takes)
# The shape fields' patterns admit exactly what mediagate.shape accepts, so the served schema (and the OpenAPI
# document built from it) never admits a value the gateway then refuses (tests/test_openapi.py draws from them):
_SIDE = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-6])"   # 1..MAX_SIDE_PX
_RATIO_PART = "[1-9][0-9]{0,2}(\\.[0-9]+)?"            # 1 to <1000: a ratio stays within 1/1000..1000
_FRACTION = "0\\.[0-9]*[1-9][0-9]*"                    # above 0, below 1
_K = f"(([1-9]|[1-5][0-9]|6[0-3])(\\.[0-9]+)?|64(\\.0+)?|{_FRACTION})[kK]"   # up to 64K: a MAX_SIDE_PX side
_BARE = f"({_SIDE}(\\.0+)?|([1-9][0-9]{{0,3}}|[1-5][0-9]{{4}}|6[0-4][0-9]{{3}}|65[0-4][0-9]{{2}}|655[0-2][0-9]|6553[0-5])\\.[0-9]+|{_FRACTION})"
SIZE_PATTERN = f"^(auto|{_SIDE}x{_SIDE})$"
RATIO_PATTERN = f"^{_RATIO_PART}:{_RATIO_PART}$"
TIER_PATTERN = f"^({_K}|{_BARE}|[1-9][0-9]{{2,3}}[pP])$"   # a K tier, megapixels or a side in pixels, a video height
ENDPOINTS = {"generate": "images.generations", "edit": "images.edits", "chat": "chat.completions"}


def build_chat(model: dict[str, Any]) -> dict[str, Any]:
    """Chat is a passthrough: the schema checks what the gateway itself relies on and lets the rest through."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{model['id']} chat.completions request",
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string"},
            "messages": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role"]},
                         "x-mediagate-mode": "passthrough"},
            "stream": {"type": "boolean", "x-mediagate-mode": "passthrough",
                       "description": "server-sent events relayed chunk by chunk"},
            "max_tokens": {"type": "integer", "minimum": 1, "x-mediagate-mode": "passthrough"},
            "max_completion_tokens": {"type": "integer", "minimum": 1, "x-mediagate-mode": "passthrough"},
        },
        "additionalProperties": True,
        "x-mediagate-passthrough": "every field is sent to the provider as it is; only model is renamed",
    }


def _mode(prop: dict[str, Any], mode: str, description: str) -> dict[str, Any]:
    return {**prop, "x-mediagate-mode": mode, "description": description}


def build(model: dict[str, Any], operation: str) -> dict[str, Any]:
    if operation == "chat":
        return build_chat(model)
    limits = model.get("limits", {})
    native_n = limits.get("n", 1)
    shape = ShapeSpec.from_spec(model.get("shape", REGISTRY["shape"].default))
    supported = shape.supported()
    output = model.get("output", REGISTRY["output"].default)
    thinking = model.get("thinking", REGISTRY["thinking"].default)
    prompt: dict[str, Any] = {"type": "string", "minLength": 1}
    prompt["maxLength"] = limits.get("prompt_chars", DEFAULT_PROMPT_CHARS)
    props: dict[str, Any] = {
        "model": {"type": "string", "description": "model id or alias; provider/model forces a provider"},
        "prompt": _mode(prompt, "renamed", "text description of the image"),
        "n": _mode({"type": "integer", "minimum": 1, "maximum": MAX_N, "default": 1, "x-mediagate-native-max": native_n},
                   "emulated" if native_n < MAX_N else "passthrough",
                   f"number of images; above {native_n} the gateway fans out concurrent calls"),
        "size": _mode({"type": "string", "pattern": SIZE_PATTERN, **_only(supported, "sizes", "examples")},
                      "converted", "WIDTHxHEIGHT; wins over aspect_ratio and resolution. " + _vocab(supported)),
        "aspect_ratio": _mode({"type": "string", "pattern": RATIO_PATTERN,
                               **_only(supported, "aspect_ratios", "examples")},
                              "converted", "W:H; matched to the nearest supported ratio"),
        "resolution": _mode({"type": "string", "pattern": TIER_PATTERN,
                             **_only(supported, "resolutions", "examples")},
                            "converted", "scale tier (0.5K, 1K, 2K, 4K), megapixels (0.25, 1) or video height (720p); nearest tier"),
        "response_format": _mode({"enum": ["url", "b64_json"], "default": "url"}, "emulated",
                                 "url: a signed, expiring gateway URL; b64_json: inline base64"),
        "output_format": _mode({"enum": IMAGE_FORMATS + [f for f in output["formats"] if f not in IMAGE_FORMATS]},
                               "emulated" if set(output["formats"]) != set(IMAGE_FORMATS) else "passthrough",
                               f"image format; the provider makes {', '.join(output['formats'])}, the gateway converts the rest"
                               + (" (a vector model's SVG is never rasterized: a raster format is refused)"
                                  if set(output["formats"]) <= VECTOR_FORMATS else "")),
        "output_compression": _mode({"type": "integer", "minimum": 1, "maximum": 100},
                                    "passthrough" if output.get("compression") else "emulated", "quality for jpeg, webp and avif"),
        "thinking": _mode({"enum": thinking["levels"]}, "converted", "reasoning effort the model may spend"),
        "thinking_level": _mode({"enum": thinking["levels"]}, "converted", "alias of thinking"),
        "enhance_prompt": _mode({"enum": ["on", "off", True, False]}, "converted" if "enhance_prompt" in model else "emulated",
                                "let the model rewrite the prompt" + ("" if "enhance_prompt" in model else "; ignored by this model")),
        "stream": {"enum": [False], "description": "streaming is not available for images"},
    }
    if "default" in thinking:
        props["thinking"]["default"] = thinking["default"]
    if model.get("kind") == "video":
        for name in ("response_format", "output_format", "output_compression", "stream"):
            props.pop(name)
        props["prompt"]["description"] = "text description of the video"
        props["n"]["description"] = f"number of videos; above {native_n} the gateway runs concurrent jobs"
        durations = model.get("durations", {"allowed": [4]})
        seconds = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}],
                   "examples": durations["allowed"]}
        props["seconds"] = _mode(seconds, "converted", f"length in seconds, matched to the nearest of {durations['allowed']}")
        props["duration"] = _mode(seconds, "converted", "alias of seconds")
        props["input_reference"] = _mode({"anyOf": [{"type": "string"}, {"type": "object"}]}, "converted",
                                         "an image to start from: an uploaded file, a data: URL or an https URL")
        props["webhook_url"] = _mode({"type": "string", "pattern": "^https?://[^/?#]", "maxLength": 2048}, "emulated",
                                     "receives video.completed / video.failed, signed per Standard Webhooks")
        props["idempotency_key"] = _mode({"type": "string", "minLength": 1, "maxLength": 255}, "emulated",
                                         "a repeated key returns the job it first created")
    for name, p in model.get("params", {}).items():
        prop = {k: v for k, v in (("type", p.get("type")), ("enum", p.get("enum")), ("minimum", p.get("minimum")),
                                  ("maximum", p.get("maximum")), ("maxLength", p.get("max_length")),
                                  ("default", p.get("default"))) if v is not None}
        props[name] = _mode(prop, p.get("mode", "passthrough"), p.get("description", ""))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{model['id']} {ENDPOINTS.get(operation, operation)} request",
        "type": "object",
        "required": ["model", "prompt"],
        "properties": props,
        "additionalProperties": True,
        "x-mediagate-shape": supported,
        "x-mediagate-passthrough": "unknown fields are passed through to the provider",
    }


def _only(supported: dict[str, Any], key: str, as_: str) -> dict[str, Any]:
    return {as_: supported[key]} if key in supported else {}


def _vocab(supported: dict[str, Any]) -> str:
    parts = [f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in supported.items()]
    return "Supported " + "; ".join(parts) + "." if parts else ""


@functools.lru_cache(maxsize=256)
def _ecma(pattern: str) -> re.Pattern[str]:
    """A schema pattern with ECMA 262's `$` (the end of the text) instead of Python's (which also matches before
    a final newline): what the served schema admits is then what every JSON Schema tool admits."""
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# JSON Schema counts 50.0 as an integer; a provider does not, so neither do we (and booleans are not numbers)
_STRICT = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)))


class RequestValidator:
    """A compiled validator turning the first schema error into an OpenAI-shaped 400."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator = _STRICT(schema)

    def without_nulls(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body with JSON nulls for fields the gateway knows removed: what the OpenAI SDKs send for a
        parameter the caller left as None means "not given". Unknown fields keep their null (passed through)."""
        known = self.schema["properties"].keys() | UNIVERSAL_FIELDS | OPENAI_IMAGE_FIELDS
        if not any(v is None and k in known for k, v in body.items()):
            return body
        return {k: v for k, v in body.items() if not (v is None and k in known)}

    def validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise invalid_request("The request body must be a JSON object.", None, "invalid_json")
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(body))
        if error is not None:
            raise _to_gateway_error(error, self.schema)


def _to_gateway_error(error: jsonschema.ValidationError, schema: dict[str, Any]) -> GatewayError:
    # absolute: an error inside an anyOf branch has a path relative to that branch (often empty)
    param = str(error.absolute_path[0]) if error.absolute_path else None
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else None
        return invalid_request(f"Missing required parameter: '{missing}'.", missing, "missing_required_parameter")
    value = error.instance
    if error.validator == "enum":
        allowed = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in error.validator_value)
        if param == "stream":
            return invalid_request("stream is not supported for image requests.", param, "unsupported_value")
        return invalid_request(f"Invalid value for '{param}': {value!r}. Supported values: {allowed}.", param,
                               "unsupported_value" if param in ("thinking", "thinking_level") else "invalid_value")
    if error.validator in ("minimum", "maximum"):
        prop = schema["properties"].get(param or "", {})
        return invalid_request(f"Invalid value for '{param}': {value!r}. It must be between {prop.get('minimum', '-inf')} "
                               f"and {prop.get('maximum', 'inf')}.", param)
    if error.validator == "maxLength":
        return invalid_request(f"'{param}' is too long: {len(value)} characters, at most {error.validator_value}.", param,
                               "string_above_max_length")
    if error.validator == "minLength":
        return invalid_request(f"'{param}' must not be empty.", param, "empty_string")
    if error.validator == "type":
        return invalid_request(f"Invalid type for '{param}': expected {error.validator_value}.", param, "invalid_type")
    if error.validator == "pattern":
        return invalid_request(f"Invalid value for '{param}': {value!r} is not in the expected form.", param)
    if error.validator == "anyOf":
        kinds = sorted({str(b.get("type")) for b in error.validator_value if isinstance(b, dict) and "type" in b})
        return invalid_request(f"Invalid value for '{param}': {value!r}; expected {' or '.join(kinds) or 'another form'}.", param)
    return invalid_request(f"Invalid value for '{param}': {error.message}", param)
