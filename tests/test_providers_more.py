"""Together AI, Hugging Face, Luma AI and Model Studio through the gateway: the openai SDK in front, each provider's
simulator behind, forced-provider prefixes for every new slug, errors and cancels mapped by the YAML alone."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread
from tests.test_videos import probe, wait

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0, timeout=60)


def image_of(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def meta(result: Any) -> dict[str, Any]:
    extra = result.model_extra or {}
    return dict(extra["metadata"])




# model, request extras, provider, expected size, expected simulator path
IMAGE_CASES = [
    ("together/flux.1-schnell", {"size": "1344x768"}, "together", (1344, 768), "/together/v1/images/generations"),
    ("together/flux.1-dev", {"aspect_ratio": "21:9"}, "together", (1536, 640), "/together/v1/images/generations"),
    ("together/flux-1.1-pro", {"size": "1024x1024"}, "together", (1024, 1024), "/together/v1/images/generations"),
    ("flux.1-krea-dev", {"size": "1280x720"}, "together", (1280, 720), "/together/v1/images/generations"),
    ("huggingface/flux.1-schnell", {"aspect_ratio": "9:16"}, "huggingface", (768, 1344),
     "/huggingface/hf-inference/models/black-forest-labs/FLUX.1-schnell"),
    ("huggingface/flux.1-dev", {}, "huggingface", (1024, 1024), "/huggingface/hf-inference/models/black-forest-labs/FLUX.1-dev"),
    ("huggingface/sd3.5-large", {"aspect_ratio": "3:2"}, "huggingface", (1216, 832),
     "/huggingface/hf-inference/models/stabilityai/stable-diffusion-3.5-large"),
    ("photon-1", {"aspect_ratio": "16:9"}, "luma", (1920, 1080), "/luma/dream-machine/v1/generations/image"),
    ("luma/photon-flash-1", {"size": "1024x1024"}, "luma", (1536, 1536), "/luma/dream-machine/v1/generations/image"),
    ("wan-2.5-t2i", {"aspect_ratio": "16:9"}, "dashscope", (1696, 960),
     "/dashscope/api/v1/services/aigc/text2image/image-synthesis"),
    ("dashscope/wan-2.2-t2i-flash", {"size": "768x1344"}, "dashscope", (768, 1344),
     "/dashscope/api/v1/services/aigc/text2image/image-synthesis"),
    ("qwen-image-plus", {"aspect_ratio": "4:3"}, "dashscope", (1472, 1140),
     "/dashscope/api/v1/services/aigc/text2image/image-synthesis"),
    ("dashscope/qwen-image", {"aspect_ratio": "16:9"}, "dashscope", (1664, 928),
     "/dashscope/api/v1/services/aigc/text2image/image-synthesis"),
]


@pytest.mark.parametrize(("model", "extra", "provider", "size", "path"), IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_openai_sdk_images_through_each_new_provider(gateway: GatewayThread, sim_clean: SimulatorThread, model: str,
                                                     extra: dict[str, Any], provider: str, size: tuple[int, int],
                                                     path: str) -> None:
    r = client(gateway).images.generate(model=model, prompt="a harbour at dawn [sim:job=50]",
                                        response_format="b64_json", extra_body=extra)
    assert r.data and r.data[0].b64_json
    image = image_of(r.data[0].b64_json)
    assert image.size == size
    m = meta(r)
    assert m["provider"] == provider and [a["provider"] for a in m["attempts"]] == [provider]
    assert sim_clean.requests(provider)[0]["path"] == path


def test_together_request_carries_the_shape_steps_and_asks_for_base64(gateway: GatewayThread,
                                                                      sim_clean: SimulatorThread) -> None:
    r = client(gateway).images.generate(model="together/flux.1-schnell", prompt="a kite", n=2, size="1344x768",
                                        response_format="b64_json", extra_body={"num_inference_steps": 3, "seed": 5})
    assert len(r.data) == 2
    sent = sim_clean.requests("together")[0]["json"]
    assert sent == {"model": "black-forest-labs/FLUX.1-schnell", "prompt": "a kite", "width": 1344, "height": 768,
                    "n": 2, "steps": 3, "seed": 5, "response_format": "base64"}   # jpeg: Together's default
    assert meta(r)["cost"] == pytest.approx(2 * 0.0027 * 1)   # 1344x768 rounds up to 1 MP each


def test_webp_from_together_is_made_by_the_gateway_and_said_so(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = client(gateway).images.generate(model="together/flux.1-schnell", prompt="a kite", response_format="b64_json",
                                        extra_body={"output_format": "webp"})
    assert image_of(r.data[0].b64_json).format == "WEBP"  # type: ignore[arg-type]
    assert sim_clean.requests("together")[0]["json"]["output_format"] == "jpeg"   # the route's default, converted
    assert any(a["param"] == "output_format" for a in meta(r)["adjustments"])


def test_dashscope_fans_out_n_above_one_for_qwen_and_bills_per_image(gateway: GatewayThread,
                                                                     sim_clean: SimulatorThread) -> None:
    r = client(gateway).images.generate(model="qwen-image-plus", prompt="lanterns [sim:job=20]", n=2,
                                        response_format="b64_json")
    assert len(r.data) == 2 and meta(r)["cost"] == pytest.approx(0.06)
    submits = [q for q in sim_clean.requests("dashscope") if q["method"] == "POST"]
    assert len(submits) == 2 and all(q["json"]["parameters"]["n"] == 1 for q in submits)
    assert all(q["headers"]["x-dashscope-async"] == "enable" for q in submits)
    polls = [q for q in sim_clean.requests("dashscope") if q["method"] == "GET"]
    assert polls and "x-dashscope-async" not in polls[0]["headers"]     # the async header goes on the submit only


@pytest.mark.parametrize(("model", "provider"), [("photon-1", "luma"), ("wan-2.5-t2i", "dashscope"),
                                                 ("together/flux.1-dev", "together"), ("huggingface/sd3.5-large", "huggingface")])
def test_safety_outcomes_are_content_policy_400s(gateway: GatewayThread, sim_clean: SimulatorThread, model: str,
                                                 provider: str) -> None:
    sim_clean.inject("safety", protocol=provider)
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).images.generate(model=model, prompt="x [sim:job=20]")
    assert err.value.code == "content_policy_violation"


def test_withheld_dashscope_images_are_a_content_policy_error(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).images.generate(model="wan-2.2-t2i-flash", prompt="x [sim:noimage] [sim:job=20]")
    assert err.value.code == "content_policy_violation"


def test_a_rate_limited_hf_route_falls_back(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    for protocol in ("replicate", "fal", "together", "huggingface"):   # 429: not taken, the next route may run
        sim_clean.inject("429", protocol=protocol)
    r = httpx.post(gateway.base_url + "/v1/images/generations", timeout=60,
                   json={"model": "flux.1-dev", "prompt": "a mill", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    attempts = [(a["provider"], a["outcome"]) for a in r.json()["metadata"]["attempts"]]
    assert ("huggingface", "rate_limit_exceeded") in attempts, attempts
    assert attempts[-1] == ("huggingface-together", "ok"), attempts


def test_a_luma_generation_is_deleted_when_the_client_leaves(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.base_url + "/v1/images/generations", timeout=0.5,
                   json={"model": "photon-1", "prompt": "slow [sim:job=5000]"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(q["method"] == "DELETE" for q in sim_clean.requests("luma")):
        time.sleep(0.05)
    assert any(q["method"] == "DELETE" for q in sim_clean.requests("luma"))


VIDEO_CASES = [
    ("ray-flash-2", {"seconds": "5", "size": "960x540"}, "luma", (960, 540), 5),
    ("luma/ray-2", {"seconds": "9", "size": "540x960"}, "luma", (540, 960), 9),
    ("wan-2.2", {"seconds": "5", "size": "832x480"}, "dashscope", (832, 480), 5),
    ("wan-2.1-turbo", {"seconds": "5", "size": "480x832"}, "dashscope", (480, 832), 5),
    ("dashscope/wan-2.5", {"seconds": "5", "size": "832x480"}, "dashscope", (832, 480), 5),
]


@pytest.mark.parametrize(("model", "extra", "provider", "size", "seconds"), VIDEO_CASES, ids=[c[0] for c in VIDEO_CASES])
def test_openai_sdk_videos_through_luma_and_dashscope(gateway: GatewayThread, sim_clean: SimulatorThread, model: str,
                                                      extra: dict[str, str], provider: str, size: tuple[int, int],
                                                      seconds: int) -> None:
    c = client(gateway)
    video = c.videos.create(model=model, prompt="a lantern festival [sim:job=200]", **extra)  # type: ignore[arg-type]
    done = wait(c, video.id)
    assert done.status == "completed", done.error
    width, height, length = probe(c.videos.download_content(video.id).read())
    assert (width, height) == size and abs(length - seconds) < 0.5
    assert done.model_extra["metadata"]["provider"] == provider
    submit = [q for q in sim_clean.requests(provider) if q["method"] == "POST"][0]
    if provider == "luma":
        assert submit["json"]["duration"] == f"{seconds}s" and submit["json"]["resolution"] == f"{min(size)}p"
    else:
        assert submit["json"]["parameters"]["size"] == f"{size[0]}*{size[1]}"
        assert submit["json"]["parameters"]["duration"] == seconds


def test_a_failed_ray_generation_reports_its_reason(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="ray-flash-2", prompt="x [sim:fail] [sim:job=100]", seconds="5", size="960x540")  # type: ignore[arg-type]
    done = wait(c, video.id)
    assert done.status == "failed" and done.error and "internal error" in done.error.message


@pytest.mark.parametrize(("model", "provider"), [
    ("together/flux.1-schnell", "together"), ("huggingface/flux.1-schnell", "huggingface"),
    ("luma/photon-1", "luma"), ("dashscope/wan-2.5-t2i", "dashscope"),
    ("huggingface-together/flux.1-schnell", "huggingface"),
])
def test_a_forced_provider_is_the_only_route_tried(gateway: GatewayThread, sim_clean: SimulatorThread, model: str,
                                                   provider: str) -> None:
    sim_clean.inject("500", protocol=provider)
    r = httpx.post(gateway.base_url + "/v1/images/generations", json={"model": model, "prompt": "x"}, timeout=60)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["type"] == "upstream_error"
    assert [q["protocol"] for q in sim_clean.requests()] == [provider]   # no other route was tried


def test_an_unknown_provider_prefix_names_the_model(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + "/v1/images/generations", json={"model": "luma/flux.1-schnell", "prompt": "x"},
                   timeout=60)
    assert r.status_code in (400, 404) and r.json()["error"]["param"] == "model"


def test_an_input_reference_is_luma_keyframe_0(gateway: GatewayThread,
                                                                     sim_clean: SimulatorThread) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (960, 540), (20, 90, 160)).save(buf, "PNG")
    c = client(gateway)
    video = c.videos.create(model="ray-flash-2", prompt="the scene comes alive [sim:job=100]", size="960x540",  # type: ignore[arg-type]
                            input_reference=("first.png", buf.getvalue(), "image/png"))
    assert wait(c, video.id).status == "completed"
    submit = [q for q in sim_clean.requests("luma") if q["method"] == "POST"][0]["json"]
    assert submit["keyframes"]["frame0"]["type"] == "image"
    assert submit["keyframes"]["frame0"]["url"].startswith("data:image/png;base64,")
    plain = c.videos.create(model="ray-flash-2", prompt="no reference [sim:job=100]", size="960x540")  # type: ignore[arg-type]
    assert wait(c, plain.id).status == "completed"
    assert "keyframes" not in [q for q in sim_clean.requests("luma") if q["method"] == "POST"][1]["json"]


def test_an_input_reference_goes_to_the_dashscope_image_to_video_model(gateway: GatewayThread,
                                                                       sim_clean: SimulatorThread) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (720, 1280), (20, 90, 160)).save(buf, "PNG")
    c = client(gateway)
    video = c.videos.create(model="dashscope/wan-2.5", prompt="it starts to rain [sim:job=100]", size="720x1280",  # type: ignore[arg-type]
                            seconds="5", input_reference=("first.png", buf.getvalue(), "image/png"))
    done = wait(c, video.id)
    assert done.status == "completed", done.error
    assert probe(c.videos.download_content(video.id).read())[:2] == (720, 1280)
    submit = [q for q in sim_clean.requests("dashscope") if q["method"] == "POST"][0]["json"]
    assert submit["model"] == "wan2.5-i2v-preview" and submit["input"]["img_url"].startswith("data:image/png;base64,")
    assert submit["parameters"] == {"resolution": "720P", "duration": 5}


def test_openai_sdk_edit_through_together_kontext(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1600, 900), (200, 120, 40)).save(buf, "PNG")
    r = client(gateway).images.edit(model="together/flux.1-kontext-pro", prompt="make it night",
                                    image=("day.png", buf.getvalue(), "image/png"), response_format="b64_json")
    assert r.data and image_of(r.data[0].b64_json).size == (1344, 768)  # type: ignore[arg-type]
    sent = sim_clean.requests("together")[0]["json"]
    assert sent["image_url"].startswith("data:image/png;base64,") and (sent["width"], sent["height"]) == (1344, 768)
    assert meta(r)["provider"] == "together" and meta(r)["cost"] == pytest.approx(0.04)


def test_together_through_the_hf_router_is_its_own_slug(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = client(gateway).images.generate(model="huggingface-together/flux.1-dev", prompt="a kite", size="1344x768",
                                        response_format="b64_json")
    assert image_of(r.data[0].b64_json).size == (1344, 768)  # type: ignore[arg-type]
    assert meta(r)["provider"] == "huggingface-together" and meta(r)["cost"] == pytest.approx(0.025)
    sent = sim_clean.requests("huggingface")[0]
    assert sent["path"] == "/huggingface/together/v1/images/generations"
    assert sent["json"]["model"] == "black-forest-labs/FLUX.1-dev"
