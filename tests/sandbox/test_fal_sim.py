"""The fal.ai simulator, driven through the official fal-client over real HTTP."""

from __future__ import annotations

import base64
import io
import json
import time
from types import SimpleNamespace

import fal_client
import httpx
import pytest
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread

SCHNELL = "fal-ai/flux/schnell"
SEEDREAM = "fal-ai/bytedance/seedream/v4.5/text-to-image"
KEY = {"Authorization": "Key sim-key-id:sim-key-secret"}


def fetch_image(url: str) -> Image.Image:
    if url.startswith("data:"):
        data = base64.b64decode(url.split(",", 1)[1])
    else:
        resp = httpx.get(url, timeout=30)
        resp.raise_for_status()
        data = resp.content
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_subscribe_returns_real_images_and_walks_the_queue(sim: SimulatorThread, fal: fal_client.SyncClient) -> None:
    updates: list[fal_client.Status] = []
    result = fal.subscribe(SCHNELL, {"prompt": "a lighthouse [sim:job=400]", "image_size": "landscape_16_9",
                                     "num_images": 2, "seed": 42}, with_logs=True, on_queue_update=updates.append)
    assert [type(u) for u in updates][-1] is fal_client.Completed
    assert {fal_client.Queued, fal_client.InProgress} <= {type(u) for u in updates}
    completed = updates[-1]
    assert isinstance(completed, fal_client.Completed) and completed.logs and completed.metrics["inference_time"] > 0
    assert result["seed"] == 42 and result["has_nsfw_concepts"] == [False, False]
    assert result["prompt"] == "a lighthouse [sim:job=400]" and result["timings"]["inference"] > 0
    images = result["images"]
    assert len(images) == 2 and images[0]["url"] != images[1]["url"]
    for item in images:
        assert (item["width"], item["height"], item["content_type"]) == (1024, 576, "image/jpeg")
        assert item["url"].startswith(sim.base_url + "/fal/files/")
        picture = fetch_image(item["url"])
        assert picture.size == (1024, 576) and picture.format == "JPEG"
    paths = [(e["method"], e["path"]) for e in sim.requests("fal")]
    assert paths[0] == ("POST", f"/fal/queue/{SCHNELL}")
    request_id = sim.requests("fal")[0]["request_id"]
    # status and result URLs drop the app's sub path (/schnell), as fal's queue does
    assert ("GET", f"/fal/queue/fal-ai/flux/requests/{request_id}/status") in paths
    assert paths[-1] == ("GET", f"/fal/queue/fal-ai/flux/requests/{request_id}")
    assert sim.requests("fal")[0]["headers"]["authorization"] == "Key sim-key-id:sim-key-secret"


def test_submit_status_result_with_a_deep_app_id(sim: SimulatorThread, fal: fal_client.SyncClient) -> None:
    handle = fal.submit(SEEDREAM, {"prompt": "a red fox [sim:job=800]"})
    root = f"{sim.base_url}/fal/queue/fal-ai/bytedance/requests/{handle.request_id}"
    assert (handle.response_url, handle.status_url, handle.cancel_url) == (root, root + "/status", root + "/cancel")
    first = handle.status()
    assert isinstance(first, fal_client.Queued) and 0 <= first.position <= 3
    with pytest.raises(fal_client.FalClientHTTPError) as early:
        fal.result(SEEDREAM, "x" * 8)
    assert early.value.status_code == 404
    seen: set[type] = set()
    while not isinstance(status := fal.status(SEEDREAM, handle.request_id, with_logs=True), fal_client.Completed):
        seen.add(type(status))
        time.sleep(0.05)
    assert fal_client.InProgress in seen and status.logs
    result = fal.result(SEEDREAM, handle.request_id)  # the SDK rebuilds owner/alias URLs from the app id
    assert result == handle.get()
    image = result["images"][0]
    assert (image["width"], image["height"], image["content_type"]) == (2048, 2048, "image/png")
    assert fetch_image(image["url"]).size == (2048, 2048)


