"""Synthetic but real, playable MP4 clips for the video simulators.

Every clip has exactly the requested width, height and duration, shows the prompt (so a
human can tell which request produced it) and visibly moves: a bar sweeps across the
bottom and a frame counter ticks, so a frozen or black output is a bug, not a plausible
result. Encoding uses PyAV (``pip install av``), whose wheels bundle FFmpeg with libx264,
so it works offline; H.264 (yuv420p, the profile every browser plays) when the bundled
FFmpeg has an H.264 encoder, else MPEG-4 Part 2.

Speed matters more than beauty: clips run at ``FPS`` (8) frames per second, the caption
is drawn once per clip and each frame only adds the bar and counter, x264 runs with its
``ultrafast`` preset, and whole encoded clips (and thumbnails) are kept in an LRU keyed
by ``(width, height, seconds, prompt)``. A 4-8 s 1280x720 clip encodes in ~0.3 s.
PyAV is imported lazily: the gateway embeds this package without needing it until a
video is actually rendered.
"""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw

from . import render

FPS = 8
MAX_SECONDS = 60.0
MAX_PIXELS = 3840 * 2160  # 4K is the largest size any simulated video model returns
THUMBNAIL_MAX_SIDE = 512  # UNVERIFIED: the size of OpenAI's ``variant=thumbnail``
SPRITE_TILE_MAX_SIDE = 192  # UNVERIFIED: the layout of OpenAI's ``variant=spritesheet``
SPRITE_MAX_TILES = 12
MIME_MP4 = "video/mp4"

# Encoded clips are bigger than images; one entry may use at most max_bytes // 4.
CACHE = render.BytesLRU(max_entries=128, max_bytes=256 * 1024 * 1024)
_KEY_LOCKS: dict[tuple[object, ...], threading.Lock] = {}
_KEY_LOCKS_GUARD = threading.Lock()


class VideoUnavailable(RuntimeError):
    """Raised when no video encoder is installed (PyAV missing)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a decoder sees in an encoded clip (for tests and sanity checks)."""

    width: int
    height: int
    frames: int
    duration: float
    codec: str
    fps: float


