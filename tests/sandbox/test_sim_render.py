"""The image renderer: exact sizes, real content, formats, speed and caching."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageStat

from mediagate.sandbox import render


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@settings(max_examples=25, deadline=None)
@given(width=st.integers(8, 1400), height=st.integers(8, 1400))
def test_exact_dimensions(width: int, height: int) -> None:
    assert decode(render.render_uncached(width, height, "any size")).size == (width, height)


@pytest.mark.parametrize(("width", "height"), [(4096, 4096), (11712, 1408), (352, 2928)])
def test_big_and_extreme_outputs_are_exact(width: int, height: int) -> None:
    assert decode(render.render_uncached(width, height, "huge")).size == (width, height)


@pytest.mark.parametrize(("fmt", "pil_format"), [("png", "PNG"), ("jpeg", "JPEG"), ("jpg", "JPEG"), ("webp", "WEBP")])
def test_formats(fmt: str, pil_format: str) -> None:
    assert decode(render.render_uncached(320, 200, "formats", fmt, quality=60)).format == pil_format
    with pytest.raises(ValueError):
        render.render_uncached(32, 32, "x", "gif")


def test_image_is_not_blank_and_depends_on_prompt() -> None:
    image = decode(render.render_uncached(512, 512, "a colourful test")).convert("RGB")
    extrema = image.getextrema()
    assert all(high - low > 60 for low, high in extrema)  # gradient plus white text on a dark band
    assert max(ImageStat.Stat(image).stddev) > 20
    other = decode(render.render_uncached(512, 512, "something else entirely")).convert("RGB")
    assert image.tobytes() != other.tobytes()


def test_transparent_png_has_alpha() -> None:
    assert decode(render.render_uncached(64, 64, "t", "png", transparent=True)).mode == "RGBA"
    assert decode(render.render_uncached(64, 64, "t", "jpeg", transparent=True)).mode == "RGB"


def test_zero_cost_cache() -> None:
    first = render.render_image(300, 200, "cached prompt", "webp")
    assert render.render_image(300, 200, "cached prompt", "webp") is first  # served from the cache, not re-rendered
    assert render.render_image(300, 200, "cached prompt", "png") is not first


def test_bytes_lru_bounds() -> None:
    lru = render.BytesLRU(max_entries=3, max_bytes=100)
    for i in range(5):
        lru.put((i,), bytes(10))
    assert len(lru) == 3 and lru.get((0,)) is None and lru.get((4,)) is not None
    lru.put(("big",), bytes(60))  # > max_bytes / 4: not cached at all
    assert lru.get(("big",)) is None
    lru.clear()
    assert len(lru) == 0


def test_render_edit_with_mask() -> None:
    source = io.BytesIO()
    Image.new("RGB", (300, 200), (0, 128, 0)).save(source, "PNG")
    mask = io.BytesIO()
    Image.new("RGBA", (300, 200), (0, 0, 0, 0)).save(mask, "PNG")
    out = decode(render.render_edit(source.getvalue(), 600, 400, "paint it", "jpeg", mask=mask.getvalue()))
    assert out.size == (600, 400) and out.format == "JPEG"
    corner = out.convert("RGB").getpixel((2, 399))
    assert isinstance(corner, tuple) and corner[0] > 60  # masked (transparent) area is tinted
    with pytest.raises(ValueError):
        render.render_edit(b"nope", 10, 10, "x")
