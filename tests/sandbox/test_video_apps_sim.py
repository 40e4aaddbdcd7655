"""fal and Replicate video apps (through fal-client and replicate-python), and the FLUX
Ultra / GPT Image 1.5 schemas the gateway's tests found wrong."""

from __future__ import annotations

import base64
import io
from types import SimpleNamespace
from typing import Any

import fal_client
import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ModelError, ReplicateError
from replicate.helpers import FileOutput

from mediagate.sandbox import video
from mediagate.sandbox.testing import SimulatorThread

KLING_T2V = "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"


def probe_url(url: str, sim: SimulatorThread | None = None) -> video.VideoInfo:
    resp = httpx.get(url, timeout=30, verify=sim.client_ssl_context if sim and sim.client_ssl_context else True)
    resp.raise_for_status()
    assert resp.headers["content-type"] == "video/mp4"
    return video.probe(resp.content)


def data_uri(util: SimpleNamespace, width: int, height: int) -> str:
    return "data:image/png;base64," + base64.b64encode(util.png_bytes(width, height)).decode()


def test_fal_kling_text_to_video_through_the_queue(sim: SimulatorThread, fal: fal_client.SyncClient) -> None:
    updates: list[Any] = []
    result = fal.subscribe(KLING_T2V, {"prompt": "a drifting sailboat [sim:job=300]", "duration": "5",
                                       "aspect_ratio": "9:16", "negative_prompt": "blur", "cfg_scale": 0.5},
                           with_logs=True, on_queue_update=updates.append)
    assert isinstance(updates[-1], fal_client.Completed)
    assert [line["message"] for line in updates[-1].logs] == ["Generating a video", "Done"]
    assert set(result) == {"video"}
    clip = result["video"]
    assert clip["content_type"] == "video/mp4" and clip["file_name"].endswith(".mp4") and clip["file_size"] > 0
    info = probe_url(clip["url"])
    assert (info.width, info.height) == (1080, 1920) and abs(info.duration - 5) <= 0.2
    request_id = sim.requests("fal")[0]["request_id"]
    assert ("GET", f"/fal/queue/fal-ai/kling-video/requests/{request_id}") in [
        (e["method"], e["path"]) for e in sim.requests("fal")]


@pytest.mark.parametrize(("app", "args", "expected"), [
    ("fal-ai/veo3.1", {"duration": "4s"}, (1280, 720, 4)),
    ("fal-ai/veo3.1/fast", {"aspect_ratio": "9:16", "resolution": "1080p", "duration": "4s"}, (1080, 1920, 4)),
    ("fal-ai/wan-25-preview/text-to-video", {"resolution": "480p", "aspect_ratio": "1:1"}, (624, 624, 5)),
])
def test_fal_video_sizes(fal: fal_client.SyncClient, app: str, args: dict[str, Any],
                         expected: tuple[int, int, int]) -> None:
    result = fal.run(app, {"prompt": "video size check [sim:job=0]", **args})
    info = probe_url(result["video"]["url"])
    assert (info.width, info.height) == expected[:2] and abs(info.duration - expected[2]) <= 0.2
    if app.startswith("fal-ai/wan"):
        assert isinstance(result["seed"], int) and result["actual_prompt"]


def test_fal_image_to_video_follows_the_image(fal: fal_client.SyncClient, util: SimpleNamespace) -> None:
    result = fal.run("fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
                     {"prompt": "make it move [sim:job=0]", "image_url": data_uri(util, 600, 1000)})
    info = probe_url(result["video"]["url"])
    assert (info.width, info.height) == (1080, 1920)  # portrait image -> the 9:16 frame
    with pytest.raises(fal_client.FalClientHTTPError) as missing:
        fal.run("fal-ai/kling-video/v2.5-turbo/pro/image-to-video", {"prompt": "x"})
    assert missing.value.status_code == 422
    assert missing.value.response.json()["detail"][0]["loc"] == ["body", "image_url"]


def test_fal_video_validation_and_safety(fal: fal_client.SyncClient) -> None:
    for app, args, loc in ((KLING_T2V, {"duration": 5}, "duration"), (KLING_T2V, {"duration": "7"}, "duration"),
                           ("fal-ai/veo3.1", {"aspect_ratio": "1:1"}, "aspect_ratio"),
                           ("fal-ai/veo3.1", {"resolution": "8k"}, "resolution")):
        with pytest.raises(fal_client.FalClientHTTPError) as err:
            fal.submit(app, {"prompt": "x", **args})
        assert err.value.status_code == 422 and err.value.response.json()["detail"][0]["loc"] == ["body", loc]
    handle = fal.submit("fal-ai/veo3.1", {"prompt": "forbidden [sim:safety] [sim:job=0]"})
    with pytest.raises(fal_client.FalClientHTTPError) as blocked:
        handle.get()
    assert blocked.value.status_code == 422
    assert blocked.value.response.json()["detail"][0]["type"] == "content_policy_violation"


