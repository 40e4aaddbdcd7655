"""Input images for edits: uploaded parts, data: URLs or https URLs, decoded and checked once.

Checks: a readable image in an allowed format, within byte and pixel limits, no more images than the
model takes, and a mask of exactly the first image's dimensions. Templates then see each image as a
small mapping: `bytes` (the upload itself, held once), and `b64` / `data_url` computed only when a
template reads them, a slice at a time (base64 keeps the GIL for a whole call; slices let the loop
run), then kept for the other batches and routes of the request. A multipart upstream never makes one.
"""

from __future__ import annotations

import asyncio
import binascii
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mediagate import imaging, jsonbody, safefetch
from mediagate.errors import GatewayError, invalid_request

MAX_INPUT_IMAGE_BYTES = 50 * 1024 * 1024        # per image (OpenAI's limit for GPT image edits)
MAX_INPUT_IMAGE_PIXELS = 8192 * 8192            # a larger input is refused before any provider sees it
INPUT_FORMATS = frozenset({"png", "jpeg", "webp", "gif"})
DEFAULT_INPUT_IMAGES = 1                        # when a model does not declare limits.input_images
INLINE_DECODE_CHARS = 256 * 1024                # a data: URL up to this is decoded inline, larger in a thread


@dataclass(frozen=True)
class InputImage:
    data: bytes
    format: str
    width: int
    height: int
    _encoded: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @property
    def mime(self) -> str:
        return imaging.MIME[self.format]

    def encoded(self, name: str) -> str:
        """`b64`, `data_url` or `edit_area_b64`, made on first use (by whichever thread renders first) and kept."""
        with self._lock:
            value = self._encoded.get(name)
            if value is None:
                if name == "edit_area_b64":
                    value = imaging.b64encode(imaging.edit_area_png(self.data))
                else:
                    value = imaging.b64encode(self.data, f"data:{self.mime};base64," if name == "data_url" else "")
                self._encoded[name] = value
            return value

    def as_context(self) -> "ImageContext":
        return ImageContext(self)


class ImageContext(Mapping[str, Any]):
    """What templates see of an input image; `b64` and `data_url` exist only once read."""

    KEYS = ("bytes", "b64", "mime", "data_url", "width", "height", "format", "filename", "edit_area_b64")

    def __init__(self, image: InputImage) -> None:
        self._image = image

    def __getitem__(self, key: str) -> Any:
        i = self._image
        if key in ("b64", "data_url", "edit_area_b64"):
            return i.encoded(key)
        if key == "bytes":
            return i.data
        if key == "mime":
            return i.mime
        if key in ("width", "height", "format"):
            return getattr(i, key)
        if key == "filename":
            return f"image.{imaging.EXT[i.format]}"
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return f"<image {self._image.format} {self._image.width}x{self._image.height}, {len(self._image.data)} bytes>"


def context_bytes(images: Any) -> int:
    """Input bytes a template context carries (how heavy rendering it may be)."""
    return sum(len(i.data) for i in images)


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
            return (imaging.b64decode(payload) if len(payload) <= INLINE_DECODE_CHARS
                    else await jsonbody.off_loop(imaging.b64decode, payload))
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
