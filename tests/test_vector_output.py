"""SVG outputs: identified and measured from the root element only, accepted from providers, never from callers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mediagate import imaging
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread


@pytest.mark.parametrize(("doc", "size"), [
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480"/>', (640, 480)),
    (b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- made by hand -->\n<!DOCTYPE svg>\n<svg width="12.6px" height="7" >', (13, 7)),
    (b"<svg viewBox='0 0 1536 768' xmlns='http://www.w3.org/2000/svg'></svg>", (1536, 768)),
    (b'<svg width="100%" height="100%" viewBox="0,0,300,200"></svg>', (300, 200)),    # relative lengths: the viewBox
])
def test_an_svg_is_measured_from_its_root(doc: bytes, size: tuple[int, int]) -> None:
    assert imaging.identify(doc, vector=True) == imaging.Info("svg", *size)


def test_an_svg_without_a_size_and_non_svg_text_are_not_images() -> None:
    with pytest.raises(imaging.ImageError):
        imaging.identify(b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', vector=True)
    assert imaging.identify_vector(b"<html><svg width='1' height='1'/></html>") is None
    with pytest.raises(imaging.ImageError):
        imaging.identify(b"hello world", vector=True)


def test_an_svg_is_only_an_output(tmp_path: Path, sim: SimulatorThread) -> None:
    """Without `vector` an SVG is not an image, so a caller cannot send one as an edit input."""
    doc = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>'
    with pytest.raises(imaging.ImageError):
        imaging.identify(doc)
    with pytest.raises(imaging.ImageError):
        imaging.convert(b"\x89PNG", "svg", None)          # the gateway never vectorizes
    with GatewayThread(sim.base_url, tmp_path) as gw:
        r = httpx.post(gw.base_url + "/v1/images/edits", data={"model": "gpt-image-2", "prompt": "x"},
                       files=[("image", ("i.svg", doc, "image/svg+xml"))], timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] in ("invalid_image", "invalid_image_format")


def test_a_raster_model_cannot_be_asked_for_svg(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + "/v1/images/generations", json={"model": "gpt-image-2", "prompt": "x",
                                                                     "output_format": "svg"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "output_format"
