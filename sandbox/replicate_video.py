"""The Replicate video models the simulator knows: their inputs and output frames.

All three publish ``{'format': 'uri', 'type': 'string'}`` as their output schema (one MP4
URL), per their replicate.com/<model>/api pages:

* ``google/veo-3.1``: ``prompt``, ``aspect_ratio`` 16:9 | 9:16 (default 16:9), ``duration``
  4 | 6 | 8 (integer, default 8), ``resolution`` 720p | 1080p (default 1080p), ``image``,
  ``last_frame``, ``reference_images``, ``negative_prompt``, ``generate_audio``, ``seed``.
* ``kwaivgi/kling-v2.1``: image-to-video only: ``start_image`` (required), ``prompt``,
  ``mode`` standard (720p) | pro (1080p), ``duration`` 5 | 10, ``negative_prompt``. The
  frame follows the start image's aspect ratio (closest of 16:9, 9:16, 1:1); the exact
  frames are UNVERIFIED.
* ``kwaivgi/kling-v2.5-turbo-pro``: ``prompt``, ``duration`` 5 | 10, ``aspect_ratio``
  16:9 | 9:16 | 1:1 (default 16:9; ignored when ``start_image`` is given: the frame then
  follows the image), ``start_image``, ``negative_prompt``; 1080p (frames UNVERIFIED).
* ``wan-video/wan-2.5-t2v``: ``prompt``, ``size`` "W*H" (Alibaba's Wan 2.5 sizes; the enum
  and its default 1280*720 are UNVERIFIED), ``duration`` 5 | 10, ``negative_prompt``,
  ``enable_prompt_expansion``, ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fal_video import image_dimensions
from .replicate_models import invalid

Size = tuple[int, int]

VEO_FRAMES: dict[str, dict[str, Size]] = {
    "720p": {"16:9": (1280, 720), "9:16": (720, 1280)},
    "1080p": {"16:9": (1920, 1080), "9:16": (1080, 1920)},
}
KLING_FRAMES: dict[str, dict[str, Size]] = {
    "standard": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    "pro": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)},
}
WAN_SIZES: dict[str, Size] = {
    "832*480": (832, 480), "480*832": (480, 832), "1280*720": (1280, 720), "720*1280": (720, 1280),
    "1920*1080": (1920, 1080), "1080*1920": (1080, 1920),
}
MODELS: dict[str, str] = {
    "google/veo-3.1": "veo",
    "kwaivgi/kling-v2.1": "kling",
    "kwaivgi/kling-v2.5-turbo-pro": "kling-turbo",
    "wan-video/wan-2.5-t2v": "wan",
}


@dataclass
class VideoPlan:
    """A validated video input."""

    prompt: str
    width: int
    height: int
    seconds: int
    count: int = 1


def is_video_model(name: str) -> bool:
    return name in MODELS


def _enum(inputs: dict[str, Any], name: str, allowed: list[Any], default: Any) -> Any:
    value = inputs.get(name, default)
    if isinstance(value, bool) or value not in allowed:
        shown = ", ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in allowed)
        raise invalid(name, f"{name} must be one of the following: {shown}", "enum")
    return value


def _closest(table: dict[str, Size], size: Size | None) -> Size:
    if size is None:
        return table["16:9"]
    ratio = size[0] / size[1]
    return min(table.values(), key=lambda s: abs(s[0] / s[1] - ratio))


def build_plan(name: str, inputs: Any, lookup: Any = None) -> VideoPlan:
    """Validate ``input`` for a video model (raises the 422 ``ReplicateError``)."""
    if not isinstance(inputs, dict):
        raise invalid("", "Invalid type. Expected: object", "invalid_type")
    kind = MODELS[name]
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise invalid("prompt", "prompt is required", "required")
    if kind == "veo":
        ratio = _enum(inputs, "aspect_ratio", ["16:9", "9:16"], "16:9")
        resolution = _enum(inputs, "resolution", list(VEO_FRAMES), "1080p")
        seconds = _enum(inputs, "duration", [4, 6, 8], 8)
        width, height = VEO_FRAMES[resolution][ratio]
    elif kind == "kling":
        start = inputs.get("start_image")
        if not isinstance(start, str) or not start:
            raise invalid("start_image", "start_image is required", "required")  # UNVERIFIED wording
        mode = _enum(inputs, "mode", list(KLING_FRAMES), "standard")
        seconds = _enum(inputs, "duration", [5, 10], 5)
        width, height = _closest(KLING_FRAMES[mode], image_dimensions(start, lookup))
    elif kind == "kling-turbo":
        table = KLING_FRAMES["pro"]
        ratio = _enum(inputs, "aspect_ratio", list(table), "16:9")
        seconds = _enum(inputs, "duration", [5, 10], 5)
        start = inputs.get("start_image")
        width, height = _closest(table, image_dimensions(start, lookup)) if start else table[ratio]
    else:
        size = _enum(inputs, "size", list(WAN_SIZES), "1280*720")
        seconds = _enum(inputs, "duration", [5, 10], 5)
        width, height = WAN_SIZES[size]
    return VideoPlan(prompt=prompt, width=width, height=height, seconds=int(seconds))
