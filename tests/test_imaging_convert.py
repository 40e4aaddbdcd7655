"""Format conversion on big, detailed images: the sizes the benchmark sends (up to 4096²)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import httpx
import pytest
from PIL import Image, PngImagePlugin

from mediagate import imaging
from mediagate.config import Settings
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread


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


@pytest.mark.parametrize(("limit", "converted"), [(None, False), (2048, True), (2047, False)])
def test_avif_above_the_side_limit_keeps_its_format_and_says_so(tmp_path: Path, sim: SimulatorThread,
                                                                 limit: int | None, converted: bool) -> None:
    """MEDIAGATE_AVIF_MAX_SIDE_PX (default 1600): a 2048-wide image is made AVIF only when the limit allows it;
    otherwise it stays PNG and metadata.adjustments names what was asked, what was used and why."""
    settings = {} if limit is None else {"avif_max_side_px": limit}
    with GatewayThread(sim.base_url, tmp_path, **settings) as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", timeout=60,
                       json={"model": "sdxl-local", "prompt": "x", "size": "2048x1024", "output_format": "avif",
                             "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    body = r.json()
    adjusted = [a for a in body["metadata"].get("adjustments", []) if a["param"] == "output_format"]
    if converted:
        assert body["output_format"] == "avif" and not adjusted
        assert base64.b64decode(body["data"][0]["b64_json"])[4:12] == b"ftypavif"
    else:
        assert body["output_format"] == "png"
        assert adjusted == [{"param": "output_format", "requested": "avif", "applied": "png",
                             "reason": f"AVIF is limited to {limit or imaging.AVIF_MAX_SIDE_PX} pixels on the longest "
                                       "side (MEDIAGATE_AVIF_MAX_SIDE_PX)"}]


def test_the_avif_side_limit_setting_is_checked() -> None:
    assert Settings.from_env({"MEDIAGATE_AVIF_MAX_SIDE_PX": "4096"}).avif_max_side_px == 4096
    for bad in ("0", str(imaging.AVIF_MAX_SIDE_LIMIT_PX + 1)):
        with pytest.raises(ValueError, match="MEDIAGATE_AVIF_MAX_SIDE_PX"):
            Settings.from_env({"MEDIAGATE_AVIF_MAX_SIDE_PX": bad})


def test_the_quick_header_read_defers_to_the_full_one_when_the_header_lies_further_in() -> None:
    """identify_b64_quick reads the first few KB inline; a PNG with a big text chunk before its pixels or
    a JPEG behind a big EXIF block gives None there, and the full read still names it."""
    im = Image.frombytes("RGB", (300, 200), os.urandom(300 * 200 * 3))
    text = PngImagePlugin.PngInfo()
    text.add_text("big", "x" * 20000)
    cases = []
    for fmt, extra in (("PNG", {"pnginfo": text}), ("JPEG", {"exif": b"Exif\x00\x00" + b"\x00" * 30000}), ("PNG", {})):
        buf = io.BytesIO()
        im.save(buf, fmt, **extra)
        cases.append(base64.b64encode(buf.getvalue()).decode())
    far_png, far_jpeg, plain = cases
    want = {far_png: "png", far_jpeg: "jpeg", plain: "png"}
    assert imaging.identify_b64_quick(far_png) is None and imaging.identify_b64_quick(far_jpeg) is None
    assert imaging.identify_b64_quick(plain) == imaging.Info("png", 300, 200)
    for b64, fmt in want.items():
        assert imaging.identify_b64(b64) == imaging.Info(fmt, 300, 200)
    assert imaging.identify_b64_quick("!!not base64!!" * 50) is None