def test_cancel_is_logged_and_ends_the_request(sim: SimulatorThread, fal: fal_client.SyncClient) -> None:
    handle = fal.submit(SCHNELL, {"prompt": "slow one [sim:job=3000]"})
    handle.cancel()
    cancels = [e for e in sim.requests("fal") if e["method"] == "PUT"]
    assert len(cancels) == 1 and cancels[0]["path"].endswith(f"/requests/{handle.request_id}/cancel")
    assert cancels[0]["cancel"] == handle.request_id
    status = handle.status()
    assert isinstance(status, fal_client.Completed) and status.error_type == "request_cancelled"
    with pytest.raises(fal_client.FalClientHTTPError) as err:
        handle.get()
    assert err.value.status_code == 400
    raw = httpx.put(handle.cancel_url, headers=KEY)
    assert raw.status_code == 202 and raw.json() == {"status": "CANCELLATION_REQUESTED"}
    done = fal.submit(SCHNELL, {"prompt": "quick [sim:job=0]"})
    done.get()
    with pytest.raises(fal_client.FalClientHTTPError) as late:
        done.cancel()
    assert late.value.status_code == 400 and late.value.response.json() == {"status": "ALREADY_COMPLETED"}


def test_run_gemini_app_with_aspect_ratio_and_sync_mode(fal: fal_client.SyncClient) -> None:
    result = fal.run("fal-ai/gemini-3-pro-image-preview",
                     {"prompt": "a market [sim:job=0]", "aspect_ratio": "16:9", "resolution": "2K",
                      "sync_mode": True, "num_images": 1})
    assert set(result) == {"images", "description"}
    image = result["images"][0]
    assert image["url"].startswith("data:image/png;base64,")
    assert fetch_image(image["url"]).size == (2752, 1536) == (image["width"], image["height"])


@pytest.mark.parametrize(("app", "args", "expected"), [
    (SCHNELL, {}, (1024, 768, "JPEG")),
    (SCHNELL, {"image_size": "square_hd"}, (1024, 1024, "JPEG")),
    (SCHNELL, {"image_size": "square", "output_format": "png"}, (512, 512, "PNG")),
    (SCHNELL, {"image_size": "portrait_4_3"}, (768, 1024, "JPEG")),
    (SCHNELL, {"image_size": "portrait_16_9"}, (576, 1024, "JPEG")),
    (SCHNELL, {"image_size": {"width": 1000, "height": 600}}, (1000, 600, "JPEG")),
    ("fal-ai/flux-2-max", {"image_size": "landscape_16_9", "output_format": "webp"}, (1024, 576, "WEBP")),
    ("fal-ai/qwen-image", {"image_size": "landscape_4_3"}, (1024, 768, "PNG")),
    (SEEDREAM, {"image_size": "auto_4K"}, (4096, 4096, "PNG")),
    ("fal-ai/imagen4/preview", {"aspect_ratio": "9:16"}, (768, 1408, "PNG")),
    ("fal-ai/imagen4/preview", {"aspect_ratio": "16:9", "resolution": "2K"}, (2816, 1536, "PNG")),
    ("fal-ai/gemini-3-pro-image-preview", {"aspect_ratio": "auto"}, (1024, 1024, "PNG")),
    ("fal-ai/some-new/app", {"image_size": "square_hd"}, (1024, 1024, "JPEG")),
])
def test_sizes_and_formats(fal: fal_client.SyncClient, app: str, args: dict[str, object],
                           expected: tuple[int, int, str]) -> None:
    result = fal.run(app, {"prompt": "size check [sim:job=0]", **args})
    image = fetch_image(result["images"][0]["url"])
    assert (*image.size, image.format) == expected


def test_safety_checker_blacks_out_flagged_images(fal: fal_client.SyncClient) -> None:
    result = fal.subscribe(SCHNELL, {"prompt": "forbidden [sim:safety] [sim:job=0]", "image_size": "square"})
    assert result["has_nsfw_concepts"] == [True]
    image = fetch_image(result["images"][0]["url"]).convert("RGB")
    assert image.size == (512, 512) and image.getextrema() == ((0, 0), (0, 0), (0, 0))
    unchecked = fal.run(SCHNELL, {"prompt": "forbidden [sim:safety] [sim:job=0]", "enable_safety_checker": False})
    assert unchecked["has_nsfw_concepts"] == [False]


def test_content_policy_422_on_result(fal: fal_client.SyncClient) -> None:
    handle = fal.submit(SCHNELL, {"prompt": "forbidden [sim:safety-422] [sim:job=0]"})
    with pytest.raises(fal_client.FalClientHTTPError) as err:
        handle.get()
    assert err.value.status_code == 422
    detail = err.value.response.json()["detail"]
    assert detail[0]["type"] == "content_policy_violation" and detail[0]["loc"] == ["body", "prompt"]
    assert err.value.response_headers["x-fal-retryable"] == "false"


