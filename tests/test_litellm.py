"""LiteLLM in front of, and as a client of, the gateway — as seed 000 describes its use."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import httpx
import litellm
import openai
import pytest
import yaml
from PIL import Image

from tests.servers import GatewayThread
from tests.servers import free_port as _free_port

ROOT = Path(__file__).resolve().parent.parent
PROXY_KEY = "sk-litellm-proxy-test-key"   # the proxy refuses to start without a master key
PROXY_BIN = Path(os.environ.get("MEDIAGATE_LITELLM_PROXY", ROOT / ".venv-litellm" / "bin" / "litellm"))


def png(w: int, h: int) -> io.BytesIO:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (30, 90, 160)).save(buf, "PNG")
    buf.seek(0)
    buf.name = "in.png"
    return buf


def size_of(b64: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(b64))).size


def test_image_generation_with_the_openai_prefix(gateway: GatewayThread) -> None:
    res = litellm.image_generation(model="openai/gemini-3-pro-image", prompt="a capybara", n=1, size="1792x1024",
                                   api_base=gateway.base_url + "/openai/v1", api_key="any",
                                   extra_body={"response_format": "b64_json"})
    assert size_of(res.data[0].b64_json) == (1376, 768)


def test_aimage_generation_and_forced_provider(gateway: GatewayThread) -> None:
    async def run() -> tuple[str | None, str | None]:
        a = await litellm.aimage_generation(model="openai/gpt-image-1.5", prompt="a capybara", api_base=gateway.base_url + "/v1",
                                            api_key="any")
        b = await litellm.aimage_generation(model="openai/fal/flux.2-max", prompt="a capybara", api_base=gateway.base_url + "/v1",
                                            api_key="any", extra_body={"response_format": "url"})
        return a.data[0].url or a.data[0].b64_json, b.data[0].url
    first, second = asyncio.run(run())
    assert first and second and "/v1/media/" in second
    assert httpx.get(second).status_code == 200


def test_hosted_vllm_prefix_takes_response_format_directly(gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTED_VLLM_API_BASE", gateway.base_url + "/openai/v1")
    monkeypatch.setenv("HOSTED_VLLM_API_KEY", "any")
    res = litellm.image_generation(model="hosted_vllm/gemini-3-pro-image", prompt="a capybara", response_format="b64_json")
    assert size_of(res.data[0].b64_json) == (1024, 1024)


def test_image_edit_and_aimage_edit(gateway: GatewayThread) -> None:
    res = litellm.image_edit(model="openai/gpt-image-1.5", image=png(1024, 1024), prompt="add a hat", n=1, size="1024x1024",
                             api_base=gateway.base_url + "/v1", api_key="any", response_format="b64_json")
    assert size_of(res.data[0].b64_json) == (1024, 1024)

    async def run() -> str | None:
        r = await litellm.aimage_edit(model="openai/gemini-3-pro-image", image=png(800, 600), prompt="make it dusk",
                                      api_base=gateway.base_url + "/v1", api_key="any", response_format="b64_json")
        return r.data[0].b64_json
    b64 = asyncio.run(run())
    assert b64 and size_of(b64) == (1200, 896)



@pytest.fixture(scope="module")
def litellm_proxy(gateway: GatewayThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """LiteLLM's proxy (its own venv: its pins clash with the openai SDK used here) with seed 000's config shape."""
    if not PROXY_BIN.exists():
        pytest.skip(f"LiteLLM proxy not installed at {PROXY_BIN} (.ci/run installs it)")
    tmp = tmp_path_factory.mktemp("litellm")
    api_base = gateway.base_url + "/openai/v1"
    config = {"model_list": [
        {"model_name": "gw-gemini-image", "litellm_params": {"model": "openai/gemini-3-pro-image", "api_key": "os.environ/GATEWAY_KEY", "api_base": api_base}},
        {"model_name": "gw-gpt-image", "litellm_params": {"model": "openai/gpt-image-1.5", "api_key": "os.environ/GATEWAY_KEY", "api_base": api_base}},
        {"model_name": "gw-flux", "litellm_params": {"model": "openai/flux.2-max", "api_key": "os.environ/GATEWAY_KEY", "api_base": api_base}},
    ]}
    (tmp / "litellm_config.yaml").write_text(yaml.safe_dump(config))
    port = _free_port()
    env = {**os.environ, "GATEWAY_KEY": "any", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "LITELLM_MASTER_KEY": PROXY_KEY, "NO_PROXY": "*", "no_proxy": "*"}
    log = open(tmp / "proxy.log", "w")
    proc = subprocess.Popen([str(PROXY_BIN), "--config", str(tmp / "litellm_config.yaml"), "--host", "127.0.0.1",
                             "--port", str(port), "--num_workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/health/liveliness", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("LiteLLM proxy did not start:\n" + (tmp / "proxy.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_litellm_proxy_in_front_answers_the_openai_sdk(litellm_proxy: str) -> None:
    c = openai.OpenAI(base_url=litellm_proxy, api_key=PROXY_KEY, max_retries=0, timeout=60)
    res = c.images.generate(model="gw-gemini-image", prompt="a capybara napping by a lake at dawn")
    item = res.data[0]
    assert item.url or item.b64_json
    if item.url:
        assert httpx.get(item.url).status_code == 200
    res = c.images.generate(model="gw-flux", prompt="a capybara", size="1024x1024")
    assert res.data and (res.data[0].url or res.data[0].b64_json)
