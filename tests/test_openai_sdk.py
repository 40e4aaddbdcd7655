"""The official openai SDK against the running gateway, providers on the simulators."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

FORMATS = ["png", "jpeg", "gif", "webp", "avif"]


def client(gw: GatewayThread, prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + prefix, api_key="any", max_retries=0, timeout=60)


def load(item: openai.types.Image) -> tuple[Image.Image, bytes]:
    if item.b64_json is not None:
        data = base64.b64decode(item.b64_json)
    else:
        assert item.url is not None
        r = httpx.get(item.url, timeout=30)
        assert r.status_code == 200
        data = r.content
    im = Image.open(io.BytesIO(data))
    im.load()
    return im, data


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
@pytest.mark.parametrize("output_format", FORMATS)
def test_response_format_by_output_format(gateway: GatewayThread, response_format: str, output_format: str) -> None:
    res = client(gateway).images.generate(model="gemini-2.5-flash-image", prompt="a lighthouse at dusk", size="512x512",
                                          response_format=response_format,  # type: ignore[arg-type]
                                          extra_body={"output_format": output_format, "output_compression": 70})
    assert len(res.data) == 1
    im, _ = load(res.data[0])
    assert (im.format or "").lower() == output_format
    assert f"{im.width}x{im.height}" == res.size == "1024x1024"
    extra = res.model_extra or {}
    assert extra["metadata"]["provider"] == "gemini"


def test_done_when_gemini_3_pro_webp(gateway: GatewayThread) -> None:
    """The issue's acceptance check: 1792x1024 on gemini-3-pro-image, b64 webp, ratio snap recorded."""
    raw = client(gateway).images.with_raw_response.generate(
        model="gemini-3-pro-image", prompt="a red fox in snow", size="1792x1024", response_format="b64_json",
        extra_body={"output_format": "webp"})
    res = raw.parse()
    im, _ = load(res.data[0])
    assert im.format == "WEBP"
    assert f"{im.width}x{im.height}" == res.size == "1376x768"
    meta = (res.model_extra or {})["metadata"]
    assert {"param": "size", "requested": "1792x1024", "applied": "1376x768",
            "reason": "nearest supported aspect ratio 16:9 at 1K"} in meta["adjustments"]
    assert raw.headers["x-mediagate-provider"] == "gemini"
    assert raw.headers["x-mediagate-model"] == "gemini-3-pro-image"
    assert raw.headers["x-request-id"].startswith("req_")


def test_n3_returns_three_images(gateway: GatewayThread) -> None:
    res = client(gateway).images.generate(model="gemini-3-pro-image", prompt="three moons", n=3, response_format="b64_json")
    assert len(res.data) == 3
    assert {load(d)[0].size for d in res.data} == {(1024, 1024)}


def test_openai_alias_prefix_and_revised_prompt(gateway: GatewayThread) -> None:
    res = client(gateway, "/openai/v1").images.generate(model="dall-e-3", prompt="a castle", size="1024x1792", n=2)
    assert len(res.data) == 2
    assert all(d.url and d.revised_prompt for d in res.data)
    assert res.size == "1024x1792"


def test_gpt_image_native_format(gateway: GatewayThread) -> None:
    res = client(gateway).images.generate(model="gpt-image-1.5", prompt="a teapot", output_format="jpeg",
                                          output_compression=40, quality="low", response_format="b64_json")
    im, _ = load(res.data[0])
    assert im.format == "JPEG" and res.size == "1024x1024"


def test_unsupported_thinking_is_400_listing_allowed(gateway: GatewayThread) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client(gateway).images.generate(model="gemini-3.1-flash-image", prompt="x", extra_body={"thinking": "off"})
    err = exc.value.body
    assert exc.value.status_code == 400
    assert err["param"] == "thinking" and "minimal, on, high" in err["message"]


def test_unknown_model_is_404(gateway: GatewayThread) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client(gateway).images.generate(model="nope", prompt="x")
    assert exc.value.body["code"] == "model_not_found"


def test_models_list_and_schema(gateway: GatewayThread) -> None:
    c = client(gateway)
    ids = {m.id for m in c.models.list()}
    assert {"gemini-3-pro-image", "gpt-image-1.5", "dall-e-3", "sdxl-local"} <= ids
    r = httpx.get(gateway.base_url + "/v1/models/nano-banana-pro?schema=true").json()
    assert r["id"] == "gemini-3-pro-image"
    props = r["schemas"]["generate"]["properties"]
    assert props["size"]["x-mediagate-mode"] == "converted"
    assert props["n"]["x-mediagate-mode"] == "emulated"
    assert props["thinking"]["enum"] == ["on"]
    assert props["prompt"]["x-mediagate-mode"] == "renamed"
    all_ = httpx.get(gateway.base_url + "/openai/v1/models?schema=true").json()
    served = {m["id"]: m["schemas"].get("generate") for m in all_["data"]}
    assert served["gemini-3-pro-image"] == r["schemas"]["generate"]
    assert httpx.get(gateway.base_url + "/v1/models/nope").status_code == 404


def test_url_downloads_and_is_refused_after_expiry(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, media_ttl_s=2) as gw:
        res = client(gw).images.generate(model="gpt-image-1", prompt="x", response_format="url")
        url = res.data[0].url
        assert url is not None and "/v1/media/" in url
        first = httpx.get(url)
        assert first.status_code == 200 and first.headers["content-type"] == "image/png"
        forged = httpx.get(url[:-4] + "0000")
        assert forged.status_code == 404 and forged.json()["error"]["code"] == "not_found"
        time.sleep(2.2)
        late = httpx.get(url)
        assert late.status_code == 410 and late.json()["error"]["code"] == "media_expired"
        name = url.split("/v1/media/")[1].split("?")[0]
        assert not (tmp_path / "media" / name).exists()


def test_sweeper_deletes_expired_files(tmp_path: Path) -> None:
    from mediagate.media import LocalMediaStore
    store = LocalMediaStore(tmp_path, ttl_s=0, signing_key=b"k")
    stored = asyncio.run(store.put(b"data", "png"))
    assert (tmp_path / stored.name).exists()
    assert asyncio.run(store.sweep()) == 1
    assert not (tmp_path / stored.name).exists()