def test_validation_errors_at_submit(fal: fal_client.SyncClient) -> None:
    with pytest.raises(fal_client.FalClientHTTPError) as injected:
        fal.submit(SCHNELL, {"prompt": "x [sim:422]"})
    assert injected.value.status_code == 422
    assert injected.value.response.json()["detail"][0]["loc"] == ["body", "image_size"]
    for args, loc in (({"image_size": "huge"}, "image_size"), ({"num_images": 9}, "num_images"),
                      ({"output_format": "gif"}, "output_format"), ({}, "prompt")):
        body = {"prompt": "x", **args} if loc != "prompt" else {}
        with pytest.raises(fal_client.FalClientHTTPError) as err:
            fal.submit(SCHNELL, body)
        assert err.value.status_code == 422
        assert err.value.response.json()["detail"][0]["loc"] == ["body", loc], args


def test_job_error_completes_then_result_times_out(fal: fal_client.SyncClient) -> None:
    handle = fal.submit(SCHNELL, {"prompt": "x [sim:job-error] [sim:job=0]"})
    status = handle.status()
    assert isinstance(status, fal_client.Completed)
    assert (status.error, status.error_type) == ("Request timed out", "request_timeout")
    with pytest.raises(fal_client.FalClientHTTPError) as err:
        handle.get()
    assert err.value.status_code == 504 and err.value.error_type == "request_timeout"
    assert err.value.response_headers["x-fal-retryable"] == "true"
    assert err.value.response_headers["x-fal-error-type"] == "request_timeout"


def test_submit_errors(sim: SimulatorThread, fal: fal_client.SyncClient, util: SimpleNamespace) -> None:
    for kind, code, error_type in (("500", 500, "internal_error"), ("503", 503, "runner_scheduling_failure")):
        with pytest.raises(fal_client.FalClientHTTPError) as err:
            fal.submit(SCHNELL, {"prompt": f"x [sim:{kind}]"})
        assert err.value.status_code == code and err.value.error_type == error_type
    status, headers, raw = util.http("POST", sim.url(f"/fal/queue/{SCHNELL}"), {"prompt": "x [sim:429]"}, KEY)
    assert status == 429 and "detail" in json.loads(raw) and headers["x-fal-retryable"] == "true"
    sim.reset()
    sim.inject("429", protocol="fal")  # fal-client retries a 429 by itself
    assert fal.subscribe(SCHNELL, {"prompt": "retried [sim:job=0]"})["images"]
    assert [e["method"] for e in sim.requests("fal")][:2] == ["POST", "POST"]
    with pytest.raises(json.JSONDecodeError):
        fal.submit(SCHNELL, {"prompt": "x [sim:malformed]"})
    sim.inject("drop", protocol="fal")  # a dropped connection is retried by fal-client too
    assert fal.run(SCHNELL, {"prompt": "after a drop [sim:job=0]"})["images"]
    with pytest.raises(httpx.TransportError):
        httpx.post(sim.url(f"/fal/run/{SCHNELL}"), json={"prompt": "x [sim:drop]"}, headers=KEY)


def test_auth(sim: SimulatorThread, fal: fal_client.SyncClient, util: SimpleNamespace) -> None:
    status, _, raw = util.http("POST", sim.url(f"/fal/queue/{SCHNELL}"), {"prompt": "x"})
    assert status == 401 and "detail" in json.loads(raw)
    bad = fal_client.SyncClient(key="bad-key:secret")
    with pytest.raises(fal_client.FalClientHTTPError) as err:
        bad.submit(SCHNELL, {"prompt": "x"})
    bad._client.close()
    assert err.value.status_code == 401 and str(err.value) == "No user found for Key ID and Secret"


def test_status_logs_param_and_job_time_config(sim: SimulatorThread, util: SimpleNamespace) -> None:
    sim.set_job_ms(50)
    assert sim.control("config")["config"]["job_ms"] == 50
    _, _, raw = util.http("POST", sim.url(f"/fal/queue/{SCHNELL}"), {"prompt": "quick"}, KEY)
    handle = json.loads(raw)
    assert handle["queue_position"] >= 0 and handle["status_url"].startswith(sim.base_url)
    time.sleep(0.08)
    _, _, plain = util.http("GET", handle["status_url"], None, KEY)
    _, _, logged = util.http("GET", handle["status_url"] + "?logs=1", None, KEY)
    assert json.loads(plain)["status"] == "COMPLETED" and json.loads(plain)["logs"] is None
    assert [line["message"] for line in json.loads(logged)["logs"]] == ["Generating 1 image(s)", "Done"]
    sim.reset()
    assert sim.control("config")["config"]["job_ms"] == 300
    status, _, _ = util.http("GET", handle["status_url"], None, KEY)
    assert status == 404  # reset forgets jobs
