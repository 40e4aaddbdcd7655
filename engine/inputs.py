"""Input images for edits: uploaded parts, data: URLs or https URLs, decoded and checked once.

Checks: a readable image in an allowed format, within byte and pixel limits, no more images than the
model takes, and a mask of exactly the first image's dimensions. Templates then see each image as a
small dict (bytes for multipart uploads, base64 and a data: URL for JSON bodies).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mediagate import imaging, safefetch
from mediagate.errors import GatewayError, invalid_request

MAX_INPUT_IMAGE_BYTES = 50 * 1024 * 1024        # per image (OpenAI's limit for GPT image edits)
MAX_INPUT_IMAGE_PIXELS = 8192 * 8192            # a larger input is refused before any provider sees it
INPUT_FORMATS = frozenset({"png", "jpeg", "webp", "gif"})
DEFAULT_INPUT_IMAGES = 1                        # when a model does not declare limits.input_images


@dataclass(frozen=True)
class InputImage:
    data: bytes
    format: str
    width: int
    height: int

    @property
    def mime(self) -> str:
        return imaging.MIME[self.format]

    @cached_property
    def _context(self) -> dict[str, Any]:
        b64 = base64.b64encode(self.data).decode("ascii")
        return {"bytes": self.data, "b64": b64, "mime": self.mime, "data_url": f"data:{self.mime};base64,{b64}",
                "width": self.width, "height": self.height, "format": self.format,
                "filename": f"image.{imaging.EXT[self.format]}"}

    def as_context(self) -> dict[str, Any]:
        """Built once per image (base64 included), however many routes and batches render it."""
        return self._context


def _invalid_image(param: str, why: str) -> GatewayError:
    return GatewayError(400, f"'{param}' is not a usable image: {why}.", "invalid_request_error", "invalid_image", param)


def decode(data: bytes, param: str) -> InputImage:
    if len(data) > MAX_INPUT_IMAGE_BYTES:
        raise GatewayError(413, f"'{param}' is larger than {MAX_INPUT_IMAGE_BYTES} bytes.", "invalid_request_error",
                           "request_too_large", param)
    if not data:
        raise _invalid_image(param, "it is empty")
    try:
        info = imaging.identify(data)
    except imaging.ImageError:
        raise _invalid_image(param, "it cannot be decoded") from None
    if info.format not in INPUT_FORMATS:
        raise _invalid_image(param, f"{info.format} is not one of {', '.join(sorted(INPUT_FORMATS))}")
    if info.width * info.height > MAX_INPUT_IMAGE_PIXELS:
        raise _invalid_image(param, f"{info.width}x{info.height} is more than {MAX_INPUT_IMAGE_PIXELS} pixels")
    return InputImage(data, info.format, info.width, info.height)


async def _bytes_of(source: Any, policy: safefetch.FetchPolicy, param: str) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if not isinstance(source, str) or not source:
        raise invalid_request(f"'{param}' must be an uploaded file, a data: URL or an https URL.", param, "invalid_type")
    if source.startswith("data:"):
        header, _, payload = source.partition(",")
        if ";base64" not in header:
            raise invalid_request(f"'{param}' data: URL must be base64-encoded.", param, "invalid_url")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid_image(param, "its base64 data is malformed") from None
    return await safefetch.fetch(source, policy, MAX_INPUT_IMAGE_BYTES, param)


async def load(sources: list[Any], mask: Any, limit: int, policy: safefetch.FetchPolicy) -> tuple[list[InputImage], InputImage | None]:
    """Decode (and fetch) every image and the mask; raise the first problem as a 4xx naming its field."""
    if not sources:
        raise invalid_request("Missing required parameter: 'image'.", "image", "missing_required_parameter")
    if len(sources) > limit:
        raise invalid_request(f"This model takes at most {limit} input image(s); {len(sources)} were sent.", "image", "too_many_images")
    raw = await asyncio.gather(*(_bytes_of(s, policy, "image") for s in sources))
    images = [await asyncio.to_thread(decode, b, "image") for b in raw]
    mask_image = None
    if mask is not None:
        mask_image = await asyncio.to_thread(decode, await _bytes_of(mask, policy, "mask"), "mask")
        if (mask_image.width, mask_image.height) != (images[0].width, images[0].height):
            raise invalid_request(f"The mask is {mask_image.width}x{mask_image.height} but the first image is "
                                  f"{images[0].width}x{images[0].height}; they must be the same size.", "mask", "invalid_mask")
    return images, mask_image
