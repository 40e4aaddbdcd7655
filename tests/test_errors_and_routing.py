"""DESIGN.md's error table and routing, against real servers on loopback (simulators + gateway)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from mediagate.config import MAX_JSON_BODY_BYTES
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

ROOT = Path(__file__).resolve().parent.parent
TWIN = {
    "id": "twin-image", "kind": "image", "operations": ["generate"],
    "limits": {"n": 4},
    "shape": {"sizes": ["1024x1024", "512x512"], "default": {"size": "512x512"}},
    "values": {"response_format": "b64_json"},
    # the operator's opt-in: routing tests below fall back even after failures the provider may have billed
    # (the default, no fallback after a send, is tests/test_billing.py's)
    "fallback_after_send": True,
    "routes": [
        {"provider": "openai", "upstream_model": "dall-e-2", "priority": 0},
        {"provider": "local-openai", "upstream_model": "sdxl", "priority": 1},
    ],
}


@pytest.fixture(scope="module")
def twin_specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    shutil.copytree(ROOT / "providers.d", root / "providers.d")
    (root / "models.d").mkdir()
    (root / "models.d" / "twin-image.yaml").write_text(yaml.safe_dump(TWIN))
    return root


@pytest.fixture(scope="module")
def twin(sim: SimulatorThread, twin_specs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with GatewayThread(sim.base_url, tmp_path_factory.mktemp("twin"), [twin_specs]) as gw:
        yield gw


def post(gw: GatewayThread, body: object, **kw: object) -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/images/generations", json=body, timeout=30, **kw)  # type: ignore[arg-type]


def test_retryable_failure_falls_back_and_lists_both_attempts(twin: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("500", 1, "openai")
    r = post(twin, {"model": "twin-image", "prompt": "fallback please", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    meta = r.json()["metadata"]
    assert meta["provider"] == "local-openai" and r.headers["x-mediagate-provider"] == "local-openai"
    assert [(a["provider"], a["outcome"]) for a in meta["attempts"]] == [("openai", "upstream_error"), ("local-openai", "ok")]
    assert meta["attempts"][0]["error"]["upstream_status"] == 500


@pytest.mark.parametrize("fault", ["drop", "malformed", "503"])
def test_transport_and_body_failures_fall_back(twin: GatewayThread, sim_clean: SimulatorThread, fault: str) -> None:
    sim_clean.inject(fault, 1, "openai")
    r = post(twin, {"model": "twin-image", "prompt": "x"})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["attempts"][0]["outcome"] in ("upstream_unavailable", "upstream_malformed", "upstream_error")


def test_safety_block_is_returned_at_once_without_fallback(twin: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("safety", 1, "openai")
    r = post(twin, {"model": "twin-image", "prompt": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "content_policy_violation"
    assert len(sim_clean.requests()) == 1


def test_every_route_rate_limited_is_429_with_retry_after(twin: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("429", 2, "openai")
    r = post(twin, {"model": "twin-image", "prompt": "x"})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(r.headers["retry-after"]) >= 1


def test_all_routes_failing_is_502_listing_each(twin: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("500", 1, "openai")
    sim_clean.inject("drop", 1, "openai")
    r = post(twin, {"model": "twin-image", "prompt": "x"})
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "all_providers_exhausted" and err["type"] == "upstream_error"
    assert "openai: upstream_error" in err["message"] and "local-openai: upstream_unavailable" in err["message"]


def test_forced_provider_bypasses_routing(twin: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("500", 1, "openai")
    r = post(twin, {"model": "local-openai/twin-image", "prompt": "x"})
    assert r.status_code == 502  # the forced route failed; no fallback to openai
    assert len(sim_clean.requests()) == 1
    ok = post(twin, {"model": "local-openai/twin-image", "prompt": "x"})
    assert ok.json()["metadata"]["provider"] == "local-openai"
    assert post(twin, {"model": "gemini/twin-image", "prompt": "x"}).status_code == 404


def test_fanout_partial_failure_fails_whole_request(twin: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("500", 1, "openai")   # one of the two dall-e batches fails
    sim_clean.inject("500", 2, "openai")   # and both local batches: nothing half-delivered
    r = post(twin, {"model": "openai/twin-image", "prompt": "x", "n": 8})
    assert r.status_code == 502
    assert "the whole request failed rather than return part of it" in r.json()["error"]["message"]


def test_deadline_is_504(sim: SimulatorThread, twin_specs: Path, tmp_path: Path) -> None:
    sim.reset()
    with GatewayThread(sim.base_url, tmp_path, [twin_specs], request_timeout_s=0.5) as gw:
        r = post(gw, {"model": "twin-image", "prompt": "slow [sim:latency=3000]"})
    sim.reset()
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"


def test_gateway_key(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, api_keys=frozenset({"mg-secret"})) as gw:
        body = {"model": "gpt-image-1", "prompt": "x"}
        missing = post(gw, body)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        wrong = post(gw, body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = post(gw, body, headers={"Authorization": "Bearer mg-secret"})
        assert ok.status_code == 200
        assert httpx.get(ok.json()["data"][0]["url"]).status_code == 200  # a signed URL is its own credential
        assert httpx.get(gw.base_url + "/v1/models").status_code == 401


def test_body_limit_at_limit_plus_one(gateway: GatewayThread) -> None:
    pad = MAX_JSON_BODY_BYTES - len('{"model":"gpt-image-1","prompt":"x","pad":""}')
    at_limit = '{"model":"gpt-image-1","prompt":"x","pad":"' + "a" * pad + '"}'
    assert len(at_limit) == MAX_JSON_BODY_BYTES
    r = httpx.post(gateway.base_url + "/v1/images/generations", content=at_limit + " ",
                   headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r2 = httpx.post(gateway.base_url + "/v1/images/generations", content=at_limit.replace('"x"', '"x [sim:429]"', 1)[:-0 or None][:MAX_JSON_BODY_BYTES],
                    headers={"content-type": "application/json"})
    assert r2.status_code != 413


@pytest.mark.parametrize(("body", "param", "code"), [
    ("{not json", None, "invalid_json"),
    ("[1, 2]", None, "invalid_json"),
    ("", None, "invalid_json"),
    ('{"model": "gpt-image-1"}', "prompt", "missing_required_parameter"),
    ('{"model": "gpt-image-1", "prompt": ""}', "prompt", "empty_string"),
    ('{"model": "gpt-image-1", "prompt": "x", "n": 0}', "n", "invalid_value"),
    ('{"model": "gpt-image-1", "prompt": "x", "n": "2"}', "n", "invalid_type"),
    ('{"model": "gpt-image-1", "prompt": "x", "size": "huge"}', "size", "invalid_value"),
    ('{"model": "gpt-image-1", "prompt": "x", "response_format": "file"}', "response_format", "invalid_value"),
    ('{"model": "gpt-image-1", "prompt": "x", "output_format": "bmp"}', "output_format", "invalid_value"),
    ('{"model": "gpt-image-1", "prompt": "x", "output_compression": 101}', "output_compression", "invalid_value"),
    ('{"model": "gpt-image-1", "prompt": "x", "aspect_ratio": "wide"}', "aspect_ratio", "invalid_value"),
    ('{"model": "gpt-image-1", "prompt": "x", "stream": true}', "stream", "unsupported_value"),
    ('{"model": "gpt-image-1", "prompt": "x", "size": "70000x10"}', "size", "invalid_value"),
])
def test_bad_input_is_a_clear_400(gateway: GatewayThread, body: str, param: str | None, code: str) -> None:
    r = httpx.post(gateway.base_url + "/v1/images/generations", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["code"] == code
    assert err["message"]


def test_unknown_endpoint_and_method_are_openai_shaped(gateway: GatewayThread) -> None:
    r = httpx.get(gateway.base_url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(gateway.base_url + "/v1/images/generations")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_request_id_is_echoed_or_made(gateway: GatewayThread) -> None:
    r = httpx.get(gateway.base_url + "/v1/models", headers={"X-Request-Id": "client-trace-0001"})
    assert r.headers["x-request-id"] == "client-trace-0001"
    r = httpx.get(gateway.base_url + "/v1/models", headers={"X-Request-Id": "bad id with spaces"})
    assert r.headers["x-request-id"].startswith("req_")


def test_operations_endpoints(gateway: GatewayThread) -> None:
    assert httpx.get(gateway.base_url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.base_url + "/readyz").json()
    assert ready["status"] == "ready" and ready["models"] >= 7
    assert "mediagate_requests_total" in httpx.get(gateway.base_url + "/metrics").text
    assert httpx.get(gateway.base_url + "/openapi.json").json()["openapi"].startswith("3.")


def test_sandbox_per_request_header(sim: SimulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With real keys configured, a request can still ask for the simulators (a test mode)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-looking")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    with GatewayThread(sim.base_url, tmp_path, sandbox="auto") as gw:
        real = post(gw, {"model": "gpt-image-1", "prompt": "x"})
        assert real.status_code == 502
        assert real.json()["error"]["code"] == "all_providers_exhausted"
        assert "upstream_unavailable" in real.json()["error"]["message"]
        sandboxed = post(gw, {"model": "gpt-image-1", "prompt": "x"}, headers={"X-Mediagate-Sandbox": "1"})
        assert sandboxed.status_code == 200
        assert sandboxed.json()["metadata"]["attempts"][0]["sandbox"] is True


def test_no_secret_or_raw_body_reaches_the_client(sim: SimulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "bad-AIzaSECRETSECRET")
    monkeypatch.setenv("GEMINI_BASE_URL", sim.base_url + "/gemini")
    with GatewayThread(sim.base_url, tmp_path, sandbox="off") as gw:
        r = post(gw, {"model": "gemini-2.5-flash-image", "prompt": "x"})
    assert r.status_code == 502
    assert "SECRET" not in r.text and "API key not valid" not in r.text
    assert "upstream_auth_failed" in r.json()["error"]["message"]
