"""Bad input of any kind gets a clear OpenAI-shaped 4xx; odd provider replies never leak or crash."""

from __future__ import annotations

import asyncio
import gc
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediagate.errors import UpstreamError
from mediagate.fanout import all_or_nothing
from tests.servers import GatewayThread, Scripted

URL = "/v1/images/generations"


def raw(gw: GatewayThread, body: str | bytes, **kw: Any) -> httpx.Response:
    return httpx.post(gw.base_url + URL, content=body, headers={"content-type": "application/json"}, timeout=30, **kw)


@pytest.mark.parametrize(("body", "param", "code"), [
    ("[" * 100_000 + "]" * 100_000, None, "invalid_json"),
    ('{"model": "gpt-image-1", "prompt": "x", "extra": ' + "[" * 5000 + "]" * 5000 + "}", None, "invalid_json"),
    ('{"prompt": "x"}', "model", "missing_required_parameter"),
    ('{"model": {"a": 1}, "prompt": "x"}', "model", "invalid_type"),
    ('{"model": "gpt-image-1", "prompt": "x", "output_format": "jpeg", "output_compression": 50.0}', "output_compression", "invalid_type"),
    ('{"model": "gpt-image-1", "prompt": "x", "n": true}', "n", "invalid_type"),
    ('{"model": "gpt-image-1", "prompt": "x", "seed": NaN}', None, "invalid_json"),
    ('{"model": "gpt-image-1", "prompt": "x", "seed": Infinity}', None, "invalid_json"),
    ('{"model": "gpt-image-1", "prompt": 5}', "prompt", "invalid_type"),
    ('{"model": "sdxl-local", "prompt": "x", "resolution": "0K"}', "resolution", "invalid_value"),
    ('{"model": "sdxl-local", "prompt": "x", "aspect_ratio": "0:1"}', "aspect_ratio", "invalid_value"),
    ('{"model": "sdxl-local", "prompt": "x", "size": "0x0"}', "size", "invalid_value"),
])
def test_hostile_bodies_are_400(gateway: GatewayThread, body: str, param: str | None, code: str) -> None:
    r = raw(gateway, body)
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert (err["param"], err["code"]) == (param, code), err


def test_unknown_model_name_is_not_echoed_in_full(gateway: GatewayThread) -> None:
    r = raw(gateway, '{"model": "' + "m" * 1_000_000 + '", "prompt": "x"}')
    assert r.status_code == 404 and len(r.content) < 1000


def test_non_ascii_signature_and_key_are_refused_not_crashed(gateway: GatewayThread, sim: Any, tmp_path: Path) -> None:
    r = httpx.get(gateway.base_url + "/v1/media/1795604977-" + "A" * 43 + ".png?sig=%C3%A9")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with GatewayThread(sim.base_url, tmp_path, api_keys=frozenset({"k"})) as gw:
        r = httpx.get(gw.base_url + "/v1/models", headers={"Authorization": "Bearer é".encode()})
        assert r.status_code == 401


def test_openai_only_fields_are_dropped_and_recorded_for_gemini(gateway: GatewayThread, sim_clean: Any) -> None:
    r = httpx.post(gateway.base_url + URL, json={"model": "gemini-2.5-flash-image", "prompt": "x", "user": "u1", "quality": "hd",
                                                 "style": "vivid", "response_format": "b64_json"}, timeout=30)
    assert r.status_code == 200, r.text
    sent = sim_clean.requests()[-1]["json"]
    assert "user" not in sent["generationConfig"] and "quality" not in sent["generationConfig"]
    params = {a["param"] for a in r.json()["metadata"]["adjustments"]}
    assert {"user", "quality", "style"} <= params


def test_compression_without_a_lossy_format_is_recorded(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + URL, json={"model": "gpt-image-1", "prompt": "x", "output_compression": 40,
                                                 "response_format": "b64_json"}, timeout=30)
    assert r.status_code == 200
    assert r.json()["metadata"]["adjustments"][0]["param"] == "output_compression"


def test_numeric_resolution_means_a_side_in_pixels(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + URL + "?dryRun=true", json={"model": "gemini-3.1-flash-image", "prompt": "x", "resolution": "512"})
    assert r.json()["total_cost_micros"] == 45_000


def test_output_url_on_a_foreign_host_is_not_fetched(scripted: Scripted, scripted_gateway: GatewayThread) -> None:
    scripted.replies.append({"json": {"data": [{"url": "http://169.254.169.254/latest/meta-data"}]}})
    r = httpx.post(scripted_gateway.base_url + URL, json={"model": "dall-e-2", "prompt": "x"}, timeout=30)
    assert r.status_code == 502
    assert "not trusted" in r.json()["error"]["message"]


def test_objects_and_tracebacks_in_upstream_errors_are_not_relayed(scripted: Scripted, scripted_gateway: GatewayThread) -> None:
    scripted.replies.append({"status": 400, "json": {"error": {"message": {"internal": "/srv/app.py line 3", "key": "sk-live"}}}})
    r = httpx.post(scripted_gateway.base_url + URL, json={"model": "dall-e-2", "prompt": "x"}, timeout=30)
    assert r.status_code == 400 and "sk-live" not in r.text and "/srv/app.py" not in r.text
    scripted.replies.append({"status": 400, "json": {"error": {"message": "bad size\nTraceback (most recent call last):\n  File x"}}})
    r = httpx.post(scripted_gateway.base_url + URL, json={"model": "dall-e-2", "prompt": "x"}, timeout=30)
    assert r.json()["error"]["message"] == "bad size"


def test_fanout_with_several_failures_leaves_nothing_running_or_unretrieved() -> None:
    started: list[int] = []
    finished: list[int] = []

    async def fail(i: int) -> int:
        started.append(i)
        await asyncio.sleep(0.01 * i)
        raise UpstreamError("upstream_error", f"batch {i}", True)

    async def slow(i: int) -> int:
        started.append(i)
        await asyncio.sleep(5)
        finished.append(i)
        return i

    async def main() -> None:
        with pytest.raises(UpstreamError) as exc:
            await all_or_nothing([fail(1), fail(2), slow(3), slow(4)])
        assert exc.value.message == "batch 1"
        await asyncio.sleep(0)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(main())
        gc.collect()
    assert finished == []


def test_media_cache_never_outlives_the_url(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + URL, json={"model": "dall-e-2", "prompt": "x", "size": "256x256"}, timeout=30)
    got = httpx.get(r.json()["data"][0]["url"])
    assert got.status_code == 200
    assert int(got.headers["cache-control"].split("max-age=")[1]) <= 300
    assert int(got.headers["content-length"]) == len(got.content)
