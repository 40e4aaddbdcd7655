"""Format conversion on big, detailed images: the sizes the benchmark sends (up to 4096²)."""

from __future__ import annotations

import io
import os

from PIL import Image

from mediagate import imaging


def _noise_png(side: int) -> bytes:
    im = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def test_webp_of_a_4096_noise_image_is_made_not_a_500() -> None:
    """libwebp's fast method overflows its first partition (ValueError "encoding error 6") on 4096² of noise;
    the conversion then uses the slower method instead of failing the request with internal_error."""
    data, info = imaging.convert(_noise_png(4096), "webp", None)
    assert (info.format, info.width, info.height) == ("webp", 4096, 4096)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "WEBP" and im.size == (4096, 4096)
