"""The MiniMax simulator against MiniMax's REST reference (no official Python SDK exists on PyPI): the three-step
video flow, image-01 sizes, and errors reported inside HTTP 200 replies."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from mediagate.sandbox import video
from mediagate.sandbox.testing import SimulatorThread

AUTH = {"Authorization": "Bearer mm-sandbox"}


def call(sim: SimulatorThread, method: str, path: str, body: Any = None, params: Any = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.request(method, sim.base_url + "/minimax" + path, json=body, params=params,
                         headers=AUTH if headers is None else headers, timeout=30)


def data_url(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 30, 160)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def run_video(sim: SimulatorThread, body: dict[str, Any], timeout_s: float = 20) -> dict[str, Any]:
    created = call(sim, "POST", "/v1/video_generation", body).json()
    assert created["base_resp"]["status_code"] == 0, created
    deadline = time.monotonic() + timeout_s
    while True:
        status = call(sim, "GET", "/v1/query/video_generation", params={"task_id": created["task_id"]}).json()
        if status["status"] in ("Success", "Fail") or time.monotonic() > deadline:
            return status
        assert status["status"] in ("Preparing", "Queueing", "Processing")
        time.sleep(0.05)


@pytest.mark.parametrize(("model", "resolution", "duration", "frame"), [
    ("MiniMax-Hailuo-02", "768P", 10, (1366, 768)),
    ("MiniMax-Hailuo-2.3", "1080P", 6, (1920, 1080)),
])
def test_video_task_status_file_download(sim: SimulatorThread, model: str, resolution: str, duration: int,
                                         frame: tuple[int, int]) -> None:
    status = run_video(sim, {"model": model, "prompt": "a heron lands [sim:job=100]", "duration": duration,
                             "resolution": resolution})
    assert status["status"] == "Success" and (status["video_width"], status["video_height"]) == frame
    file = call(sim, "GET", "/v1/files/retrieve", params={"file_id": status["file_id"]}).json()
    assert file["base_resp"]["status_code"] == 0 and file["file"]["purpose"] == "video_generation"
    info = video.probe(httpx.get(file["file"]["download_url"], timeout=30).content)
    assert (info.width, info.height) == frame and round(info.duration) == duration


def test_fast_model_needs_a_first_frame(sim: SimulatorThread) -> None:
    r = call(sim, "POST", "/v1/video_generation", {"model": "MiniMax-Hailuo-2.3-Fast", "prompt": "x"})
    assert r.status_code == 200 and r.json()["base_resp"]["status_code"] == 2013
    status = run_video(sim, {"model": "MiniMax-Hailuo-2.3-Fast", "prompt": "it moves [sim:job=50]",
                             "first_frame_image": data_url(320, 180)})
    assert status["status"] == "Success"


@pytest.mark.parametrize("body", [
    {"model": "MiniMax-Hailuo-02", "prompt": "x", "duration": 10, "resolution": "1080P"},
    {"model": "MiniMax-Hailuo-02", "prompt": "x", "duration": 8},
    {"model": "Hailuo-99", "prompt": "x"},
])
def test_invalid_video_params_are_2013_in_a_200(sim: SimulatorThread, body: dict[str, Any]) -> None:
    r = call(sim, "POST", "/v1/video_generation", body)
    assert r.status_code == 200 and r.json()["base_resp"]["status_code"] == 2013 and "task_id" not in r.json()


def test_failed_task_and_unknown_file(sim: SimulatorThread) -> None:
    status = run_video(sim, {"model": "MiniMax-Hailuo-02", "prompt": "x [sim:safety] [sim:job=30]"})
    assert status["status"] == "Fail" and status["base_resp"]["status_code"] == 1027
    r = call(sim, "GET", "/v1/files/retrieve", params={"file_id": "123"})
    assert r.json()["base_resp"]["status_code"] == 2013


@pytest.mark.parametrize(("extra", "size"), [({"aspect_ratio": "21:9"}, (1344, 576)), ({"width": 1024, "height": 1536}, (1024, 1536)),
                                             ({}, (1024, 1024))])
def test_image_01_sizes_base64(sim: SimulatorThread, extra: dict[str, Any], size: tuple[int, int]) -> None:
    r = call(sim, "POST", "/v1/image_generation", {"model": "image-01", "prompt": "a teapot", "n": 2,
                                                   "response_format": "base64", **extra}).json()
    assert r["base_resp"]["status_code"] == 0 and r["metadata"]["success_count"] == "2"
    images = [Image.open(io.BytesIO(base64.b64decode(b))) for b in r["data"]["image_base64"]]
    assert [im.size for im in images] == [size, size]


def test_image_01_url_output(sim: SimulatorThread) -> None:
    r = call(sim, "POST", "/v1/image_generation", {"model": "image-01", "prompt": "a teapot"}).json()
    got = httpx.get(r["data"]["image_urls"][0], timeout=30)
    assert got.status_code == 200 and Image.open(io.BytesIO(got.content)).size == (1024, 1024)


@pytest.mark.parametrize(("fault", "code"), [("429", 1002), ("500", 1013), ("prompt-blocked", 1026), ("safety", 1027)])
def test_faults_are_base_resp_codes(sim: SimulatorThread, fault: str, code: int) -> None:
    sim.inject(fault, 1, "minimax")
    r = call(sim, "POST", "/v1/image_generation", {"model": "image-01", "prompt": "x"})
    assert r.status_code == 200 and r.json()["base_resp"]["status_code"] == code


def test_auth_and_bad_sizes(sim: SimulatorThread) -> None:
    assert call(sim, "POST", "/v1/image_generation", {"model": "image-01", "prompt": "x"},
                headers={}).json()["base_resp"]["status_code"] == 1004
    for extra in ({"width": 1001, "height": 1000}, {"width": 4096, "height": 1024}, {"aspect_ratio": "5:4"}, {"n": 10}):
        r = call(sim, "POST", "/v1/image_generation", {"model": "image-01", "prompt": "x", **extra})
        assert r.json()["base_resp"]["status_code"] == 2013, extra
