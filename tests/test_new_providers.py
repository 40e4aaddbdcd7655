"""The providers added for issue 12 (Azure OpenAI, xAI), each answering the openai SDK through the gateway on its
simulator, and the forced-provider prefix (`slug/model`) reaching that provider and no other."""

from __future__ import annotations

import base64
import io
import time

import httpx
import openai
import pytest
from PIL import Image

from mediagate.sandbox import video
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")  # the SDK's videos resource

# One model per provider slug this branch adds: `slug/model` must reach that provider and no other.
FORCED = [("azure", "gpt-image-2"), ("xai", "grok-imagine-image"), ("xai", "grok-imagine-image-quality")]


def sdk(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key="any", max_retries=0, timeout=120)


@pytest.mark.parametrize(("slug", "model"), FORCED)
def test_a_forced_provider_prefix_reaches_that_provider(gateway: GatewayThread, sim: SimulatorThread,
                                                        slug: str, model: str) -> None:
    raw = sdk(gateway).images.with_raw_response.generate(model=f"{slug}/{model}", prompt="a fox", response_format="b64_json")
    meta = (raw.parse().model_extra or {})["metadata"]
    assert raw.headers["x-mediagate-provider"] == slug
    assert [a["provider"] for a in meta["attempts"]] == [slug] and meta["model"] == model


def test_azure_images_and_edits_through_the_gateway(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = sdk(gateway)
    res = c.images.generate(model="azure/gpt-image-2", prompt="a poster", size="2048x1152", response_format="b64_json",
                            extra_body={"output_format": "webp"})
    im = Image.open(io.BytesIO(base64.b64decode(res.data[0].b64_json or "")))
    assert im.size == (2048, 1152) and im.format == "WEBP"
    buf = io.BytesIO()
    Image.new("RGB", (1024, 1536), (5, 5, 5)).save(buf, "PNG")
    edited = c.images.edit(model="azure/gpt-image-2", image=("in.png", buf.getvalue(), "image/png"), prompt="add a moon",
                           response_format="b64_json")
    assert Image.open(io.BytesIO(base64.b64decode(edited.data[0].b64_json or ""))).size == (1024, 1536)
    paths = [r["path"] for r in sim_clean.requests("azure")]
    assert paths == ["/azure/openai/deployments/gpt-image-2/images/generations",
                     "/azure/openai/deployments/gpt-image-2/images/edits"]


def test_xai_images_through_the_gateway(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    res = sdk(gateway).images.generate(model="grok-imagine-image", prompt="a fox", size="1792x1024", n=3,
                                       response_format="url")
    assert len(res.data) == 3 and res.size == "1408x768"
    got = httpx.get(res.data[0].url or "", timeout=30)
    assert got.status_code == 200 and Image.open(io.BytesIO(got.content)).size == (1408, 768)
    sent = sim_clean.requests("xai")[-1]["json"]
    assert (sent["aspect_ratio"], sent["resolution"], sent["n"], sent["response_format"]) == ("16:9", "1k", 3, "b64_json")


def test_xai_video_through_the_gateway(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = sdk(gateway)
    v = c.videos.create(model="grok-imagine-video", prompt="waves [sim:job=300]", size="720x1280",
                        seconds="4")  # type: ignore[arg-type]
    deadline = time.monotonic() + 60
    while (v := c.videos.retrieve(v.id)).status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert v.status == "completed", v
    data = c.videos.download_content(v.id).read()
    info = video.probe(data)
    assert (info.width, info.height) == (720, 1280) and abs(info.duration - 4) < 0.2
    sent = [r for r in sim_clean.requests("xai") if r["method"] == "POST"][-1]["json"]
    assert (sent["duration"], sent["aspect_ratio"], sent["resolution"]) == (4, "9:16", "720p")


def test_xai_video_moderation_fails_the_job_as_a_policy_violation(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("safety", 1, "xai")
    c = sdk(gateway)
    v = c.videos.create(model="grok-imagine-video", prompt="x [sim:job=50]")
    deadline = time.monotonic() + 60
    while (v := c.videos.retrieve(v.id)).status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert v.status == "failed" and v.error is not None and v.error.code == "content_policy_violation"


FORCED_RECRAFT = [("recraft", "recraft-v4"), ("recraft", "recraft-v3")]


@pytest.mark.parametrize(("slug", "model"), FORCED_RECRAFT)
def test_a_forced_recraft_prefix_reaches_recraft(gateway: GatewayThread, sim: SimulatorThread, slug: str, model: str) -> None:
    test_a_forced_provider_prefix_reaches_that_provider(gateway, sim, slug, model)


def test_recraft_svg_through_the_gateway_is_served_as_svg_without_running_scripts(gateway: GatewayThread,
                                                                                  sim_clean: SimulatorThread) -> None:
    c = sdk(gateway)
    raw = c.images.with_raw_response.generate(model="recraft-v4-vector", prompt="an owl icon", size="1536x768",
                                              response_format="url")
    res = raw.parse()
    extra = res.model_extra or {}
    assert res.size == "1536x768" and res.output_format == "svg"
    assert {"param": "output_format", "requested": None, "applied": "svg",
            "reason": "this model makes vector images: served as svg"} in extra["metadata"]["adjustments"]
    got = httpx.get(res.data[0].url or "", timeout=30)
    assert got.status_code == 200 and got.headers["content-type"].startswith("image/svg+xml")
    assert "sandbox" in got.headers["content-security-policy"] and got.headers["x-content-type-options"] == "nosniff"
    assert got.content.startswith(b"<?xml") and b'width="1536"' in got.content
    with pytest.raises(openai.BadRequestError) as err:
        c.images.generate(model="recraft-v4-vector", prompt="x", extra_body={"output_format": "png"})
    assert err.value.param == "output_format"
    assert [r["json"]["model"] for r in sim_clean.requests("recraft")] == ["recraftv4_vector"]   # the refusal sent nothing


def test_recraft_raster_styles_through_the_gateway(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    res = sdk(gateway).images.generate(model="recraft-v3", prompt="a harbour", size="1024x1536", response_format="b64_json",
                                       extra_body={"style": "realistic_image", "substyle": "hdr"})
    assert Image.open(io.BytesIO(base64.b64decode(res.data[0].b64_json or ""))).size == (1024, 1536)
    sent = sim_clean.requests("recraft")[-1]["json"]
    assert (sent["style"], sent["substyle"], sent["size"]) == ("realistic_image", "hdr", "1024x1536")


def test_xai_edit_through_the_gateway_from_the_openai_sdk_multipart(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    """xAI takes JSON edits only (its docs: the OpenAI SDK's multipart images.edit() is not supported there); through the
    gateway the SDK's multipart edit works, sent on as JSON with a data URI."""
    buf = io.BytesIO()
    Image.new("RGB", (1600, 900), (9, 9, 9)).save(buf, "PNG")
    res = sdk(gateway).images.edit(model="grok-imagine-image", image=("in.png", buf.getvalue(), "image/png"),
                                   prompt="a pencil sketch", response_format="b64_json")
    assert Image.open(io.BytesIO(base64.b64decode(res.data[0].b64_json or ""))).size == (1408, 768)
    sent = sim_clean.requests("xai")[-1]
    assert sent["path"] == "/xai/v1/images/edits" and sent["json"]["image"]["url"].startswith("data:image/png;base64,")