@lru_cache(maxsize=1)
def encoder() -> str:
    """The codec used for new clips: ``libx264`` if the bundled FFmpeg has it, else ``mpeg4``."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise VideoUnavailable("video rendering needs PyAV: pip install av") from exc
    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several types for a missing encoder
            continue
        return name
    raise VideoUnavailable("the installed PyAV has neither an H.264 nor an MPEG-4 encoder")  # pragma: no cover


def frame_count(seconds: float) -> int:
    """Frames in a clip of ``seconds`` at ``FPS`` (at least one)."""
    return max(1, round(seconds * FPS))


def _check(width: int, height: int, seconds: float) -> None:
    if width < 16 or height < 16 or width * height > MAX_PIXELS:
        raise ValueError(f"unsupported video size {width}x{height}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"unsupported video duration {seconds}s")


@dataclass(frozen=True)
class _Layout:
    """Where the moving part sits: a dark strip along the bottom holding the counter and bar."""

    top: int  # even, so the strip starts on a 4:2:0 chroma row
    height: int  # even
    font_px: int
    bar_w: int
    bar_h: int


def _layout(width: int, height: int) -> _Layout:
    font_px = max(9, min(48, min(width, height) // 18))
    bar_h = max(4, height // 18)
    strip_h = min(height, font_px + bar_h + 12)
    strip_h += strip_h % 2
    top = max(0, height - strip_h - max(2, height // 40))
    top -= top % 2
    return _Layout(top, min(strip_h, height - top), font_px, max(8, width // 8), bar_h)


def _base_frame(width: int, height: int, seconds: float, prompt: str) -> Image.Image:
    """The still part of every frame: gradient, caption, size label and the empty strip."""
    cw, ch = render.canvas_size(width, height)
    canvas = render._background(cw, ch, render._palette_for(prompt)).copy()
    render._draw_caption(canvas, prompt, f"{width}x{height} {seconds:g}s video")
    if canvas.size != (width, height):
        canvas = canvas.resize((width, height), Image.Resampling.BILINEAR)
    lay = _layout(width, height)
    ImageDraw.Draw(canvas).rectangle((0, lay.top, width, lay.top + lay.height), fill=(12, 12, 18))
    return canvas


def _strip(base: Image.Image, index: int, total: int) -> Image.Image:
    """The strip of frame ``index``: a bar sweeping left to right and a frame counter."""
    width, height = base.size
    lay = _layout(width, height)
    strip = base.crop((0, lay.top, width, lay.top + lay.height))
    draw = ImageDraw.Draw(strip)
    x = round((width - lay.bar_w) * index / max(1, total - 1))
    y = lay.height - lay.bar_h - 2
    draw.rectangle((x, y, x + lay.bar_w, y + lay.bar_h), fill=(255, 214, 0))
    label = f"frame {index + 1}/{total}  t={index / FPS:.3f}s"
    draw.text((max(4, width // 40), 2), label, fill=(255, 255, 255), font=render._font(lay.font_px))
    return strip


def _frame(base: Image.Image, index: int, total: int) -> Image.Image:
    """One whole frame as an image (thumbnails, sprites and the slow encode path)."""
    frame = base.copy()
    frame.paste(_strip(base, index, total), (0, _layout(*base.size).top))
    return frame


class _FrameSource:
    """Frames for the encoder, ready as 4:2:0 planes.

    The base is converted to YUV once; each frame converts only its strip and splices those
    rows into a copy of the base planes, which is several times cheaper than converting
    whole frames (the RGB to YUV conversion dominated the encode time).
    """

    def __init__(self, av: Any, base: Image.Image, total: int, pix_fmt: str) -> None:
        self.av, self.base, self.total, self.pix_fmt = av, base, total, pix_fmt
        self.width, self.height = base.size
        self.lay = _layout(self.width, self.height)
        base_yuv = av.VideoFrame.from_image(base).reformat(format=pix_fmt)
        self.planes = [bytes(p) for p in base_yuv.planes]
        self.line_sizes = [p.line_size for p in base_yuv.planes]
        probe = av.VideoFrame(self.width, self.height, pix_fmt)
        self.fast = pix_fmt == "yuv420p" and [p.line_size for p in probe.planes] == self.line_sizes

    def frame(self, index: int) -> Any:
        av = self.av
        if not self.fast:
            return av.VideoFrame.from_image(_frame(self.base, index, self.total))
        strip = av.VideoFrame.from_image(_strip(self.base, index, self.total)).reformat(format="yuv420p")
        out = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane_no, (plane, data) in enumerate(zip(out.planes, self.planes)):
            sub = 1 if plane_no == 0 else 2
            line, first, rows = self.line_sizes[plane_no], self.lay.top // sub, self.lay.height // sub
            rows_data = bytes(strip.planes[plane_no])
            if strip.planes[plane_no].line_size != line:  # pragma: no cover - same width, same alignment
                return av.VideoFrame.from_image(_frame(self.base, index, self.total))
            plane.update(data[: first * line] + rows_data[: rows * line] + data[(first + rows) * line:])
        return out


def render_mp4_uncached(width: int, height: int, seconds: float, prompt: str) -> bytes:
    """Encode one clip; CPU-bound (~0.3 s for 8 s of 720p), so call it off the event loop."""
    import av

    _check(width, height, seconds)
    codec = encoder()
    total = frame_count(seconds)
    # yuv420p needs even sides; odd ones fall back to 4:4:4 (still decodable, rarely needed).
    even = width % 2 == 0 and height % 2 == 0
    pix_fmt = "yuv420p" if even or codec == "mpeg4" else "yuv444p"
    source = _FrameSource(av, _base_frame(width, height, seconds, prompt), total, pix_fmt)
    buf = io.BytesIO()
    # No +faststart: it rewrites the file in place, which an in-memory output cannot do; a
    # complete download plays either way.
    with av.open(buf, mode="w", format="mp4") as container:
        stream: Any = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "stillimage", "crf": "30"}
        else:
            stream.bit_rate = 2_000_000
        for index in range(total):
            for packet in stream.encode(source.frame(index)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def _key_lock(key: tuple[object, ...]) -> threading.Lock:
    with _KEY_LOCKS_GUARD:
        lock = _KEY_LOCKS.get(key)
        if lock is None:
            if len(_KEY_LOCKS) > 256:
                _KEY_LOCKS.clear()  # only de-duplicates concurrent renders; losing it is harmless
            lock = _KEY_LOCKS[key] = threading.Lock()
        return lock


def _cached(key: tuple[object, ...], make: Any) -> bytes:
    """Cache hit, or render once even when several threads ask for the same key at once."""
    hit = CACHE.get(key)
    if hit is not None:
        return hit
    with _key_lock(key):
        hit = CACHE.get(key)
        if hit is not None:
            return hit
        data: bytes = make()
        CACHE.put(key, data)
        return data


def render_mp4(width: int, height: int, seconds: float, prompt: str) -> bytes:
    """Cached synchronous clip render."""
    key = ("mp4", width, height, float(seconds), prompt)
    return _cached(key, lambda: render_mp4_uncached(width, height, seconds, prompt))


async def render_mp4_async(width: int, height: int, seconds: float, prompt: str) -> bytes:
    """Cached clip render for handlers: hits inline, misses in a worker thread."""
    hit = CACHE.get(("mp4", width, height, float(seconds), prompt))
    if hit is not None:
        return hit
    return await asyncio.to_thread(render_mp4, width, height, seconds, prompt)


def _thumbnail_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_thumbnail(width: int, height: int, seconds: float, prompt: str, fmt: str = "webp") -> bytes:
    """A small still of the clip's middle frame (OpenAI's ``variant=thumbnail`` is WebP)."""
    fmt = render.normalize_format(fmt)

    def make() -> bytes:
        _check(width, height, seconds)
        total = frame_count(seconds)
        still = _frame(_base_frame(width, height, seconds, prompt), total // 2, total)
        still = still.resize(_thumbnail_size(width, height, THUMBNAIL_MAX_SIDE), Image.Resampling.BILINEAR)
        return render._encode(still, fmt, None)

    return _cached(("thumb", width, height, float(seconds), prompt, fmt), make)


def render_spritesheet(width: int, height: int, seconds: float, prompt: str) -> bytes:
    """A JPEG grid of evenly spaced frames (OpenAI's ``variant=spritesheet``)."""

    def make() -> bytes:
        _check(width, height, seconds)
        total = frame_count(seconds)
        tiles = min(SPRITE_MAX_TILES, total)
        tile = _thumbnail_size(width, height, SPRITE_TILE_MAX_SIDE)
        cols = min(tiles, 4)
        rows = -(-tiles // cols)
        sheet = Image.new("RGB", (tile[0] * cols, tile[1] * rows), (0, 0, 0))
        base = _base_frame(width, height, seconds, prompt)
        for n in range(tiles):
            index = round(n * (total - 1) / max(1, tiles - 1))
            small = _frame(base, index, total).resize(tile, Image.Resampling.BILINEAR)
            sheet.paste(small, ((n % cols) * tile[0], (n // cols) * tile[1]))
        return render._encode(sheet, "jpeg", 80)

    return _cached(("sprite", width, height, float(seconds), prompt), make)


async def render_variant_async(variant: str, width: int, height: int, seconds: float, prompt: str) -> bytes:
    """``video`` | ``thumbnail`` | ``spritesheet`` off the event loop."""
    if variant == "video":
        return await render_mp4_async(width, height, seconds, prompt)
    if variant == "thumbnail":
        return await asyncio.to_thread(render_thumbnail, width, height, seconds, prompt)
    return await asyncio.to_thread(render_spritesheet, width, height, seconds, prompt)


def probe(data: bytes) -> VideoInfo:
    """Decode a clip fully and report what a player would see."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        ctx = stream.codec_context
        duration = float(container.duration / 1_000_000) if container.duration else 0.0
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        return VideoInfo(ctx.width, ctx.height, frames, duration, ctx.name, rate)
