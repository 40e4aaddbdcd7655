"""Image bytes: identify, measure and convert, always off the event loop for anything heavy.

Identification reads only the header (Pillow opens lazily), so a passthrough never decodes pixels.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import io
import re
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from mediagate import asciistr

AVIF_MAX_SIDE_PX = 1600            # default of MEDIAGATE_AVIF_MAX_SIDE_PX: AVIF encodes beyond it take seconds of a
                                   # worker thread (4096² of detail: 2-6 s against 0.6 s at 1024²); such images keep
                                   # their format, listed in metadata.adjustments
AVIF_MAX_SIDE_LIMIT_PX = 16384     # the most the setting may say (AVIF's own limit is larger; this is the decode cap)
MAX_DECODE_PIXELS = 16384 * 16384  # refuse decompression bombs beyond the largest real model output (12288x1536 ...)
B64_HEADER_CHARS = 64 * 1024       # base64 characters decoded to read an image header without decoding it all
B64_QUICK_HEADER_CHARS = 4 * 1024  # a first, cheaper try: a PNG's or WebP's header is in its first 50 bytes
B64_SLICE_BYTES = 144 * 1024       # base64 is made / undone this many bytes at a time (a multiple of 3): binascii
                                   # keeps the GIL for a whole call, so slices are what let the event loop run;
                                   # and each slice's base64 (192 KiB) stays below allocator.MMAP_THRESHOLD_BYTES,
                                   # so it comes from the heap, not a fresh mapping faulted in page by page

Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS

PIL_NAMES = {"PNG": "png", "JPEG": "jpeg", "GIF": "gif", "WEBP": "webp", "AVIF": "avif"}
MIME = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp", "avif": "image/avif",
        "svg": "image/svg+xml"}
EXT = {"png": "png", "jpeg": "jpg", "gif": "gif", "webp": "webp", "avif": "avif", "svg": "svg"}
VECTOR_FORMATS = frozenset({"svg"})   # passed through as the provider made them: never rasterized nor vectorized here
SVG_HEAD_BYTES = 16 * 1024            # the root <svg> element must start within this many bytes of the document
MIME_BY_EXT = {EXT[f]: MIME[f] for f in MIME}
_SAVE_AS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP", "avif": "AVIF"}
WEBP_METHOD = 0                    # libwebp effort: 0 encodes a 1024x1024 image in about a third of method 4's time
                                   # for files about 10% larger (bench/RESULTS.md, webp_1024)
AVIF_SPEED = 8                     # libavif speed (0 slowest-best .. 10): 1024² in about 0.6 s
WEBP_FALLBACK_METHOD = 4           # used when the fast method fails with a partition overflow (libwebp error 6)
DEFAULT_QUALITY = {"jpeg": 90, "webp": 90, "avif": 75}


class ImageError(ValueError):
    """Bytes that are not an image we can read."""


@dataclass(frozen=True)
class Info:
    format: str      # png, jpeg, gif, webp, avif, or the lower-cased Pillow name of anything else
    width: int
    height: int


_SVG_ROOT = re.compile(rb"^(?:\s|<\?xml[^>]*\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<svg\b([^>]*)>", re.S | re.I)
_SVG_LENGTH = re.compile(rb"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:px)?\s*$")


def _svg_attr(attrs: bytes, name: bytes) -> bytes | None:
    m = re.search(rb"\b" + name + rb"\s*=\s*([\"'])(.*?)\1", attrs, re.S)
    return m.group(2) if m else None


def identify_vector(data: bytes) -> Info | None:
    """An SVG document's size from its root element (width / height in px, else the viewBox); None when the
    bytes are not an SVG document. Only the head is read; nothing is rendered."""
    m = _SVG_ROOT.match(data[:SVG_HEAD_BYTES].lstrip(b"\xef\xbb\xbf"))
    if m is None:
        return None
    attrs = m.group(1)
    w, h = (_SVG_LENGTH.match(_svg_attr(attrs, n) or b"") for n in (b"width", b"height"))
    if w and h:
        return Info("svg", round(float(w.group(1))), round(float(h.group(1))))
    box = (_svg_attr(attrs, b"viewBox") or b"").replace(b",", b" ").split()
    try:
        return Info("svg", round(float(box[2])), round(float(box[3])))
    except (IndexError, ValueError):
        raise ImageError("an SVG document without a width, height or viewBox") from None


def identify(data: bytes, vector: bool = False) -> Info:
    """The format and size of image bytes; `vector`: an SVG document is accepted too (provider outputs, never
    caller inputs)."""
    if vector:
        found = identify_vector(data)
        if found is not None:
            return found
    try:
        with Image.open(io.BytesIO(data)) as im:
            return Info(PIL_NAMES.get(im.format or "", (im.format or "unknown").lower()), im.width, im.height)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageError(f"not a readable image: {exc}") from None


def identify_b64_quick(b64: str, vector: bool = False) -> Info | None:
    """The header from the first B64_QUICK_HEADER_CHARS alone (~20 us, fine on the loop); None when it lies
    further in (a JPEG behind a big EXIF block, an SVG's size attributes) or the prefix is not base64."""
    try:
        return identify(base64.b64decode(b64[:B64_QUICK_HEADER_CHARS], validate=False), vector)
    except Exception:   # noqa: BLE001 - a cut header may fail any way inside a decoder: the full read decides
        return None


def identify_b64(b64: str, vector: bool = False) -> Info:
    """Identify from a base64 prefix; falls back to the whole payload when the header lies further in."""
    head = b64[: B64_HEADER_CHARS - B64_HEADER_CHARS % 4]
    try:
        return identify(base64.b64decode(head, validate=False), vector)
    except ImageError:
        return identify(decode_b64(b64), vector)


def decode_b64(b64: str) -> bytes:
    try:
        return b64decode(b64)
    except (binascii.Error, ValueError):
        try:
            # rare (URL-safe alphabet, line breaks): whole, as non-validating decoding cannot be sliced
            return base64.b64decode(b64 + "=" * (-len(b64) % 4), altchars=b"-_")
        except (binascii.Error, ValueError):
            raise ImageError("invalid base64 image data") from None


def b64encode(data: bytes, prefix: str = "") -> str:
    """`prefix` + base64 of `data`, a slice at a time straight into the string (engine/asciistr.py): the GIL
    is free between slices and while each is copied, and the string is the only whole copy."""
    view = memoryview(data)
    pieces = (binascii.b2a_base64(view[i:i + B64_SLICE_BYTES], newline=False) for i in range(0, len(data), B64_SLICE_BYTES))
    size = 4 * ((len(data) + 2) // 3)
    if not prefix.isascii():   # never in practice (a data: URL's media type); kept correct all the same
        return prefix + asciistr.join(pieces, size)
    head = prefix.encode("ascii")
    return asciistr.join(itertools.chain((head,), pieces), len(head) + size)


def b64decode(text: str) -> bytes:
    """Strict base64 decode, a slice at a time (slices of a multiple of 4 characters decode independently)."""
    if len(text) % 4:
        raise binascii.Error("incorrect padding")
    step = 4 * (B64_SLICE_BYTES // 3)
    return b"".join(base64.b64decode(text[i:i + step], validate=True) for i in range(0, len(text), step))


def convert(data: bytes | str, fmt: str, quality: int | None) -> tuple[bytes, Info]:
    """Re-encode to `fmt` (blocking: call from a worker thread); `data` may still be base64 text."""
    if fmt in VECTOR_FORMATS:
        raise ImageError(f"the gateway does not make {fmt} from a raster image")
    if isinstance(data, str):
        data = decode_b64(data)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            out = _prepare(im, fmt)
            buf = io.BytesIO()
            kwargs: dict[str, object] = {}
            if fmt in DEFAULT_QUALITY:
                kwargs["quality"] = quality if quality is not None else DEFAULT_QUALITY[fmt]
            if fmt == "png":
                kwargs["compress_level"] = 6
            if fmt == "webp":
                kwargs["method"] = WEBP_METHOD
            if fmt == "avif":
                kwargs["speed"] = AVIF_SPEED
            try:
                out.save(buf, _SAVE_AS[fmt], **kwargs)
            except ValueError:
                if fmt != "webp" or kwargs["method"] == WEBP_FALLBACK_METHOD:
                    raise
                # libwebp's fast methods can overflow their first partition (encoding error 6) on big, very
                # detailed images; its slower analysis splits it and succeeds (4096² of noise: 4 s instead of 1.7)
                buf = io.BytesIO()
                out.save(buf, "WEBP", **{**kwargs, "method": WEBP_FALLBACK_METHOD})
            return buf.getvalue(), Info(fmt, out.width, out.height)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot convert image: {exc}") from None


def edit_area_png(data: bytes) -> bytes:
    """An edit mask as a black-and-white PNG, black where the area is to be edited (the convention a spec
    asks for with `mask.edit_area_b64`) from the OpenAI API's, transparent where to edit. A mask without an
    alpha channel is read as grey levels, dark meaning edit. Blocking: templates read it while rendering off
    the event loop."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            has_alpha = im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info)
            level = im.convert("RGBA").getchannel("A") if has_alpha else im.convert("L")
            out = level.point(lambda v: 255 if v >= 128 else 0)
            buf = io.BytesIO()
            out.save(buf, "PNG", compress_level=6)
            return buf.getvalue()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot read the mask: {exc}") from None


def _prepare(im: Image.Image, fmt: str) -> Image.Image:
    has_alpha = im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info)
    if fmt == "jpeg":
        if has_alpha:
            rgba = im.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return im.convert("RGB") if im.mode != "RGB" else im
    if fmt == "gif":
        return im.convert("RGBA" if has_alpha else "RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    if im.mode not in ("RGB", "RGBA", "L", "LA") or (fmt == "avif" and im.mode in ("L", "LA")):
        return im.convert("RGBA" if has_alpha else "RGB")
    return im
