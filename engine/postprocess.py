"""Post-process outputs: fetch provider URLs, convert or re-encode, measure, and deliver as asked.

Pixels are decoded only when a conversion is needed; otherwise only the header is read to measure.
Heavy work runs in worker threads so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from mediagate import errormap, fanout, history, imaging, jsonbody, media, metrics, upstream
from mediagate.canonical import Canonical, adjustment
from mediagate.extract import RawOutput
from mediagate.imaging import ImageError, Info
from mediagate.provider import Provider
from mediagate.runtime import Runtime
from mediagate.upstream import Target


INLINE_B64_CHARS = 256 * 1024     # below this, reading an image header costs less than a hop to a worker thread
# conversions run at once, gateway-wide: one per CPU this process may use. An encode is CPU-bound and releases
# the GIL, so more at once gain no speed but each holds its decoded pixels and the encoder's buffers (~15 MB
# at 1024x1024): six at once on one CPU were ~100 MB more at the peak of 200 concurrent WebP requests.
CONVERSION_SLOTS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
_conversion_slots = upstream.LoopSlots(CONVERSION_SLOTS)


@dataclass
class Delivered:
    item: dict[str, Any]
    info: Info


async def _bytes_of(rt: Runtime, provider: Provider, target: Target, out: RawOutput) -> tuple[bytes | None, str | None]:
    """(raw bytes, b64 text) — one of them set; a URL is downloaded."""
    if out.data is not None:
        return out.data, None
    if out.b64 is not None:
        return None, out.b64
    assert out.url is not None
    return await rt.transport.fetch(provider, target, out.url), None


async def deliver_one(rt: Runtime, req: Canonical, provider: Provider, target: Target, out: RawOutput,
                      base_url: str) -> tuple[Delivered, list[dict[str, Any]]]:
    notes: list[dict[str, Any]] = []
    data, b64 = await _bytes_of(rt, provider, target, out)
    try:
        if b64 is not None:
            info = (imaging.identify_b64_quick(b64, True) or
                    (imaging.identify_b64(b64, True) if len(b64) <= INLINE_B64_CHARS
                     else await asyncio.to_thread(imaging.identify_b64, b64, True)))
        else:
            info = imaging.identify(data or b"", vector=True)
    except ImageError:
        raise errormap.make("upstream_malformed", f"{provider.name} returned data that is not an image.") from None
    want = req.output_format
    if want is not None and (info.format != want or req.reencode):
        target = want
        if want == "avif" and max(info.width, info.height) > rt.settings.avif_max_side_px:
            target = info.format if info.format in imaging.MIME else "png"
            notes.append(adjustment("output_format", want, target,
                                    f"AVIF is limited to {rt.settings.avif_max_side_px} pixels on the longest side "
                                    "(MEDIAGATE_AVIF_MAX_SIDE_PX)"))
        if target != info.format or req.reencode:
            source = data if data is not None else b64 or ""
            want_b64 = req.response_format == "b64_json"
            source_format = info.format
            try:  # convert and encode in one trip to the worker pool: a second hop would queue behind other conversions
                async with _conversion_slots():
                    data, info, b64 = await asyncio.to_thread(_convert, source, target, req.output_compression, want_b64)
                metrics.CONVERSIONS.labels(source_format, info.format).inc()
            except ImageError:
                raise errormap.make("upstream_malformed", f"{provider.name} returned an image that cannot be decoded.") from None
    item: dict[str, Any] = {}
    if req.response_format == "b64_json":
        item["b64_json"] = b64 if b64 is not None else await jsonbody.off_loop(_b64, data or b"")
    else:
        raw = data if data is not None else await jsonbody.off_loop(imaging.decode_b64, b64 or "")
        stored = await rt.media.put(raw, imaging.EXT.get(info.format, "bin"))
        if rt.settings.media_access == "team":   # only a key of this team opens it (docs/TENANCY.md)
            stored = media.for_team(stored, rt.media, history.current_team())
        item["url"] = stored.url(base_url)
    metrics.DELIVERIES.labels("url" if out.url is not None else "b64" if out.b64 is not None else "bytes",
                              "b64_json" if "b64_json" in item else "url").inc()
    if out.revised_prompt:
        item["revised_prompt"] = out.revised_prompt
    return Delivered(item, info), notes


def _convert(source: bytes | str, fmt: str, quality: int | None, want_b64: bool) -> tuple[bytes, Info, str | None]:
    data, info = imaging.convert(source, fmt, quality)
    return data, info, (_b64(data) if want_b64 else None)


def _b64(data: bytes) -> str:
    return imaging.b64encode(data)


async def deliver(rt: Runtime, req: Canonical, provider: Provider, target: Target, outputs: list[RawOutput],
                  base_url: str) -> tuple[list[Delivered], list[dict[str, Any]]]:
    """All outputs, or the first failure with every sibling cancelled (no orphan conversions or files)."""
    results = await fanout.all_or_nothing([deliver_one(rt, req, provider, target, o, base_url) for o in outputs])
    notes: list[dict[str, Any]] = []
    for _, n in results:
        for note in n:
            if note not in notes:
                notes.append(note)
    return [d for d, _ in results], notes
