"""Synthetic but real images for the simulators.

Every image is exactly the requested size, has a visible gradient (so a blank or
black output is a bug, not a plausible result) and carries the prompt text, so a
human looking at a gateway response can tell which request produced it.

Speed matters more than beauty: benchmarks hammer the simulator, so drawing is
capped at ~1 MP (big outputs are drawn small and upscaled), backgrounds are
cached per canvas, PNG uses ``compress_level=1`` and whole encoded results are
kept in a small LRU keyed by everything that affects the bytes.

``[sim:noise]`` in a prompt makes the image random pixels instead (same size and format), which no
codec can shrink: what a benchmark needs to see realistic multi-megabyte outputs (1024x1024 PNG ~3 MB).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import os
import textwrap
import threading
from collections import OrderedDict
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

# Output format name (as the protocols spell it) -> Pillow encoder name.
PIL_FORMATS: dict[str, str] = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
MIME_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
FORMAT_BY_MIME: dict[str, str] = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}

MAX_DRAW_PIXELS = 1_048_576  # the drawing budget; larger outputs are upscaled
NOISE_DIRECTIVE = "[sim:noise]"
_PALETTES: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((32, 64, 160), (230, 120, 60)),
    ((20, 120, 90), (240, 220, 90)),
    ((120, 30, 120), (60, 200, 230)),
    ((160, 40, 50), (250, 200, 150)),
    ((40, 40, 40), (120, 200, 120)),
    ((10, 90, 160), (250, 120, 170)),
    ((90, 60, 20), (150, 220, 250)),
    ((60, 20, 90), (255, 170, 60)),
)


def normalize_format(fmt: str | None) -> str:
    """Map a protocol's format name to ``png``/``jpeg``/``webp``; ValueError otherwise."""
    name = (fmt or "png").lower()
    if name == "jpg":
        name = "jpeg"
    if name not in PIL_FORMATS:
        raise ValueError(f"unsupported image format: {fmt!r}")
    return name


def canvas_size(width: int, height: int) -> tuple[int, int]:
    """The size actually drawn on: the output itself, or a ~1 MP copy of its shape."""
    if width * height <= MAX_DRAW_PIXELS:
        return width, height
    scale = math.sqrt(MAX_DRAW_PIXELS / (width * height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font; cached because loading costs more than drawing."""
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=64)
def _background(width: int, height: int, palette: int) -> Image.Image:
    """A diagonal two-colour gradient; cached per canvas so a hit costs one copy."""
    ramp = Image.linear_gradient("L")
    vertical = ramp.resize((width, height), Image.Resampling.BILINEAR)
    horizontal = ramp.transpose(Image.Transpose.ROTATE_90).resize((width, height), Image.Resampling.BILINEAR)
    mask = Image.blend(vertical, horizontal, 0.5)
    start, end = _PALETTES[palette % len(_PALETTES)]
    return Image.composite(Image.new("RGB", (width, height), end), Image.new("RGB", (width, height), start), mask)


def _palette_for(prompt: str) -> int:
    """Stable colour choice per prompt, so different prompts look different."""
    return hashlib.blake2b(prompt.encode("utf-8", "replace"), digest_size=2).digest()[0] % len(_PALETTES)


def _draw_caption(image: Image.Image, prompt: str, label: str) -> None:
    """Draw the wrapped prompt on a dark band, plus a size label, in place."""
    width, height = image.size
    draw = ImageDraw.Draw(image)
    font_px = max(9, min(56, min(width, height) // 14))
    font = _font(font_px)
    line_h = int(font_px * 1.25)
    margin = max(4, min(width, height) // 24)
    chars = max(4, int((width - 2 * margin) / (font_px * 0.56)))
    max_lines = max(1, int((height * 0.7 - 2 * margin) / line_h))
    text = " ".join(prompt.split()) or "(empty prompt)"
    lines = textwrap.wrap(text, width=chars, max_lines=max_lines, placeholder=" …") or [text[:chars]]
    box_h = line_h * len(lines) + margin
    top = max(0, (height - box_h) // 2)
    draw.rectangle((0, top, width, top + box_h), fill=(16, 16, 24))
    y = top + margin // 2
    for line in lines:
        draw.text((margin, y), line, fill=(255, 255, 255), font=font)
        y += line_h
    small = _font(max(8, font_px * 2 // 3))
    draw.text((margin, margin // 2), label, fill=(255, 255, 255), font=small)


def _encode(image: Image.Image, fmt: str, quality: int | None) -> bytes:
    """Encode with the fastest settings that still produce standard files."""
    buf = io.BytesIO()
    name = PIL_FORMATS[fmt]
    if name == "PNG":
        image.save(buf, "PNG", compress_level=1)
    elif name == "JPEG":
        image.convert("RGB").save(buf, "JPEG", quality=quality if quality is not None else 90)
    else:
        image.save(buf, "WEBP", quality=quality if quality is not None else 80, method=0)
    return buf.getvalue()


def _finish(canvas: Image.Image, width: int, height: int, fmt: str, quality: int | None) -> bytes:
    """Upscale the canvas to the exact output size if needed, then encode."""
    if canvas.size != (width, height):
        # Nearest is 4x cheaper than bilinear; past 2x upscale it is also good enough.
        big = width * height > 4 * canvas.width * canvas.height
        canvas = canvas.resize((width, height), Image.Resampling.NEAREST if big else Image.Resampling.BILINEAR)
    return _encode(canvas, fmt, quality)


def render_uncached(
    width: int, height: int, prompt: str, fmt: str = "png", quality: int | None = None, transparent: bool = False
) -> bytes:
    """Render and encode one image; CPU-bound, so call it off the event loop."""
    fmt = normalize_format(fmt)
    if NOISE_DIRECTIVE in prompt:
        noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
        if transparent and fmt != "jpeg":
            noise.putalpha(160)
        return _encode(noise, fmt, quality)
    cw, ch = canvas_size(width, height)
    canvas = _background(cw, ch, _palette_for(prompt)).copy()
    _draw_caption(canvas, prompt, f"{width}x{height}")
    if transparent and fmt != "jpeg":
        canvas.putalpha(160)
    return _finish(canvas, width, height, fmt, quality)


def _fit(data: bytes, size: tuple[int, int]) -> Image.Image:
    """Decode an input image and cover-crop it to ``size`` (raises ValueError if not an image)."""
    try:
        with Image.open(io.BytesIO(data)) as src:
            src.draft("RGB", size)  # JPEG fast path: decode at reduced scale
            return ImageOps.fit(src.convert("RGBA"), size, Image.Resampling.BILINEAR)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a decodable image: {exc}") from exc


def render_edit(
    source: bytes,
    width: int,
    height: int,
    prompt: str,
    fmt: str = "png",
    quality: int | None = None,
    mask: bytes | None = None,
) -> bytes:
    """The source image, reframed to the output size, masked area tinted, prompt drawn over it."""
    fmt = normalize_format(fmt)
    size = canvas_size(width, height)
    base = _fit(source, size)
    if mask is not None:
        edit_area = ImageOps.invert(_fit(mask, size).getchannel("A"))  # transparent = area to edit
        tint = Image.new("RGBA", size, (255, 0, 200, 255))
        base = Image.composite(Image.blend(base, tint, 0.45), base, edit_area)
    canvas = base.convert("RGB")
    _draw_caption(canvas, f"EDIT: {prompt}", f"edit {width}x{height}")
    return _finish(canvas, width, height, fmt, quality)


def image_size(data: bytes) -> tuple[int, int]:
    """Pixel size of an encoded image from its header only (ValueError if unreadable)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"not a decodable image: {exc}") from exc


CACHE_MAX_BYTES = 256 * 1024 * 1024   # rendered images kept; one entry may take a quarter (a 4096² noise PNG is
                                      # 50 MB: re-rendering it costs ~2.7 s of CPU per request, which made the
                                      # size benchmark measure the simulator)


class BytesLRU:
    """A thread-safe LRU of encoded images bounded by entry count and total bytes."""

    def __init__(self, max_entries: int = 256, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[object, ...], value: bytes) -> None:
        if len(value) > self.max_bytes // 4:
            return  # one giant image must not evict everything else
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._data[key] = value
            self._bytes += len(value)
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._bytes -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)


