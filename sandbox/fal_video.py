"""The fal video apps the simulator knows: their inputs and output frame sizes.

Each app's schema is its fal.ai/models/<app>/llms.txt (or fal.ai/docs/model-api-reference)
page; a video app answers ``{"video": {"url", "content_type": "video/mp4", "file_name",
"file_size"}}`` (fal's ``File`` model), Wan adds ``seed`` and ``actual_prompt``.

* Kling 2.5 Turbo Pro text-to-video: ``duration`` "5" | "10" (default "5"), ``aspect_ratio``
  16:9 | 9:16 | 1:1 (default 16:9), ``negative_prompt``, ``cfg_scale`` 0..1. The
  image-to-video app takes ``image_url`` (required) and ``tail_image_url`` instead of an
  aspect ratio: the frame follows the input image. Kling Pro renders 1080p; the exact
  frames per ratio are UNVERIFIED (1920x1080, 1080x1920, 1080x1080 here).
* Veo 3.1 (and /fast, /image-to-video): ``aspect_ratio`` 16:9 | 9:16 (default 16:9; i2v also
  "auto"), ``duration`` "4s" | "6s" | "8s" (default "8s"), ``resolution`` 720p | 1080p | 4k
  (default 720p), ``generate_audio`` (default true), ``negative_prompt``, ``seed``.
* Wan 2.5 preview text-to-video: ``aspect_ratio`` 16:9 | 9:16 | 1:1 (default 16:9),
  ``resolution`` 480p | 720p | 1080p (default 1080p), ``duration`` "5" | "10" (default "5").
  Frames per tier from Alibaba's Wan 2.5 size list: 832*480 / 480*832 / 624*624,
  1280*720 / 720*1280 / 960*960, 1920*1080 / 1080*1920 / 1440*1440.

fal validates with pydantic (lax mode does not turn an int into a str enum member), so
``duration: 5`` is a 422 just like ``duration: "7"``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from . import render
from .fal_models import FalValidationError, _enum_error

Size = tuple[int, int]

KLING_1080P: dict[str, Size] = {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)}
VEO_FRAMES: dict[str, dict[str, Size]] = {
    "720p": {"16:9": (1280, 720), "9:16": (720, 1280)},
    "1080p": {"16:9": (1920, 1080), "9:16": (1080, 1920)},
    "4k": {"16:9": (3840, 2160), "9:16": (2160, 3840)},
}
WAN_FRAMES: dict[str, dict[str, Size]] = {
    "480p": {"16:9": (832, 480), "9:16": (480, 832), "1:1": (624, 624)},
    "720p": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (960, 960)},
    "1080p": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1440, 1440)},
}


@dataclass(frozen=True)
class FalVideoApp:
    """The parts of one video app's schema the simulator honours."""

    frames: dict[str, dict[str, Size]]  # resolution -> aspect ratio -> frame
    default_resolution: str
    durations: dict[str, float]  # the duration enum as sent -> seconds
    default_duration: str
    default_ratio: str = "16:9"
    has_ratio: bool = True  # False: the frame follows the input image
    has_resolution: bool = True
    image_field: str | None = None  # required input image field (image-to-video)
    extras: tuple[str, ...] = field(default_factory=tuple)  # extra result keys ("seed", "actual_prompt")


_KLING_DURATIONS = {"5": 5.0, "10": 10.0}
_VEO_DURATIONS = {"4s": 4.0, "6s": 6.0, "8s": 8.0}
_VEO = FalVideoApp(VEO_FRAMES, "720p", _VEO_DURATIONS, "8s")
APPS: dict[str, FalVideoApp] = {
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": FalVideoApp({"1080p": KLING_1080P}, "1080p", _KLING_DURATIONS,
                                                                   "5", has_resolution=False),
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": FalVideoApp({"1080p": KLING_1080P}, "1080p",
                                                                    _KLING_DURATIONS, "5", has_ratio=False,
                                                                    has_resolution=False, image_field="image_url"),
    "fal-ai/veo3.1": _VEO,
    "fal-ai/veo3.1/fast": _VEO,
    "fal-ai/veo3.1/image-to-video": FalVideoApp(VEO_FRAMES, "720p", _VEO_DURATIONS, "8s", default_ratio="auto",
                                                image_field="image_url"),
    "fal-ai/wan-25-preview/text-to-video": FalVideoApp(WAN_FRAMES, "1080p", _KLING_DURATIONS, "5",
                                                       extras=("seed", "actual_prompt")),
}


@dataclass
class FalVideoPlan:
    """A validated video app input."""

    prompt: str
    width: int
    height: int
    seconds: float
    seed: int | None


def is_video_app(app_id: str) -> bool:
    return app_id in APPS


def image_dimensions(ref: Any, lookup: Any = None) -> Size | None:
    """The size of an input image given as a data URI, or as a URL this simulator serves
    (``lookup(name) -> bytes | None``); None when it cannot be known without fetching."""
    if not isinstance(ref, str):
        return None
    if ref.startswith("data:"):
        try:
            return render.image_size(base64.b64decode(ref.partition(",")[2], validate=True))
        except (binascii.Error, ValueError):
            return None
    match = re.search(r"/files/([^/?#]+)$", ref)
    data = lookup(match.group(1)) if match and lookup is not None else None
    try:
        return render.image_size(data) if data else None
    except ValueError:
        return None


def _closest(table: dict[str, Size], size: Size | None, default: str) -> str:
    if size is None:
        return default
    ratio = size[0] / size[1]
    return min(table, key=lambda r: abs(table[r][0] / table[r][1] - ratio))


def build_plan(app_id: str, body: Any, lookup: Any = None) -> FalVideoPlan:
    """Validate a video app body (raises FalValidationError)."""
    app = APPS[app_id]
    if not isinstance(body, dict):
        raise FalValidationError("__root__", "Input should be a valid dictionary", "dict_type")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise FalValidationError("prompt", "Field required", "missing")
    image_size: Size | None = None
    if app.image_field is not None:
        ref = body.get(app.image_field)
        if not isinstance(ref, str) or not ref:
            raise FalValidationError(app.image_field, "Field required", "missing")
        image_size = image_dimensions(ref, lookup)
    resolution = app.default_resolution
    if app.has_resolution:
        resolution = body.get("resolution") or app.default_resolution
        if not isinstance(resolution, str) or resolution not in app.frames:
            raise _enum_error("resolution", resolution, list(app.frames))
    table = app.frames[resolution]
    if app.has_ratio:
        ratio = body.get("aspect_ratio") or app.default_ratio
        allowed = (["auto"] if app.default_ratio == "auto" else []) + list(table)
        if not isinstance(ratio, str) or ratio not in allowed:
            raise _enum_error("aspect_ratio", ratio, allowed)
        if ratio == "auto":
            ratio = _closest(table, image_size, "16:9")
    else:
        ratio = _closest(table, image_size, "16:9")
    duration = body.get("duration", app.default_duration)
    if not isinstance(duration, str) or duration not in app.durations:
        raise _enum_error("duration", duration, list(app.durations))
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FalValidationError("seed", "Input should be a valid integer", "int_type", seed)
    width, height = table[ratio]
    return FalVideoPlan(prompt=prompt, width=width, height=height, seconds=app.durations[duration], seed=seed)
