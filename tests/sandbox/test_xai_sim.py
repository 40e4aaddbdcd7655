"""The xAI (Grok Imagine) simulator over its REST protocol. The official xai-sdk speaks gRPC to api.x.ai and has no
plain-HTTP base URL, so these calls follow xAI's REST reference with httpx, as the gateway's xai provider does."""

from __future__ import annotations

import base64
import io
import time

import httpx
import pytest
from PIL import Image

from mediagate.sandbox import video
from mediagate.sandbox.testing import SimulatorThread

AUTH = {"Authorization": "Bearer xai-test"}


def post(sim: SimulatorThread, path: str, body: dict[str, object], headers: dict[str, str] = AUTH) -> httpx.Response:
    return httpx.post(sim.url("/xai/v1" + path), json=body, headers=headers, timeout=60)


@pytest.mark.parametrize(("ratio", "resolution", "size"), [("16:9", "1k", (1408, 768)), ("9:19.5", "1k", (576, 1248)),
                                                           ("1:1", "2k", (2048, 2048))])
def test_images_are_jpeg_of_the_ratio_and_tier(sim: SimulatorThread, ratio: str, resolution: str,
                                               size: tuple[int, int]) -> None:
    r = post(sim, "/images/generations", {"model": "grok-imagine-image", "prompt": "a fox", "n": 2,
                                          "aspect_ratio": ratio, "resolution": resolution, "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert len(data) == 2 and data[0]["mime_type"] == "image/jpeg"
    im = Image.open(io.BytesIO(base64.b64decode(data[0]["b64_json"])))
    assert im.format == "JPEG" and im.size == size


def test_url_images_download(sim: SimulatorThread) -> None:
    r = post(sim, "/images/generations", {"model": "grok-imagine-image-quality", "prompt": "a fox"})
    url = r.json()["data"][0]["url"]                     # url is xAI's default
    assert Image.open(io.BytesIO(httpx.get(url, timeout=30).content)).size == (1024, 1024)


def test_refusals(sim: SimulatorThread) -> None:
    assert post(sim, "/images/generations", {"prompt": "x"}, {}).status_code == 401
    bad = post(sim, "/images/generations", {"prompt": "x"}, {"Authorization": "Bearer bad-key"})
    assert bad.status_code == 400 and "API key" in bad.json()["error"]
    assert post(sim, "/images/generations", {"model": "grok-9", "prompt": "x"}).status_code == 404
    assert post(sim, "/images/generations", {"prompt": "x", "n": 11}).status_code == 400
    assert post(sim, "/images/generations", {"prompt": "x", "resolution": "4k"}).status_code == 400


@pytest.mark.parametrize(("fault", "status"), [("429", 429), ("500", 500), ("safety", 400)])
def test_image_fault_switches(sim: SimulatorThread, fault: str, status: int) -> None:
    sim.inject(fault, 1, "xai")
    r = post(sim, "/images/generations", {"prompt": "x"})
    assert r.status_code == status and "error" in r.json() and "code" in r.json()
    assert post(sim, "/images/generations", {"prompt": "x"}).status_code == 200


def _poll(sim: SimulatorThread, request_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = httpx.get(sim.url(f"/xai/v1/videos/{request_id}"), headers=AUTH, timeout=30).json()
        if body["status"] != "pending":
            return body
        time.sleep(0.05)
    raise AssertionError("the job never finished")


def test_a_video_is_deferred_then_a_playable_mp4_of_the_frame(sim: SimulatorThread) -> None:
    r = post(sim, "/videos/generations", {"model": "grok-imagine-video", "prompt": "waves [sim:job=300]", "duration": 3,
                                          "aspect_ratio": "9:16", "resolution": "720p"})
    assert r.status_code == 200 and set(r.json()) == {"request_id"}
    first = httpx.get(sim.url(f"/xai/v1/videos/{r.json()['request_id']}"), headers=AUTH, timeout=30).json()
    assert first["status"] == "pending"
    done = _poll(sim, r.json()["request_id"])
    assert done["status"] == "done" and done["video"]["duration"] == 3 and done["video"]["respect_moderation"] is True  # type: ignore[index]
    info = video.probe(httpx.get(done["video"]["url"], timeout=30).content)  # type: ignore[index]
    assert (info.width, info.height) == (720, 1280) and abs(info.duration - 3) < 0.2 and info.codec == "h264"


@pytest.mark.parametrize(("fault", "code"), [("fail", "internal_error"), ("safety", "content_moderated")])
def test_a_failed_video_job_answers_200_with_the_error(sim: SimulatorThread, fault: str, code: str) -> None:
    sim.inject(fault, 1, "xai")
    r = post(sim, "/videos/generations", {"prompt": "x [sim:job=50]"})
    done = _poll(sim, r.json()["request_id"])
    assert done["status"] == "failed" and done["error"]["code"] == code  # type: ignore[index]


def test_video_refusals(sim: SimulatorThread) -> None:
    assert post(sim, "/videos/generations", {"prompt": "x", "duration": 16}).status_code == 400
    assert post(sim, "/videos/generations", {"prompt": "x", "resolution": "1080p"}).status_code == 400
    assert httpx.get(sim.url("/xai/v1/videos/nope"), headers=AUTH, timeout=30).status_code == 404


def _data_url(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (20, 40, 60)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_an_edit_is_json_and_keeps_the_source_ratio(sim: SimulatorThread) -> None:
    r = post(sim, "/images/edits", {"model": "grok-imagine-image", "prompt": "a pencil sketch", "response_format": "b64_json",
                                    "image": {"url": _data_url(900, 1600), "type": "image_url"}})
    assert r.status_code == 200, r.text
    im = Image.open(io.BytesIO(base64.b64decode(r.json()["data"][0]["b64_json"])))
    assert im.format == "JPEG" and im.size == (768, 1408)          # 9:16 in, 9:16 out
    assert post(sim, "/images/edits", {"prompt": "x"}).status_code == 400               # no image
    too_many = {"prompt": "x", "images": [{"url": _data_url(64, 64)}] * 4}
    assert post(sim, "/images/edits", too_many).status_code == 400
