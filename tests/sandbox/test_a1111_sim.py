"""The AUTOMATIC1111 / Forge WebUI simulator over plain httpx."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread

TXT2IMG = "/a1111/sdapi/v1/txt2img"


@pytest.fixture
def webui(sim: SimulatorThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url + "/a1111", timeout=30) as client:
        yield client


def png(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def test_txt2img_batch(sim: SimulatorThread, webui: httpx.Client) -> None:
    resp = webui.post("/sdapi/v1/txt2img", json={"prompt": "a watermill", "negative_prompt": "blurry", "width": 640,
                                                 "height": 384, "steps": 20, "batch_size": 2, "n_iter": 2,
                                                 "seed": 7, "sampler_name": "Euler a", "cfg_scale": 6.5})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"images", "parameters", "info"}
    assert len(body["images"]) == 4
    for data in body["images"]:
        image = png(data)
        assert image.size == (640, 384) and image.format == "PNG"
    info = json.loads(body["info"])
    assert info["seed"] == 7 and info["all_seeds"] == [7, 8, 9, 10]
    assert (info["width"], info["height"], info["sampler_name"], info["steps"]) == (640, 384, "Euler a", 20)
    assert info["prompt"] == "a watermill" and len(info["infotexts"]) == 4 and "Seed: 8" in info["infotexts"][1]
    assert body["parameters"]["cfg_scale"] == 6.5 and body["parameters"]["batch_size"] == 2
    logged = sim.requests("a1111")
    assert [e["path"] for e in logged] == [TXT2IMG] and logged[0]["json"]["seed"] == 7


def test_defaults_and_size_rounding(webui: httpx.Client) -> None:
    default = webui.post("/sdapi/v1/txt2img", json={"prompt": "x"}).json()
    assert len(default["images"]) == 1 and png(default["images"][0]).size == (512, 512)
    assert json.loads(default["info"])["seed"] >= 0  # -1 means random
    rounded = webui.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 500, "height": "333"}).json()
    assert png(rounded["images"][0]).size == (496, 328)  # latent is size // 8: silently rounded down


def test_validation_422(webui: httpx.Client) -> None:
    resp = webui.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": "wide", "cfg_scale": "high"})
    assert resp.status_code == 422
    assert resp.json() == {"detail": [
        {"loc": ["body", "width"], "msg": "value is not a valid integer", "type": "type_error.integer"},
        {"loc": ["body", "cfg_scale"], "msg": "value is not a valid float", "type": "type_error.float"},
    ]}
    injected = webui.post("/sdapi/v1/txt2img", json={"prompt": "x [sim:422]"})
    assert injected.status_code == 422 and injected.json()["detail"][0]["loc"] == ["body", "width"]


def test_faults(sim: SimulatorThread, webui: httpx.Client) -> None:
    failed = webui.post("/sdapi/v1/txt2img", json={"prompt": "x [sim:500]"})
    assert failed.status_code == 500
    body = failed.json()
    assert set(body) == {"error", "detail", "body", "errors"} and body["error"] == "OutOfMemoryError"
    with pytest.raises(httpx.TransportError):
        webui.post("/sdapi/v1/txt2img", json={"prompt": "x [sim:drop]"})
    start = time.perf_counter()
    slow = webui.post("/sdapi/v1/txt2img", json={"prompt": "x [sim:latency=150]", "width": 64, "height": 64})
    assert slow.status_code == 200 and time.perf_counter() - start >= 0.15
    malformed = webui.post("/sdapi/v1/txt2img", json={"prompt": "x [sim:malformed]"})
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.text)
    assert webui.post("/sdapi/v1/txt2img", json={"prompt": "x [sim:429]"}).status_code == 200  # not a WebUI fault
    sim.inject("500", protocol="a1111")
    assert webui.post("/sdapi/v1/txt2img", json={"prompt": "queued"}).status_code == 500


def test_sd_models(webui: httpx.Client) -> None:
    models = webui.get("/sdapi/v1/sd-models").json()
    assert models and {"title", "model_name", "hash", "sha256", "filename", "config"} <= set(models[0])
