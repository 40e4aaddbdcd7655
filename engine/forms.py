"""Edit requests in their two wire forms, reduced to (body, image sources, mask source).

Multipart is what the OpenAI SDKs send: `image` or `image[]` file parts, an optional `mask` part and
text fields, which are typed here from the model's compiled schema (a form field is always text).
JSON carries images as data: or https URLs in `image` / `images` (strings or {"image_url": ...}).
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive

from mediagate import errors, textcheck
from mediagate.inputs import MAX_INPUT_IMAGE_BYTES
from mediagate.runtime import Runtime

MAX_MULTIPART_BODY_BYTES = 256 * 1024 * 1024   # all parts of one edit request together
MAX_FORM_FILES = 20                             # image parts plus the mask
MAX_FORM_FIELDS = 100
MAX_FORM_FIELD_BYTES = 1024 * 1024              # one text field (a prompt is far smaller)
IMAGE_KEYS = ("image", "image[]", "images", "images[]")


def _capped(receive: Receive, limit: int) -> Receive:
    """An ASGI receive that refuses a body growing past `limit` bytes, whatever Content-Length said."""
    seen = 0

    async def counting() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise errors.too_large(limit)
        return message
    return counting


def _url_of(value: Any) -> Any:
    return value.get("image_url", value.get("url")) if isinstance(value, dict) else value


def split_edit_json(body: Any) -> tuple[Any, list[Any], Any]:
    if not isinstance(body, dict):
        return body, [], None
    images: list[Any] = []
    for key in IMAGE_KEYS:
        value = body.get(key)
        if value is not None:
            images += [_url_of(v) for v in (value if isinstance(value, list) else [value])]
    mask = _url_of(body.get("mask"))
    rest = {k: v for k, v in body.items() if k not in IMAGE_KEYS and k != "mask"}
    return rest, images, mask


def video_reference_json(body: Any) -> tuple[Any, Any]:
    """A JSON video request's `input_reference` (a URL string, or an object holding one) taken out of the body;
    an object without a URL or a list is refused rather than turning the request into a text-only video."""
    if not isinstance(body, dict) or body.get("input_reference") is None:
        return body, None
    rest = {k: v for k, v in body.items() if k != "input_reference"}
    value = body["input_reference"]
    if isinstance(value, dict):
        value = value.get("image_url", value.get("url"))
        if isinstance(value, dict):  # {"image_url": {"url": ...}} as in chat content parts
            value = value.get("url")
    if not isinstance(value, str) or not value:
        raise errors.invalid_request("input_reference must be one image: a data: or https URL, or an object with "
                                     "image_url or url holding one.", "input_reference")
    return rest, value


def video_reference_parts(references: list[Any], mask: Any) -> Any:
    """The one input_reference part of a multipart video request; more than one, or a mask, is refused."""
    if len(references) > 1:
        raise errors.invalid_request(f"A video takes one input_reference; {len(references)} were sent.", "input_reference")
    if mask is not None:
        raise errors.invalid_request("Videos take no mask.", "mask", "unsupported_parameter")
    return references[0] if references else None


def _typed(value: str, prop: dict[str, Any]) -> Any:
    kind = prop.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            number = float(value)
            return number if math.isfinite(number) else value  # NaN / Infinity: refused by the schema as not a number
        if kind == "boolean" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind in ("object", "array"):
            return json.loads(value)
        if kind is None and value.lower() in ("true", "false") and any(isinstance(v, bool) for v in prop.get("enum", ())):
            return value.lower() == "true"
    except ValueError:
        return value  # the schema then names the field and its expected type
    return value


async def read_edit_form(request: Request, rt: Runtime, operation: str = "edit",
                         image_keys: tuple[str, ...] = IMAGE_KEYS) -> tuple[dict[str, Any], list[Any], Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_MULTIPART_BODY_BYTES:
        raise errors.too_large(MAX_MULTIPART_BODY_BYTES)
    counted = Request(request.scope, _capped(request.receive, MAX_MULTIPART_BODY_BYTES))  # chunked bodies too
    try:
        form = await counted.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_FIELD_BYTES)
    except (errors.GatewayError, ClientDisconnect):
        raise
    except Exception as exc:  # the parser's own errors (too many parts, a part too large, a broken body)
        raise errors.invalid_request(f"The multipart body could not be read: {str(exc)[:200]}", None, "invalid_multipart") from None
    try:
        body: dict[str, Any] = {}
        images: list[Any] = []
        mask: Any = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(MAX_INPUT_IMAGE_BYTES + 1)
                if key in image_keys:
                    images.append(data)
                elif key == "mask":
                    mask = data
                else:
                    raise errors.invalid_request(f"Unexpected file part '{key}'.", key, "unexpected_file")
            elif key in image_keys:
                images.append(value)          # a URL given as a text field
            elif key == "mask":
                mask = value
            else:
                body[key] = value
        model_name = body.get("model")
        if isinstance(model_name, str):
            try:
                model, _ = rt.catalog.resolve(model_name)
            except errors.GatewayError:
                model = None
            validator = model.validators.get(operation) if model is not None else None
            props = validator.schema["properties"] if validator is not None else {}
            body = {k: (_typed(v, props[k]) if isinstance(v, str) and k in props else v) for k, v in body.items()}
        textcheck.check(body)  # typed fields included: a JSON-typed field can spell a surrogate as \ud800
        return body, images, mask
    finally:
        await form.close()
