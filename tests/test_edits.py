"""POST /v1/images/edits: multipart and JSON, input checks, per-protocol conversion, safe URL fetching."""

from __future__ import annotations

import base64
import io
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest
from PIL import Image

from mediagate.inputs import MAX_INPUT_IMAGE_BYTES
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

URL = "/v1/images/edits"


def png(w: int, h: int, mode: str = "RGB", color: Any = (200, 60, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h), color).save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0, timeout=60)


def decoded(item: Any) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(item.b64_json)))


def test_sdk_edit_with_mask_returns_the_requested_format(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    res = client(gateway).images.edit(model="gpt-image-1.5", image=("in.png", png(1024, 1024)),
                                      mask=("mask.png", png(1024, 1024, "RGBA", (0, 0, 0, 0))), prompt="add a red hat",
                                      response_format="b64_json", extra_body={"output_format": "webp"})
    im = decoded(res.data[0])
    assert im.format == "WEBP" and f"{im.width}x{im.height}" == res.size
    sent = sim_clean.requests("openai")[-1]
    assert sent["path"] == "/openai/v1/images/edits"
    assert {f["name"] for f in sent["files"]} == {"image", "mask"}
    assert sent["form"]["model"] == "gpt-image-1.5" and sent["form"]["output_format"] == "webp"


def test_several_images_go_as_image_array_parts(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    res = client(gateway).images.edit(model="gpt-image-1", image=[("a.png", png(512, 512)), ("b.png", png(512, 512))],
                                      prompt="combine", response_format="b64_json")
    assert len(res.data) == 1
    names = [f["name"] for f in sim_clean.requests("openai")[-1]["files"]]
    assert names == ["image[]", "image[]"]


def test_gemini_edit_sends_inline_parts_and_keeps_the_input_shape(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    res = client(gateway).images.edit(model="gemini/gemini-3-pro-image", image=("in.png", png(1600, 900)),
                                      prompt="make it dusk", response_format="b64_json")
    assert res.size == "1376x768"  # the input's 16:9, no size asked and so nothing adjusted
    assert res.model_extra["metadata"]["adjustments"] == []
    parts = sim_clean.requests("gemini")[-1]["json"]["contents"][0]["parts"]
    assert parts[0] == {"text": "make it dusk"} and parts[1]["inlineData"]["mimeType"] == "image/png"


def test_json_edit_with_data_url_on_replicate(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = httpx.post(gateway.base_url + URL, json={"model": "flux.2-max", "prompt": "snow", "image": data_url(png(640, 480)),
                                                 "response_format": "b64_json"}, timeout=60)
    assert r.status_code == 200, r.text
    sent = sim_clean.requests("replicate")[-1]["json"]["input"]
    assert sent["input_images"][0].startswith("data:image/png;base64,")


def test_fal_edit_uses_the_edit_app(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = httpx.post(gateway.base_url + URL, json={"model": "fal/flux.2-max", "prompt": "snow",
                                                 "images": [{"image_url": data_url(png(640, 480))}], "response_format": "b64_json"}, timeout=60)
    assert r.status_code == 200, r.text
    submit = sim_clean.requests("fal")[0]
    assert submit["path"] == "/fal/queue/fal-ai/flux-2-max/edit" and len(submit["json"]["image_urls"]) == 1
    assert r.json()["metadata"]["executed_model"] == "fal-ai/flux-2-max/edit"


@pytest.mark.parametrize(("files", "data", "status", "param", "code"), [
    ({"image": ("a.png", b"not an image")}, {}, 400, "image", "invalid_image"),
    ({"image": ("a.bmp", b"BM" + b"\0" * 100)}, {}, 400, "image", "invalid_image"),
    ({"image": ("a.png", png(256, 256)), "mask": ("m.png", png(128, 128, "RGBA"))}, {}, 400, "mask", "invalid_mask"),
    ({"image": ("a.png", png(64, 64))}, {"n": "lots"}, 400, "n", "invalid_type"),
])
def test_bad_inputs(gateway: GatewayThread, files: dict[str, Any], data: dict[str, str], status: int, param: str, code: str) -> None:
    r = httpx.post(gateway.base_url + URL, data={"model": "dall-e-2", "prompt": "x", **data}, files=files, timeout=30)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["param"], err["code"]) == (param, code)


def test_missing_image_and_stray_file_part(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + URL, json={"model": "dall-e-2", "prompt": "x"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_required_parameter"
    r = httpx.post(gateway.base_url + URL, data={"model": "dall-e-2", "prompt": "x"}, files={"photo": ("p.png", png(8, 8))}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "photo"


def test_too_many_images(gateway: GatewayThread) -> None:
    files = [("image[]", (f"{i}.png", png(32, 32))) for i in range(2)]
    r = httpx.post(gateway.base_url + URL, data={"model": "dall-e-2", "prompt": "x"}, files=files, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_images"


def test_image_over_the_byte_limit_is_413(gateway: GatewayThread) -> None:
    big = png(16, 16) + b"\0" * (MAX_INPUT_IMAGE_BYTES + 1)
    r = httpx.post(gateway.base_url + URL, data={"model": "gpt-image-1", "prompt": "x"}, files={"image": ("a.png", big)}, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        _Recorder.hits.append(self.path)
        body = png(300, 200)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture()
def local_image_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.hits = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "https://169.254.169.254/", "https://localhost/x.png",
                                 "https://10.1.2.3/x.png", "https://[::1]/x.png", "file:///etc/passwd", "https://[::ffff:127.0.0.1]/x"])
def test_ssrf_urls_are_refused(gateway: GatewayThread, url: str) -> None:
    r = httpx.post(gateway.base_url + URL, json={"model": "gpt-image-1", "prompt": "x", "image": url}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "image" and r.json()["error"]["code"] == "invalid_url"


def test_loopback_url_makes_no_connection_unless_allowed(gateway: GatewayThread, local_image_server: str, sim: SimulatorThread,
                                                          tmp_path: Path) -> None:
    url = local_image_server + "/pic.png"
    r = httpx.post(gateway.base_url + URL, json={"model": "gpt-image-1", "prompt": "x", "image": url}, timeout=30)
    assert r.status_code == 400 and _Recorder.hits == []
    with GatewayThread(sim.base_url, tmp_path, fetch_allow="127.0.0.1") as gw:
        ok = httpx.post(gw.base_url + URL, json={"model": "gpt-image-1", "prompt": "x", "image": url, "response_format": "b64_json"},
                        timeout=30)
    assert ok.status_code == 200, ok.text
    assert _Recorder.hits == ["/pic.png"]


def test_edit_dry_run(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = httpx.post(gateway.base_url + URL + "?dryRun=true", data={"model": "gpt-image-1", "prompt": "x", "quality": "high", "n": "2"},
                   files={"image": ("a.png", png(64, 64))}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["estimated"] is True and r.json()["total_cost_micros"] == 334_000
    assert sim_clean.requests() == []
