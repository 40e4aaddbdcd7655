"""Model lifecycle: retired models are refused with their successor unless a route still serves them, deprecated
ones are announced (RFC 9745 / RFC 8594 headers, one log line); every shipped model declares its lifecycle."""

from __future__ import annotations

import calendar
import logging
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from mediagate import catalog as catalog_mod
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models.d"
SHIPPED = [catalog_mod.shipped_root()]          # without tests/legacy.py's root: the catalog as users get it
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


def _shipped() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, yaml.safe_load(p.read_text())) for p in sorted(MODELS.glob("*.yaml"))]


@pytest.mark.parametrize("name,spec", _shipped(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_shipped_model_declares_a_sourced_lifecycle(name: str, spec: dict[str, Any]) -> None:
    """So a model added later must say where it stands; deprecated and retired ones give their dates."""
    life = spec.get("lifecycle")
    assert isinstance(life, dict), f"{name}: no lifecycle"
    assert life.get("source"), f"{name}: lifecycle without a source"
    if life["status"] in ("deprecated", "retired"):
        assert life.get("shutdown"), f"{name}: {life['status']} without a shutdown date"
    if life["status"] == "retired":
        assert life.get("replacement"), f"{name}: retired without a replacement to name"


def test_a_successor_that_is_no_model_is_refused_at_load(tmp_path: Path) -> None:
    spec = yaml.safe_load((MODELS / "dall-e-3.yaml").read_text())
    spec["lifecycle"]["replacement"] = "gpt-image-99"
    (tmp_path / "dall-e-3.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(catalog_mod.SpecErrors) as err:
        catalog_mod.load([*SHIPPED, tmp_path])
    assert "$.lifecycle.replacement: no model or alias 'gpt-image-99'" in str(err.value)


@pytest.fixture(scope="module")
def shipped_gw(sim: SimulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with GatewayThread(sim.base_url, tmp_path_factory.mktemp("life"), SHIPPED) as gw:
        yield gw


def _sdk(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key="any", max_retries=0, timeout=60)


@pytest.mark.parametrize("model,successor", [("dall-e-3", "gpt-image-2"), ("dall-e-2", "gpt-image-2"),
                                             ("openai/gpt-image-1", "gpt-image-2"), ("openai/gpt-image-1.5", "gpt-image-2"),
                                             ("fal/gpt-image-1.5", "gpt-image-2")])
def test_a_retired_image_model_is_410_naming_its_successor(shipped_gw: GatewayThread, sim_clean: SimulatorThread,
                                                           model: str, successor: str) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        _sdk(shipped_gw).images.generate(model=model, prompt="a fox")
    assert err.value.status_code == 410
    body = err.value.response.json()["error"]
    assert (body["code"], body["param"], body["type"]) == ("model_retired", "model", "invalid_request_error")
    assert f"Use '{successor}' instead" in body["message"] and "retired" in body["message"]
    assert sim_clean.requests() == []                   # nothing was sent anywhere


@pytest.mark.parametrize("model", ["gpt-image-1", "gpt-image-1.5", "gpt-image-1-mini"])
def test_a_model_openai_retired_is_still_served_by_azure(shipped_gw: GatewayThread, sim_clean: SimulatorThread,
                                                         model: str) -> None:
    """The shipped Azure routes declare that Azure still serves these (its own schedule): only they are tried."""
    raw = _sdk(shipped_gw).images.with_raw_response.generate(model=model, prompt="a fox")
    meta = (raw.parse().model_extra or {})["metadata"]
    assert [a["provider"] for a in meta["attempts"]] == ["azure"]
    assert [r["path"] for r in sim_clean.requests()] == [f"/azure/openai/deployments/{model}/images/generations"]


def test_without_azure_a_model_openai_retired_is_410(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")      # the owner's route is configured, and still never tried
    with GatewayThread(None, tmp_path, SHIPPED, sandbox="off") as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x"}, timeout=30)
    assert r.status_code == 410 and "Use 'gpt-image-2' instead" in r.json()["error"]["message"]


def test_a_retired_video_model_is_refused_at_create_and_in_a_dry_run(shipped_gw: GatewayThread, sim_clean: SimulatorThread) -> None:
    for url in ("/v1/videos", "/v1/videos?dryRun=true"):
        r = httpx.post(shipped_gw.base_url + url, json={"model": "sora-2", "prompt": "waves"}, timeout=30)
        assert r.status_code == 410, r.text
        assert "2026-09-24" in r.json()["error"]["message"] and "'veo-3.1'" in r.json()["error"]["message"]
    assert sim_clean.requests() == []


def test_a_retired_model_is_still_listed_with_its_lifecycle(shipped_gw: GatewayThread) -> None:
    r = httpx.get(shipped_gw.base_url + "/v1/models/dall-e-3", timeout=30)
    assert r.status_code == 200 and r.json()["lifecycle"]["status"] == "retired"


def _served_copy(tmp_path: Path, provider: str) -> Path:
    """An operator root: dall-e-3 with an extra route whose upstream still serves it."""
    spec = yaml.safe_load((MODELS / "dall-e-3.yaml").read_text())
    spec["routes"].append({"provider": provider, "upstream_model": "dall-e-3", "priority": 5,
                           "lifecycle": {"status": "active", "note": "our own server still runs it"}})
    root = tmp_path / "ops"
    root.mkdir()
    (root / "dall-e-3.yaml").write_text(yaml.safe_dump(spec))
    return root


def test_a_route_that_still_serves_a_retired_model_serves_it(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, [*SHIPPED, _served_copy(tmp_path, "local-openai")]) as gw:
        raw = _sdk(gw).images.with_raw_response.generate(model="dall-e-3", prompt="a fox", response_format="b64_json")
        meta = (raw.parse().model_extra or {})["metadata"]
        # the owner's route is never tried: only the route that declares it still serves the model
        assert [a["provider"] for a in meta["attempts"]] == ["local-openai"]
        with pytest.raises(openai.APIStatusError) as err:     # forcing the owner's route: still retired there
            _sdk(gw).images.generate(model="openai/dall-e-3", prompt="a fox")
        assert err.value.status_code == 410 and "by provider 'openai'" in err.value.message


def test_a_serving_route_that_cannot_be_called_still_gets_the_retired_error(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    with GatewayThread(None, tmp_path, [*SHIPPED, _served_copy(tmp_path, "azure")], sandbox="off") as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", json={"model": "dall-e-3", "prompt": "x"}, timeout=30)
    assert r.status_code == 410 and r.json()["error"]["code"] == "model_retired"


def test_a_deprecated_model_is_served_with_deprecation_headers_and_one_log_line(
        shipped_gw: GatewayThread, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mediagate.lifecycle"):
        r = httpx.post(shipped_gw.base_url + "/v1/images/generations",
                       json={"model": "imagen-4-fast", "prompt": "a fox", "response_format": "b64_json"}, timeout=60)
    assert r.status_code == 200, r.text
    assert parsedate_to_datetime(r.headers["sunset"]).date().isoformat() == "2026-08-17"     # RFC 8594 HTTP-date
    assert r.headers["x-mediagate-deprecated"] == "model=imagen-4-fast; shutdown=2026-08-17; replacement=gemini-3.1-flash-image"
    assert "deprecation" not in r.headers            # the spec gives no deprecation day: no made-up date
    lines = [rec for rec in caplog.records if rec.name == "mediagate.lifecycle"]
    assert len(lines) == 1 and "imagen-4-fast" in lines[0].getMessage()


def test_the_deprecation_header_is_the_announced_day(shipped_gw: GatewayThread) -> None:
    r = httpx.post(shipped_gw.base_url + "/v1/chat/completions",
                   json={"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["deprecation"] == f"@{calendar.timegm(time.strptime('2026-06-11', '%Y-%m-%d'))}"   # RFC 9745
    assert "shutdown=2026-12-11" in r.headers["x-mediagate-deprecated"]


def test_an_active_model_carries_no_deprecation_header(shipped_gw: GatewayThread) -> None:
    r = httpx.post(shipped_gw.base_url + "/v1/images/generations", json={"model": "gpt-image-2", "prompt": "a fox"}, timeout=60)
    assert r.status_code == 200, r.text
    assert not {"deprecation", "sunset", "x-mediagate-deprecated"} & set(r.headers)
