"""GET /v1/providers: every provider, its slug, whether it is configured, sandboxed or cooling down, what it serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from mediagate import catalog as catalog_mod
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

SHIPPED = [catalog_mod.shipped_root()]


def providers(gw: GatewayThread) -> dict[str, dict[str, Any]]:
    r = httpx.get(gw.base_url + "/v1/providers", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list"
    return {p["id"]: p for p in body["data"]}


def test_every_provider_is_listed_with_its_state(sim: SimulatorThread, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    with GatewayThread(sim.base_url, tmp_path, SHIPPED, sandbox="auto") as gw:
        listed = providers(gw)
        assert set(listed) == set(gw.catalog.providers)
        azure, openai_ = listed["azure"], listed["openai"]
        assert (azure["slug"], azure["name"], azure["object"]) == ("azure", "Azure OpenAI", "provider")
        assert azure["configured"] is False and azure["missing_env"] == ["AZURE_OPENAI_API_KEY"]
        assert azure["sandboxed"] is True                         # no key: the simulators answer for it
        assert openai_["configured"] is True and openai_["sandboxed"] is False and openai_["missing_env"] == []
        assert {"id": "gpt-image-2", "upstream_model": "gpt-image-2"} in azure["models"]
        served = {m["id"] for m in openai_["models"]}
        assert "gpt-image-2" in served and "dall-e-3" not in served   # retired at OpenAI: not served there
        assert all(p["cooling_down"] is False for p in listed.values())

        for _ in range(3):                                        # three retryable failures: a cooldown
            gw.runtime.health.record("azure", ok=False)
        cooled = providers(gw)["azure"]
        assert cooled["cooling_down"] is True and cooled["consecutive_failures"] == 3
        assert 0 < cooled["cooldown_remaining_s"] <= 30


def test_the_providers_endpoint_needs_the_gateway_key(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, SHIPPED, api_keys=frozenset({"sk-gw"})) as gw:
        r = httpx.get(gw.base_url + "/v1/providers", timeout=30)
        ok = httpx.get(gw.base_url + "/v1/providers", headers={"Authorization": "Bearer sk-gw"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert ok.status_code == 200 and ok.json()["data"]
