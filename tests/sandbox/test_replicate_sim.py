"""The Replicate simulator, driven through the official replicate-python client over HTTPS."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ModelError, ReplicateError
from replicate.helpers import FileOutput

from mediagate.sandbox.replicate_predictions import NSFW_ERROR, version_id
from mediagate.sandbox.testing import SimulatorThread

SCHNELL = "black-forest-labs/flux-schnell"
TOKEN = {"Authorization": "Bearer r8_sandbox"}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def raw(sim: SimulatorThread, method: str, path: str, body: Any = None,
        headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(verify=sim.client_ssl_context, timeout=30) as client:
        return client.request(method, sim.url(path), json=body, headers=headers if headers is not None else TOKEN)


def test_run_flux_schnell_returns_file_outputs(tls_sim: SimulatorThread, rep: replicate.Client) -> None:
    output = rep.run(SCHNELL, input={"prompt": "a tram in the rain", "aspect_ratio": "16:9", "num_outputs": 2})
    assert isinstance(output, list) and len(output) == 2
    for item in output:
        assert isinstance(item, FileOutput) and item.url.startswith(tls_sim.base_url + "/replicate/files/")
        image = decode(item.read())
        assert image.size == (1344, 768) and image.format == "WEBP"
    create = tls_sim.requests("replicate")[0]
    assert create["path"] == f"/replicate/v1/models/{SCHNELL}/predictions"
    assert create["headers"]["prefer"] == "wait" and create["headers"]["authorization"] == "Bearer r8_sandbox"
    assert create["json"]["input"]["aspect_ratio"] == "16:9"


@pytest.mark.parametrize(("model", "inputs", "expected"), [
    (SCHNELL, {}, (1024, 1024, "WEBP")),
    (SCHNELL, {"aspect_ratio": "21:9", "megapixels": "0.25", "output_format": "png"}, (768, 320, "PNG")),
    (SCHNELL, {"aspect_ratio": "4:3", "output_format": "jpg"}, (1152, 896, "JPEG")),
    ("black-forest-labs/flux-dev", {"aspect_ratio": "4:5"}, (896, 1088, "WEBP")),
    ("black-forest-labs/flux-dev", {"aspect_ratio": "9:21", "megapixels": "0.25"}, (320, 768, "WEBP")),
    ("bytedance/seedream-4.5", {"aspect_ratio": "16:9"}, (2560, 1440, "JPEG")),
    ("qwen/qwen-image", {"aspect_ratio": "16:9"}, (1664, 928, "WEBP")),
])
def test_list_output_sizes(rep: replicate.Client, model: str, inputs: dict[str, Any],
                           expected: tuple[int, int, str]) -> None:
    output = rep.run(model, input={"prompt": "size check [sim:job=0]", **inputs})
    assert isinstance(output, list) and len(output) == 1
    image = decode(output[0].read())
    assert (*image.size, image.format) == expected


@pytest.mark.parametrize(("model", "inputs", "expected"), [
    ("black-forest-labs/flux-1.1-pro", {"aspect_ratio": "3:2"}, (1216, 832)),
    ("black-forest-labs/flux-1.1-pro", {"aspect_ratio": "custom", "width": 1000, "height": 700}, (992, 704)),
    ("black-forest-labs/flux-2-max", {}, (1024, 1024)),
    ("black-forest-labs/flux-2-max", {"aspect_ratio": "custom", "width": 1500, "height": 1000}, (1504, 1008)),
])
def test_single_url_output_models(rep: replicate.Client, model: str, inputs: dict[str, Any],
                                  expected: tuple[int, int]) -> None:
    output = rep.run(model, input={"prompt": "one image [sim:job=0]", **inputs})
    assert isinstance(output, FileOutput)
    assert decode(output.read()).size == expected


def test_create_wait_reload_and_metrics(tls_sim: SimulatorThread, rep: replicate.Client) -> None:
    prediction = rep.predictions.create(version=version_id("black-forest-labs/flux-dev"),
                                        input={"prompt": "a kite [sim:job=400]", "num_outputs": 1})
    assert prediction.status == "starting" and prediction.output is None
    assert prediction.urls["get"] == f"{tls_sim.base_url}/replicate/v1/predictions/{prediction.id}"
    assert prediction.model == "black-forest-labs/flux-dev"
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.error is None
    assert isinstance(prediction.output, list) and prediction.output[0].startswith("https://")
    assert prediction.metrics and prediction.metrics["predict_time"] > 0
    assert prediction.completed_at and prediction.started_at and prediction.created_at
    statuses = {e["path"] for e in tls_sim.requests("replicate") if e["method"] == "GET"}
    assert statuses == {f"/replicate/v1/predictions/{prediction.id}"}
    by_model = rep.models.predictions.create(model=SCHNELL, input={"prompt": "x [sim:job=0]"})
    by_model.wait()
    assert by_model.status == "succeeded" and by_model.version == "hidden"


def test_prefer_wait_times_out_to_an_unfinished_prediction(tls_sim: SimulatorThread) -> None:
    start = time.perf_counter()
    resp = raw(tls_sim, "POST", f"/replicate/v1/models/{SCHNELL}/predictions",
               {"input": {"prompt": "slow [sim:job=3000]"}}, {**TOKEN, "Prefer": "wait=1"})
    assert 1.0 <= time.perf_counter() - start < 2.5
    body = resp.json()
    assert resp.status_code == 201 and body["status"] == "processing" and body["output"] is None
    assert resp.headers["location"] == body["urls"]["get"]
    quick = raw(tls_sim, "POST", f"/replicate/v1/models/{SCHNELL}/predictions",
                {"input": {"prompt": "quick [sim:job=100]"}}, {**TOKEN, "Prefer": "wait"})
    assert quick.status_code == 201 and quick.json()["status"] == "succeeded" and len(quick.json()["output"]) == 1


def test_cancel(tls_sim: SimulatorThread, rep: replicate.Client) -> None:
    prediction = rep.models.predictions.create(model=SCHNELL, input={"prompt": "slow [sim:job=3000]"})
    prediction.cancel()
    prediction.reload()
    assert prediction.status == "canceled" and prediction.output is None and prediction.completed_at
    cancels = [e for e in tls_sim.requests("replicate") if e["path"].endswith("/cancel")]
    assert len(cancels) == 1 and cancels[0]["method"] == "POST" and cancels[0]["cancel"] == prediction.id


def test_nsfw_and_failures_are_failed_predictions(rep: replicate.Client) -> None:
    with pytest.raises(ModelError) as nsfw:
        rep.run(SCHNELL, input={"prompt": "forbidden [sim:safety] [sim:job=0]"})
    assert nsfw.value.prediction.status == "failed" and nsfw.value.prediction.error == NSFW_ERROR
    assert str(nsfw.value) == NSFW_ERROR
    with pytest.raises(ModelError) as failed:
        rep.run(SCHNELL, input={"prompt": "x [sim:fail] [sim:job=0]"})
    assert failed.value.prediction.error and failed.value.prediction.error != NSFW_ERROR


def test_http_errors(tls_sim: SimulatorThread, rep: replicate.Client) -> None:
    with pytest.raises(ReplicateError) as throttled:
        rep.run(SCHNELL, input={"prompt": "x [sim:429]"})
    assert throttled.value.status == 429
    assert throttled.value.detail == "Request was throttled. Expected available in 1 second."
    resp = raw(tls_sim, "POST", f"/replicate/v1/models/{SCHNELL}/predictions", {"input": {"prompt": "x [sim:429]"}})
    assert resp.headers["retry-after"] == "1" and resp.json() == {"detail": throttled.value.detail, "status": 429}
    for prompt, status in (("x [sim:500]", 500), ("x [sim:503]", 503), ("x [sim:422]", 422)):
        with pytest.raises(ReplicateError) as err:
            rep.run(SCHNELL, input={"prompt": prompt})
        assert err.value.status == status and err.value.detail
    with pytest.raises(ReplicateError) as invalid:
        rep.run(SCHNELL, input={"prompt": "x", "aspect_ratio": "7:3"})
    assert invalid.value.status == 422 and invalid.value.title == "Input validation failed"
    body = raw(tls_sim, "POST", f"/replicate/v1/models/{SCHNELL}/predictions",
               {"input": {"prompt": "x", "num_outputs": 9}}).json()
    assert body["invalid_fields"] == [{"type": "number_lte", "field": "input.num_outputs",
                                       "description": "Must be less than or equal to 4"}]
    with pytest.raises(json.JSONDecodeError):
        rep.run(SCHNELL, input={"prompt": "x [sim:malformed]"})
    with pytest.raises(httpx.TransportError):  # replicate-python does not retry a POST
        rep.run(SCHNELL, input={"prompt": "x [sim:drop]"})


def test_auth_and_lookup(tls_sim: SimulatorThread) -> None:
    bad = replicate.Client(api_token="bad-token", base_url=tls_sim.base_url + "/replicate",
                           transport=httpx.HTTPTransport(verify=tls_sim.client_ssl_context))
    with pytest.raises(ReplicateError) as err:
        bad.run(SCHNELL, input={"prompt": "x"})
    bad._client.close()
    assert err.value.status == 401 and err.value.title == "Unauthenticated"
    missing = raw(tls_sim, "POST", f"/replicate/v1/models/{SCHNELL}/predictions", {"input": {"prompt": "x"}}, {})
    assert missing.status_code == 401 and missing.headers["content-type"].startswith("application/problem+json")
    legacy = raw(tls_sim, "POST", "/replicate/v1/predictions",
                 {"version": f"{SCHNELL}:{version_id(SCHNELL)}", "input": {"prompt": "x [sim:job=0]"}},
                 {"Authorization": "Token r8_legacy"})
    assert legacy.status_code == 201 and legacy.json()["model"] == SCHNELL
    unknown_version = raw(tls_sim, "POST", "/replicate/v1/predictions", {"version": "0" * 64, "input": {}})
    assert unknown_version.status_code == 422
    assert raw(tls_sim, "GET", "/replicate/v1/predictions/nope").status_code == 404
