"""Properties of shape matching and clamping, over every shipped model and over random bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediagate import catalog
from mediagate.errors import GatewayError
from mediagate.shape import Bounds, ShapeSpec, clamp, feasible, nearest_ratio, ratio_value, resolve, tier_pixels

CATALOG = catalog.load()
SPECS = {m.id: ShapeSpec.from_spec(m.spec["shape"]) for m in CATALOG.models.values() if "shape" in m.spec}

sides = st.integers(min_value=1, max_value=20000)
sizes = st.builds(lambda w, h: f"{w}x{h}", sides, sides)
ratios = st.builds(lambda a, b: f"{a}:{b}", st.integers(1, 50), st.integers(1, 50))
tiers = st.sampled_from(["0.25", "0.5K", "1", "1K", "1.5K", "2K", "3K", "4K", "8K"])


def supported(spec: ShapeSpec, w: int, h: int) -> bool:
    if spec.sizes:
        return (w, h) in spec.sizes
    if spec.dimensions:
        return any((w, h) == wh for row in spec.dimensions.values() for wh in row.values()) or (
            spec.bounds is not None and spec.bounds.contains(w, h))
    if spec.bounds is not None:
        return spec.bounds.contains(w, h)
    return True


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(sorted(SPECS)), size=st.none() | sizes, ratio=st.none() | ratios, tier=st.none() | tiers)
def test_any_request_on_any_model_yields_a_supported_shape(model: str, size: str | None, ratio: str | None, tier: str | None) -> None:
    spec = SPECS[model]
    try:
        shape, adjustments = resolve(spec, size, ratio, tier)
    except GatewayError as err:  # only sides beyond the absolute maximum are refused
        assert err.param == "size"
        return
    assert shape.width and shape.height
    assert supported(spec, shape.width, shape.height), (model, size, ratio, tier, shape)
    if spec.ratios and not shape.custom:
        assert shape.aspect_ratio in spec.ratios
    if spec.tiers and shape.resolution is not None:
        assert shape.resolution in spec.tiers
    if size is not None and shape.size != size:
        assert any(a["param"] == "size" for a in adjustments), "a changed size must be recorded"


@settings(max_examples=200, deadline=None)
@given(model=st.sampled_from(sorted(SPECS)), size=sizes)
def test_resolving_a_resolved_size_changes_nothing(model: str, size: str) -> None:
    spec = SPECS[model]
    try:
        first, _ = resolve(spec, size, None, None)
    except GatewayError:
        return
    again, adjustments = resolve(spec, first.size, None, None)
    assert again.size == first.size
    assert adjustments == []


bounds_st = st.builds(
    lambda mw, xw, mh, xh, mult, maxpx: Bounds(min_width=mw, max_width=max(mw, xw), min_height=mh, max_height=max(mh, xh),
                                             multiple_of=mult, max_pixels=max(maxpx, mw * mh)),
    st.integers(64, 512), st.integers(512, 4096), st.integers(64, 512), st.integers(512, 4096),
    st.sampled_from([1, 8, 16, 32, 64]), st.integers(512 * 512, 4096 * 4096))


full_bounds_st = st.builds(
    lambda mw, xw, mh, xh, mult, minpx, maxpx, rlo, rhi: Bounds(
        min_width=mw, max_width=max(mw, xw), min_height=mh, max_height=max(mh, xh), multiple_of=mult,
        min_pixels=minpx, max_pixels=max(maxpx, minpx), min_ratio=min(rlo, rhi), max_ratio=max(rlo, rhi)),
    st.integers(1, 1024), st.integers(256, 4096), st.integers(1, 1024), st.integers(256, 4096),
    st.sampled_from([1, 8, 16, 32, 64]), st.integers(1, 2000 * 2000), st.integers(1, 4096 * 4096),
    st.floats(0.05, 3), st.floats(0.3, 20))




@settings(max_examples=500, deadline=None)
@given(b=full_bounds_st, w=st.integers(1, 20000), h=st.integers(1, 20000))
def test_clamp_lands_in_bounds_and_is_idempotent(b: Bounds, w: int, h: int) -> None:
    if not feasible(b):
        return
    cw, ch = clamp(w, h, b)
    assert b.contains(cw, ch), (cw, ch, b)
    assert clamp(cw, ch, b) == (cw, ch)


@settings(max_examples=400, deadline=None)
@given(b=bounds_st, w=st.integers(64, 8000), h=st.integers(64, 8000))
def test_clamp_keeps_the_ratio_when_the_bounds_allow_it(b: Bounds, w: int, h: int) -> None:
    r = w / h
    # the ratio is reachable when the smallest box of that ratio allowed by the minimums fits every maximum
    h_min = max(b.min_height, b.min_width / r) * 1.05
    fits = h_min <= b.max_height and r * h_min <= b.max_width and r * h_min * h_min <= b.max_pixels and feasible(b)
    cw, ch = clamp(w, h, b)
    if fits and min(cw, ch) >= 8 * b.multiple_of:
        # rounding to the grid moves each side by at most half a step, then one step to satisfy a limit
        tolerance = 1.5 * b.multiple_of / min(cw, ch) * 2 + 0.01
        assert abs(math.log((cw / ch) / r)) <= tolerance, (w, h, cw, ch, b)


def test_numeric_resolution_is_a_side_in_pixels_when_large() -> None:
    assert tier_pixels("512") == tier_pixels("0.5K")
    assert tier_pixels("0.25") == tier_pixels("0.5K")


def test_clamped_ratio_is_reported_and_labelled() -> None:
    spec = SPECS["sdxl-local"]
    shape, adj = resolve(spec, None, "1:1000", None)
    assert shape.aspect_ratio == f"{shape.width // math.gcd(shape.width, shape.height)}:{shape.height // math.gcd(shape.width, shape.height)}"
    assert adj[0]["param"] == "aspect_ratio" and adj[0]["applied"] == shape.aspect_ratio


def test_seed_examples() -> None:
    assert nearest_ratio(ratio_value("7:1"), ["4:1", "8:1"]) == "8:1"
    spec = ShapeSpec(ratios=["1:1", "4:1"], tiers=["1K", "4K"], default_ratio="1:1", default_tier="1K")
    shape, adj = resolve(spec, None, None, "8K")
    assert shape.resolution == "4K"
    assert adj == [{"param": "resolution", "requested": "8K", "applied": "4K", "reason": "nearest supported resolution"}]
    assert tier_pixels("1") == tier_pixels("1K")
    flux = ShapeSpec(bounds=Bounds(max_width=2048, max_height=2048), default_size=(1024, 1024))
    clamped, adj = resolve(flux, "4096x4096", None, None)
    assert clamped.size == "2048x2048" and adj[0]["applied"] == "2048x2048"


def test_megapixel_and_k_tiers_share_one_scale() -> None:
    spec = ShapeSpec(ratios=["1:1"], tiers=["0.25", "1"], default_ratio="1:1", default_tier="1")
    assert resolve(spec, None, None, "4K")[0].resolution == "1"
    assert resolve(spec, None, None, "0.5K")[0].resolution == "0.25"


@pytest.mark.parametrize("bad", ["abc", "10x", "0x10", "-5x5"])
def test_malformed_size_is_a_400_naming_size(bad: str) -> None:
    with pytest.raises(GatewayError) as exc:
        resolve(SPECS["gpt-image-1"], bad, None, None)
    assert exc.value.status == 400 and exc.value.param == "size"
