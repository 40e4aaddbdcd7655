"""Shape matching: `size` / `aspect_ratio` / `resolution` onto what a model really supports.

Precedence (seed 001): `size` decides shape and scale and makes the other two ignored; otherwise
`aspect_ratio` decides shape and `resolution` scale, each on its own; missing parts come from the model's
default. Ratios are compared by numeric value on a log scale (so 1:4 and 4:1 are equally far from 1:1),
tiers by pixel count, K tiers (0.5K, 1K, 2K, 4K) and megapixel tiers (0.25, 1) on one scale. Free sizes
are clamped into the model's pixel bounds keeping the ratio, then rounded to the model's multiple.
Every value that differs from what the caller sent is returned as an adjustment.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from mediagate.errors import invalid_request

K_TIER_SIDE_PX = 1024                  # "1K" is a 1024-pixel side; "1" megapixel tier is the same area
MAX_SIDE_PX = 65536                    # any requested side above this is nonsense, not a shape
MIN_SIDE_TIER_PX = 64                  # a bare tier number this large is a side in pixels, smaller ones megapixels
RATIO_TABLE_TOLERANCE = 0.08           # log distance a dimensions-table entry may have from its ratio label (some models' 4:3 is 1280x896)
_SIZE_RE = re.compile(r"^\s*([1-9][0-9]{0,5})\s*[xX]\s*([1-9][0-9]{0,5})\s*$")
_RATIO_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*$")
_TIER_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kK]|[pP])?\s*$")


@dataclass(frozen=True)
class Shape:
    """The resolved shape handed to templates; `size` is `WxH` when pixels are known."""

    width: int | None
    height: int | None
    aspect_ratio: str | None
    resolution: str | None
    custom: bool = False    # a free WxH within the model's bounds, not one of its listed ratios or sizes

    @property
    def size(self) -> str | None:
        return f"{self.width}x{self.height}" if self.width and self.height else None

    def as_context(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "aspect_ratio": self.aspect_ratio,
                "resolution": self.resolution, "size": self.size, "custom": self.custom}


@dataclass(frozen=True)
class Bounds:
    min_width: int = 1
    max_width: int = MAX_SIDE_PX
    min_height: int = 1
    max_height: int = MAX_SIDE_PX
    min_pixels: int = 1
    max_pixels: int = MAX_SIDE_PX * MAX_SIDE_PX
    multiple_of: int = 1
    min_ratio: float = 0.0
    max_ratio: float = math.inf

    def contains(self, w: int, h: int) -> bool:
        r = w / h
        return (self.min_width <= w <= self.max_width and self.min_height <= h <= self.max_height
                and self.min_pixels <= w * h <= self.max_pixels and w % self.multiple_of == 0
                and h % self.multiple_of == 0 and self.min_ratio - 1e-9 <= r <= self.max_ratio + 1e-9)

    def describe(self) -> str:
        parts = [f"width {self.min_width}-{self.max_width}", f"height {self.min_height}-{self.max_height}"]
        if self.max_pixels < MAX_SIDE_PX * MAX_SIDE_PX:
            parts.append(f"at most {self.max_pixels} pixels")
        if self.multiple_of > 1:
            parts.append(f"multiples of {self.multiple_of}")
        return ", ".join(parts)


@dataclass
class ShapeSpec:
    """A model's compiled shape vocabulary."""

    sizes: list[tuple[int, int]] = field(default_factory=list)
    ratios: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    dimensions: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    bounds: Bounds | None = None
    default_size: tuple[int, int] | None = None
    default_ratio: str | None = None
    default_tier: str | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "ShapeSpec":
        b = spec.get("bounds")
        d = spec.get("default", {})
        return cls(
            sizes=[parse_size(s) for s in spec.get("sizes", [])],
            ratios=list(spec.get("aspect_ratios", [])),
            tiers=list(spec.get("resolutions", [])),
            dimensions={r: {t: parse_size(s) for t, s in row.items()} for r, row in spec.get("dimensions", {}).items()},
            bounds=Bounds(**b) if b is not None else None,
            default_size=parse_size(d["size"]) if "size" in d else None,
            default_ratio=d.get("aspect_ratio"),
            default_tier=d.get("resolution"),
        )

    def problems(self) -> list[tuple[str, str]]:
        """Contradictions in the table, as (json path suffix, message); empty when consistent."""
        out: list[tuple[str, str]] = []
        if not (self.sizes or self.ratios or self.bounds):
            out.append(("", "a shape needs sizes, aspect_ratios or bounds"))
        for label in self.ratios:
            if ratio_value(label) <= 0:
                out.append((".aspect_ratios", f"ratio {label!r} is not positive"))
        if self.default_ratio and self.ratios and self.default_ratio not in self.ratios:
            out.append((".default.aspect_ratio", f"{self.default_ratio!r} is not one of aspect_ratios {self.ratios}"))
        if self.default_tier and self.tiers and self.default_tier not in self.tiers:
            out.append((".default.resolution", f"{self.default_tier!r} is not one of resolutions {self.tiers}"))
        if self.default_tier and not self.tiers:
            out.append((".default.resolution", "a default resolution needs a resolutions list"))
        if self.default_size and self.sizes and self.default_size not in self.sizes:
            out.append((".default.size", f"{fmt_size(self.default_size)!r} is not one of sizes"))
        if self.sizes and self.ratios:
            out.append(("", "sizes and aspect_ratios are two vocabularies: declare one (bounds may join aspect_ratios)"))
        if self.sizes and not self.default_size:
            out.append((".default", "a model with sizes needs default.size"))
        if self.ratios and not self.default_ratio:
            out.append((".default", "a model with aspect_ratios needs default.aspect_ratio"))
        if self.tiers and not self.default_tier and not self.default_size:
            out.append((".default", "a model with resolutions needs default.resolution"))
        if self.bounds and not (self.sizes or self.ratios) and not (self.default_size or self.default_ratio):
            out.append((".default", "a model with bounds needs default.size or default.aspect_ratio"))
        for ratio, row in self.dimensions.items():
            if ratio not in self.ratios:
                out.append((f".dimensions.{ratio}", f"{ratio!r} is not one of aspect_ratios"))
                continue
            for tier, (w, h) in row.items():
                if self.tiers and tier not in self.tiers:
                    out.append((f".dimensions.{ratio}.{tier}", f"{tier!r} is not one of resolutions"))
                if abs(math.log((w / h) / ratio_value(ratio))) > RATIO_TABLE_TOLERANCE:
                    out.append((f".dimensions.{ratio}.{tier}", f"{w}x{h} does not have ratio {ratio}"))
        if self.dimensions:
            for ratio in self.ratios:
                missing = [t for t in (self.tiers or [None]) if t is not None and t not in self.dimensions.get(ratio, {})]
                if ratio not in self.dimensions or missing:
                    out.append((".dimensions", f"no dimensions for {ratio} {missing or ''}".strip()))
        b = self.bounds
        if b:
            if b.min_width > b.max_width or b.min_height > b.max_height or b.min_pixels > b.max_pixels:
                out.append((".bounds", "a minimum is larger than its maximum"))
            if b.min_ratio > b.max_ratio:
                out.append((".bounds", "min_ratio is larger than max_ratio"))
            if b.min_width * b.min_height > b.max_pixels:
                out.append((".bounds", "min_width x min_height exceeds max_pixels"))
            if not feasible(b):
                out.append((".bounds", "no size on the multiple_of grid satisfies every bound at once"))
            for s in self.sizes:
                if not b.contains(*s):
                    out.append((".sizes", f"{fmt_size(s)} is outside the bounds"))
            if self.default_size and not b.contains(*self.default_size):
                out.append((".default.size", f"{fmt_size(self.default_size)} is outside the bounds"))
        return out

    # -- vocabulary for the compiled request schema --
    def supported(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sizes:
            out["sizes"] = [fmt_size(s) for s in self.sizes]
        if self.ratios:
            out["aspect_ratios"] = list(self.ratios)
        if self.tiers:
            out["resolutions"] = list(self.tiers)
        if self.bounds:
            out["bounds"] = self.bounds.describe()
        return out


# ---------------------------------------------------------------- parsing

def parse_size(text: str) -> tuple[int, int]:
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT")
    return int(m.group(1)), int(m.group(2))


def fmt_size(wh: tuple[int, int]) -> str:
    return f"{wh[0]}x{wh[1]}"


def ratio_value(label: str) -> float:
    m = _RATIO_RE.match(label)
    if not m or float(m.group(2)) == 0:
        return 0.0
    return float(m.group(1)) / float(m.group(2))


def tier_pixels(label: str) -> float:
    """Pixel area of a tier: "2K" is a 2048-pixel square, megapixel "0.25" a 512-pixel one."""
    m = _TIER_RE.match(label)
    if not m:
        return 0.0
    v = float(m.group(1))
    if m.group(2) in ("p", "P"):  # a video height tier: 720p is 1280x720's area
        return v * v * 16 / 9
    if m.group(2):
        return (v * K_TIER_SIDE_PX) ** 2
    if v >= MIN_SIDE_TIER_PX:  # "512" names a side in pixels (a 0.5K tier on some wires), not 512 megapixels
        return v * v
    return v * K_TIER_SIDE_PX * K_TIER_SIDE_PX


def reduced_ratio(w: int, h: int) -> str:
    g = math.gcd(w, h)
    return f"{w // g}:{h // g}"


def _parse_request_size(value: str) -> tuple[int, int] | None:
    if value.strip().lower() == "auto":
        return None
    try:
        w, h = parse_size(value)
    except ValueError:
        raise invalid_request(f"Invalid size {value!r}: expected WIDTHxHEIGHT such as 1024x1024, or auto.", "size") from None
    if w > MAX_SIDE_PX or h > MAX_SIDE_PX:
        raise invalid_request(f"Invalid size {value!r}: a side may be at most {MAX_SIDE_PX} pixels.", "size")
    return w, h


def _parse_request_ratio(value: str) -> float:
    r = ratio_value(value)
    if r <= 0 or r > 1000 or r < 1 / 1000:
        raise invalid_request(f"Invalid aspect_ratio {value!r}: expected W:H such as 16:9.", "aspect_ratio")
    return r


def _parse_request_tier(value: str) -> float:
    px = tier_pixels(value)
    if px <= 0 or px > MAX_SIDE_PX * MAX_SIDE_PX:
        raise invalid_request(f"Invalid resolution {value!r}: expected a tier such as 1K, 2K, 4K or megapixels such as 1.",
                              "resolution")
    return px


# ---------------------------------------------------------------- matching

def _log_dist(a: float, b: float) -> float:
    return abs(math.log(a / b))


def nearest_ratio(target: float, labels: list[str]) -> str:
    return min(labels, key=lambda lb: _log_dist(target, ratio_value(lb)))


def _dims_from(ratio: float, pixels: float) -> tuple[int, int]:
    w = math.sqrt(pixels * ratio)
    return max(1, round(w)), max(1, round(w / ratio))


def adjustment(param: str, requested: Any, applied: Any, reason: str) -> dict[str, Any]:
    return {"param": param, "requested": requested, "applied": applied, "reason": reason}


def resolve(spec: ShapeSpec, size: str | None, aspect_ratio: str | None,
            resolution: str | None) -> tuple[Shape, list[dict[str, Any]]]:
    """Resolve the caller's shape fields against a model; returns the shape and the adjustments made."""
    adjustments: list[dict[str, Any]] = []
    req_size = _parse_request_size(size) if size is not None else None
    req_ratio = _parse_request_ratio(aspect_ratio) if aspect_ratio is not None else None
    req_px = _parse_request_tier(resolution) if resolution is not None else None
    if req_size is not None:
        for name, value in (("aspect_ratio", aspect_ratio), ("resolution", resolution)):
            if value is not None:
                adjustments.append(adjustment(name, value, None, "ignored: size takes precedence"))
        req_ratio, req_px = None, None

    if spec.sizes:
        shape = _from_sizes(spec, size, req_size, aspect_ratio, req_ratio, resolution, req_px, adjustments)
    elif req_size is not None and spec.bounds is not None:
        shape = _from_bounds(spec, size, req_size, None, None, adjustments)
    elif spec.ratios:
        shape = _from_ratios(spec, size, req_size, aspect_ratio, req_ratio, resolution, req_px, adjustments)
    else:
        shape = _from_bounds(spec, size, req_size, aspect_ratio if req_ratio else None,
                             resolution if req_px else None, adjustments)
    return shape, adjustments


def _from_sizes(spec: ShapeSpec, size: str | None, req_size: tuple[int, int] | None, aspect_ratio: str | None,
                req_ratio: float | None, resolution: str | None, req_px: float | None,
                adjustments: list[dict[str, Any]]) -> Shape:
    dw, dh = spec.default_size or spec.sizes[0]
    if req_size is not None:
        target_r, target_px = req_size[0] / req_size[1], req_size[0] * req_size[1]
    else:
        target_r = req_ratio if req_ratio is not None else dw / dh
        target_px = req_px if req_px is not None else dw * dh
    if req_size is None and req_ratio is None and req_px is None:
        w, h = dw, dh
    else:
        w, h = min(spec.sizes, key=lambda s: (round(_log_dist(target_r, s[0] / s[1]), 9),
                                              _log_dist(target_px, s[0] * s[1])))
    chosen = fmt_size((w, h))
    if req_size is not None and req_size != (w, h):
        adjustments.append(adjustment("size", size, chosen, "nearest supported size"))
    if req_ratio is not None and abs(_log_dist(req_ratio, w / h)) > 1e-9:
        adjustments.append(adjustment("aspect_ratio", aspect_ratio, reduced_ratio(w, h),
                                f"nearest supported size {chosen}"))
    if req_px is not None and abs(req_px - w * h) > 0.01 * req_px:
        adjustments.append(adjustment("resolution", resolution, chosen,
                                      f"model has fixed sizes; nearest by pixel count is {chosen}"))
    return Shape(w, h, reduced_ratio(w, h), None)


def _ratio_tier_dims(spec: ShapeSpec, ratio: str, tier: str | None) -> tuple[int, int]:
    if tier is not None and ratio in spec.dimensions and tier in spec.dimensions[ratio]:
        return spec.dimensions[ratio][tier]
    if tier is None and ratio in spec.dimensions and len(spec.dimensions[ratio]) == 1:
        return next(iter(spec.dimensions[ratio].values()))
    pixels = tier_pixels(tier) if tier else float(K_TIER_SIDE_PX * K_TIER_SIDE_PX)
    w, h = _dims_from(ratio_value(ratio), pixels)
    if spec.bounds:
        w, h = clamp(w, h, spec.bounds)
    return w, h


def _table_entry(spec: ShapeSpec, size: tuple[int, int]) -> tuple[str, str | None] | None:
    for ratio, row in spec.dimensions.items():
        for tier, wh in row.items():
            if wh == size:
                return ratio, (tier if spec.tiers else None)
    return None


def _from_ratios(spec: ShapeSpec, size: str | None, req_size: tuple[int, int] | None, aspect_ratio: str | None,
                 req_ratio: float | None, resolution: str | None, req_px: float | None,
                 adjustments: list[dict[str, Any]]) -> Shape:
    assert spec.default_ratio is not None
    exact = _table_entry(spec, req_size) if req_size is not None else None
    if exact is not None:  # a size the model really makes is taken as it is (table sizes round their labels)
        assert req_size is not None
        return Shape(req_size[0], req_size[1], exact[0], exact[1])
    if req_size is not None:
        ratio = nearest_ratio(req_size[0] / req_size[1], spec.ratios)
    elif req_ratio is not None:
        ratio = nearest_ratio(req_ratio, spec.ratios)
    else:
        ratio = spec.default_ratio
    tier = spec.default_tier
    target_px = req_size[0] * req_size[1] if req_size is not None else req_px
    if spec.tiers and target_px is not None:
        tier = min(spec.tiers, key=lambda t: _log_dist(target_px, _area(_ratio_tier_dims(spec, ratio, t))))
    w, h = _ratio_tier_dims(spec, ratio, tier)
    if req_size is not None and req_size != (w, h):
        how = f"nearest supported aspect ratio {ratio}" + (f" at {tier}" if tier else "")
        adjustments.append(adjustment("size", size, fmt_size((w, h)), how))
    if req_ratio is not None and abs(_log_dist(req_ratio, ratio_value(ratio))) > 1e-9:
        adjustments.append(adjustment("aspect_ratio", aspect_ratio, ratio, "nearest supported aspect ratio"))
    if req_px is not None:
        if not spec.tiers:
            adjustments.append(adjustment("resolution", resolution, None, "ignored: the model has no resolution tiers"))
        elif tier is not None and not _same_tier(resolution or "", tier):
            adjustments.append(adjustment("resolution", resolution, tier, "nearest supported resolution"))
    return Shape(w, h, ratio, tier)


def _area(wh: tuple[int, int]) -> float:
    return float(wh[0] * wh[1])


def _same_tier(a: str, b: str) -> bool:
    return a.strip().upper() == b.strip().upper()


RATIO_EPSILON = 1e-3  # log-ratio difference below which two shapes have the same ratio


def _from_bounds(spec: ShapeSpec, size: str | None, req_size: tuple[int, int] | None, aspect_ratio: str | None,
                 resolution: str | None, adjustments: list[dict[str, Any]]) -> Shape:
    b = spec.bounds or Bounds()
    if spec.default_size:
        dw, dh = spec.default_size
    else:
        assert spec.default_ratio is not None
        dw, dh = _dims_from(ratio_value(spec.default_ratio),
                            tier_pixels(spec.default_tier) if spec.default_tier else K_TIER_SIDE_PX ** 2)
    tier = None
    if req_size is not None:
        w0, h0 = req_size
    else:
        r = ratio_value(aspect_ratio) if aspect_ratio else dw / dh
        px = float(dw * dh)
        if resolution is not None:
            tier = resolution
            if spec.tiers:
                tier = min(spec.tiers, key=lambda t: _log_dist(tier_pixels(resolution), tier_pixels(t)))
                if not _same_tier(tier, resolution):
                    adjustments.append(adjustment("resolution", resolution, tier, "nearest supported resolution"))
            px = tier_pixels(tier)
        w0, h0 = _dims_from(r, px) if (aspect_ratio or resolution) else (dw, dh)
    w, h = clamp(w0, h0, b)
    where = f"the model's bounds ({b.describe()})"
    if req_size is not None:
        if (w, h) != req_size:
            adjustments.append(adjustment("size", size, fmt_size((w, h)), f"clamped to {where}, ratio kept as far as they allow"))
    else:
        if aspect_ratio and _log_dist(ratio_value(aspect_ratio), w / h) > RATIO_EPSILON:
            adjustments.append(adjustment("aspect_ratio", aspect_ratio, reduced_ratio(w, h), f"{w}x{h} fits {where}"))
        if tier is not None and _log_dist(tier_pixels(tier), w * h) > 0.1:
            adjustments.append(adjustment("resolution", resolution, fmt_size((w, h)), f"scaled to fit {where}"))
    return Shape(w, h, reduced_ratio(w, h), tier, custom=True)


# ---------------------------------------------------------------- clamping

CLAMP_SEARCH_STEPS = 48  # grid steps searched around the scaled target on each side


def _grid(lo: int, hi: int, m: int) -> tuple[int, int]:
    """The smallest and largest multiples of m inside [lo, hi] (lo > hi when there is none)."""
    return -(-lo // m) * m, (hi // m) * m


RATIO_WEIGHT = 4.0  # in the clamp score a ratio error counts this many times an equal (log) area error


def _h_range(w: int, b: Bounds, h_lo: int, h_hi: int) -> tuple[int, int]:
    """The on-grid heights that, with width w, satisfy the pixel and ratio bounds (lo > hi: none)."""
    m = b.multiple_of
    lo = max(h_lo, -(-b.min_pixels // w), math.ceil(w / b.max_ratio - 1e-9) if b.max_ratio != math.inf else 1)
    hi = min(h_hi, b.max_pixels // w, math.floor(w / b.min_ratio + 1e-9) if b.min_ratio > 0 else h_hi)
    return -(-lo // m) * m, (hi // m) * m


def feasible(b: Bounds) -> bool:
    """Whether any on-grid size satisfies every bound (checked once, at load)."""
    w_lo, w_hi = _grid(b.min_width, b.max_width, b.multiple_of)
    h_lo, h_hi = _grid(b.min_height, b.max_height, b.multiple_of)
    return any(lo <= hi for lo, hi in (_h_range(w, b, h_lo, h_hi) for w in range(w_lo, w_hi + 1, b.multiple_of)))


def clamp(w: float, h: float, b: Bounds) -> tuple[int, int]:
    """The on-grid size inside the bounds closest to (w, h) in ratio and then area. Idempotent: a size
    that already satisfies the bounds is returned unchanged."""
    m = b.multiple_of
    w_lo, w_hi = _grid(b.min_width, b.max_width, m)
    h_lo, h_hi = _grid(b.min_height, b.max_height, m)
    wi, hi_ = int(round(w)), int(round(h))
    if wi == w and hi_ == h and b.contains(wi, hi_):
        return wi, hi_
    r = min(max(w / h, b.min_ratio), b.max_ratio)
    area = w * h
    ws = math.sqrt(area * r)
    scale = min(1.0, b.max_width / ws, b.max_height / (ws / r), math.sqrt(b.max_pixels / area))
    scale = max(scale, b.min_width / ws, b.min_height / (ws / r), math.sqrt(b.min_pixels / area))
    tw, th = ws * scale, ws / r * scale
    best = _search(tw, th, r, b, w_lo, w_hi, h_lo, h_hi, CLAMP_SEARCH_STEPS)
    if best is None and w_lo <= w_hi:
        best = _search(tw, th, r, b, w_lo, w_hi, h_lo, h_hi, (w_hi - w_lo) // m + 1)
    if best is None:
        raise ValueError("bounds admit no size")  # refused at load by ShapeSpec.problems()
    return best


def _search(tw: float, th: float, r: float, b: Bounds, w_lo: int, w_hi: int, h_lo: int, h_hi: int,
            steps: int) -> tuple[int, int] | None:
    m = b.multiple_of
    centre = min(max(round(tw / m) * m, w_lo), w_hi)
    best: tuple[float, tuple[int, int]] | None = None
    for k in range(-steps, steps + 1):
        cw = centre + k * m
        if cw < w_lo or cw > w_hi:
            continue
        lo, hi = _h_range(cw, b, h_lo, h_hi)
        if lo > hi:
            continue
        ideal = cw / r
        for ch in {min(max(math.floor(ideal / m) * m, lo), hi), min(max(math.ceil(ideal / m) * m, lo), hi)}:
            score = RATIO_WEIGHT * abs(math.log((cw / ch) / r)) + abs(math.log((cw * ch) / (tw * th)))
            if best is None or score < best[0] - 1e-12:
                best = (score, (cw, ch))
    return best[1] if best else None
