"""The async and token-authenticated protocols end to end, gateway -> simulators over loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from mediagate.sandbox.testing import SimulatorThread
from mediagate.sandbox.vertex_keys import service_account_info
from tests.servers import GatewayThread

URL = "/v1/images/generations"


def post(gw: GatewayThread, body: dict, **kw: object) -> httpx.Response:
    return httpx.post(gw.base_url + URL, json=body, timeout=60, **kw)  # type: ignore[arg-type]


def test_flux_2_max_replicate_by_default_fal_when_forced(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = post(gateway, {"model": "flux.2-max", "prompt": "a glacier", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["provider"] == "replicate"
    r = post(gateway, {"model": "fal/flux.2-max", "prompt": "a glacier", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["provider"] == "fal"
    paths = [q["path"] for q in sim_clean.requests("fal")]
    assert paths[0] == "/fal/queue/fal-ai/flux-2-max" and paths[-1].endswith("/requests/" + paths[-1].rsplit("/", 1)[1])


def test_forced_429_on_replicate_falls_back_to_fal(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("429", 1, "replicate")   # a 429 was not taken: safe to send elsewhere (a 5xx is test_billing's)
    r = post(gateway, {"model": "flux.2-max", "prompt": "a glacier", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    attempts = r.json()["metadata"]["attempts"]
    assert [(a["provider"], a["outcome"]) for a in attempts] == [("replicate", "rate_limit_exceeded"), ("fal", "ok")]


def test_fal_job_is_polled_and_cancelled_when_the_client_leaves(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.base_url + URL, json={"model": "fal/flux.1-schnell", "prompt": "slow [sim:job=5000]"}, timeout=0.5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("cancel" in q for q in sim_clean.requests("fal")):
        time.sleep(0.05)
    cancels = [q for q in sim_clean.requests("fal") if "cancel" in q]
    assert cancels and cancels[0]["method"] == "PUT"


def test_replicate_nsfw_failure_is_content_policy(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = post(gateway, {"model": "replicate/flux.1-schnell", "prompt": "x [sim:safety]"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "content_policy_violation"


def test_fal_nsfw_flag_is_content_policy(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = post(gateway, {"model": "fal/flux.1-schnell", "prompt": "x [sim:safety]"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "content_policy_violation"


def test_imagen_revised_prompt_and_sizes(gateway: GatewayThread) -> None:
    r = post(gateway, {"model": "imagen-4", "prompt": "a koi pond", "n": 2, "aspect_ratio": "16:9", "resolution": "2K",
                       "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["size"] == "2816x1536" and len(body["data"]) == 2
    assert all(d["revised_prompt"] for d in body["data"])


def test_vertex_service_account_jwt_flow(sim: SimulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No static token: the gateway signs a JWT with the service account's key and trades it for a token."""
    sim.reset()
    monkeypatch.setenv("VERTEX_PROJECT", "mediagate-test")
    monkeypatch.setenv("VERTEX_LOCATION", "us-central1")
    monkeypatch.setenv("VERTEX_BASE_URL", sim.base_url + "/vertex")
    monkeypatch.setenv("VERTEX_SERVICE_ACCOUNT_JSON", json.dumps(service_account_info(sim.base_url + "/vertex/oauth2/token")))
    with GatewayThread(sim.base_url, tmp_path, sandbox="auto") as gw:
        for model in ("vertex/gemini-3-pro-image", "imagen-4", "imagen-4-fast"):
            r = post(gw, {"model": model, "prompt": "a fox", "response_format": "b64_json"})
            assert r.status_code == 200, r.text
            assert r.json()["metadata"]["provider"] == "vertex"
            assert "sandbox" not in r.json()["metadata"]["attempts"][0]
    log = sim.requests("vertex")
    token_calls = [q for q in log if q["path"].endswith("/oauth2/token")]
    assert len(token_calls) == 1, "the token is cached across requests"
    calls = [q for q in log if not q["path"].endswith("/oauth2/token")]
    assert calls[0]["path"].startswith("/vertex/v1/projects/mediagate-test/locations/us-central1/")
    assert all(q["headers"]["authorization"].startswith("Bearer ") and q["headers"]["authorization"] != "Bearer sandbox"
               for q in calls)


def test_vertex_bad_service_account_is_an_auth_failure(sim: SimulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTEX_PROJECT", "mediagate-test")
    monkeypatch.setenv("VERTEX_BASE_URL", sim.base_url + "/vertex")
    monkeypatch.setenv("VERTEX_SERVICE_ACCOUNT_JSON", '{"client_email": "x@y", "private_key": "not a key", "token_uri": "http://127.0.0.1:9/"}')
    with GatewayThread(sim.base_url, tmp_path, sandbox="auto") as gw:
        r = post(gw, {"model": "vertex/imagen-4", "prompt": "x"})
        fallback = post(gw, {"model": "imagen-4", "prompt": "x"})
    assert fallback.status_code == 200 and fallback.json()["metadata"]["provider"] == "fal"
    assert r.status_code == 502
    assert "upstream_auth_failed" in r.json()["error"]["message"] and "not a key" not in r.text


def test_a1111_and_local_server(gateway: GatewayThread) -> None:
    r = post(gateway, {"model": "sd-a1111", "prompt": "a lake", "size": "640x480", "n": 2, "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    assert r.json()["size"] == "640x480" and len(r.json()["data"]) == 2