def test_replicate_video_models(tls_sim: SimulatorThread, rep: replicate.Client, util: SimpleNamespace) -> None:
    output = rep.run("google/veo-3.1", input={"prompt": "a hummingbird [sim:job=100]", "duration": 4,
                                              "resolution": "720p", "aspect_ratio": "9:16"})
    assert isinstance(output, FileOutput) and output.url.endswith(".mp4")
    info = video.probe(output.read())
    assert (info.width, info.height) == (720, 1280) and abs(info.duration - 4) <= 0.2
    kling = rep.run("kwaivgi/kling-v2.1", input={"prompt": "wave [sim:job=0]", "mode": "pro",
                                                 "start_image": data_uri(util, 1024, 1024)})
    assert isinstance(kling, FileOutput)
    info = video.probe(kling.read())
    assert (info.width, info.height) == (1080, 1080) and abs(info.duration - 5) <= 0.2
    wan = rep.models.predictions.create(model="wan-video/wan-2.5-t2v",
                                        input={"prompt": "rain [sim:job=0]", "size": "832*480"})
    wan.wait()
    assert wan.status == "succeeded" and isinstance(wan.output, str) and wan.output.endswith(".mp4")
    assert wan.metrics and wan.metrics["video_output_duration_seconds"] == 5.0
    info = probe_url(wan.output, tls_sim)
    assert (info.width, info.height) == (832, 480)
    with pytest.raises(ReplicateError) as invalid:
        rep.run("google/veo-3.1", input={"prompt": "x", "duration": 5})
    assert invalid.value.status == 422
    with pytest.raises(ReplicateError) as no_image:
        rep.run("kwaivgi/kling-v2.1", input={"prompt": "x"})
    assert no_image.value.status == 422
    with pytest.raises(ModelError):
        rep.run("google/veo-3.1", input={"prompt": "forbidden [sim:safety] [sim:job=0]"})


ULTRA = [("21:9", (3136, 1344)), ("16:9", (2752, 1536)), ("4:3", (2368, 1792)), ("3:2", (2496, 1664)),
         ("1:1", (2048, 2048)), ("2:3", (1664, 2496)), ("3:4", (1792, 2368)), ("9:16", (1536, 2752)),
         ("9:21", (1344, 3136))]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("ratio", "size"), [ULTRA[0], ULTRA[4], ULTRA[8]])
def test_flux_ultra_sizes_on_fal(fal: fal_client.SyncClient, ratio: str, size: tuple[int, int]) -> None:
    result = fal.run("fal-ai/flux-pro/v1.1-ultra", {"prompt": "ultra [sim:job=0]", "aspect_ratio": ratio,
                                                    "sync_mode": True})
    image = result["images"][0]
    assert (image["width"], image["height"]) == size
    assert decode(base64.b64decode(image["url"].split(",", 1)[1])).size == size


def test_flux_ultra_defaults_and_replicate(fal: fal_client.SyncClient, rep: replicate.Client) -> None:
    default = fal.run("fal-ai/flux-pro/v1.1-ultra", {"prompt": "default [sim:job=0]", "resolution": "2K"})
    assert (default["images"][0]["width"], default["images"][0]["height"]) == (2752, 1536)  # 16:9 on fal
    output = rep.run("black-forest-labs/flux-1.1-pro-ultra", input={"prompt": "u [sim:job=0]", "aspect_ratio": "3:4"})
    assert isinstance(output, FileOutput)
    image = decode(output.read())
    assert image.size == (1792, 2368) and image.format == "JPEG"
    square = rep.run("black-forest-labs/flux-1.1-pro-ultra", input={"prompt": "u [sim:job=0]"})
    assert decode(square.read()).size == (2048, 2048)  # type: ignore[union-attr]  # Replicate defaults to 1:1
    with pytest.raises(ReplicateError):
        rep.run("black-forest-labs/flux-1.1-pro-ultra", input={"prompt": "u", "aspect_ratio": "5:4"})


def test_fal_gpt_image_1_5_size_enum(fal: fal_client.SyncClient) -> None:
    result = fal.run("fal-ai/gpt-image-1.5", {"prompt": "gpt image [sim:job=0]", "image_size": "1536x1024",
                                              "quality": "low", "background": "transparent", "num_images": 2,
                                              "output_format": "webp", "sync_mode": True})
    assert set(result) == {"images"} and len(result["images"]) == 2
    image = decode(base64.b64decode(result["images"][0]["url"].split(",", 1)[1]))
    assert image.size == (1536, 1024) and image.format == "WEBP" and image.mode == "RGBA"
    default = fal.run("fal-ai/gpt-image-1.5", {"prompt": "default [sim:job=0]"})
    assert (default["images"][0]["width"], default["images"][0]["content_type"]) == (1024, "image/png")
    for args, loc in (({"image_size": "square_hd"}, "image_size"), ({"image_size": {"width": 1024, "height": 1024}},
                                                                    "image_size"),
                      ({"quality": "ultra"}, "quality"), ({"num_images": 5}, "num_images"),
                      ({"output_format": "gif"}, "output_format")):
        with pytest.raises(fal_client.FalClientHTTPError) as err:
            fal.submit("fal-ai/gpt-image-1.5", {"prompt": "x", **args})
        assert err.value.status_code == 422 and err.value.response.json()["detail"][0]["loc"] == ["body", loc], args