CACHE = BytesLRU()


def _key(width: int, height: int, prompt: str, fmt: str, quality: int | None, transparent: bool) -> tuple[object, ...]:
    """Everything that changes the encoded bytes, and nothing else."""
    return (width, height, normalize_format(fmt), quality, transparent, prompt)


def render_image(
    width: int, height: int, prompt: str, fmt: str = "png", quality: int | None = None, transparent: bool = False
) -> bytes:
    """Cached synchronous render (the "zero-cost" path for repeated identical requests)."""
    key = _key(width, height, prompt, fmt, quality, transparent)
    hit = CACHE.get(key)
    if hit is not None:
        return hit
    data = render_uncached(width, height, prompt, fmt, quality, transparent)
    CACHE.put(key, data)
    return data


async def render_async(
    width: int, height: int, prompt: str, fmt: str = "png", quality: int | None = None, transparent: bool = False
) -> bytes:
    """Cached render for handlers: hits are answered inline, misses run in a worker thread."""
    key = _key(width, height, prompt, fmt, quality, transparent)
    hit = CACHE.get(key)
    if hit is not None:
        return hit
    data = await asyncio.to_thread(render_uncached, width, height, prompt, fmt, quality, transparent)
    CACHE.put(key, data)
    return data


async def render_edit_async(
    source: bytes,
    width: int,
    height: int,
    prompt: str,
    fmt: str = "png",
    quality: int | None = None,
    mask: bytes | None = None,
) -> bytes:
    """``render_edit`` in a worker thread (edits depend on their input, so they are not cached)."""
    return await asyncio.to_thread(render_edit, source, width, height, prompt, fmt, quality, mask)


def render_black(width: int, height: int, fmt: str = "png") -> bytes:
    """An all-black image, which is what safety checkers (fal's) put in place of a flagged one."""
    fmt = normalize_format(fmt)
    key = (width, height, fmt, None, False, "\x00black")
    hit = CACHE.get(key)
    if hit is not None:
        return hit
    data = _encode(Image.new("RGB", (width, height), (0, 0, 0)), fmt, None)
    CACHE.put(key, data)
    return data


async def render_black_async(width: int, height: int, fmt: str = "png") -> bytes:
    """``render_black`` in a worker thread (big canvases take a while to encode)."""
    return await asyncio.to_thread(render_black, width, height, fmt)
