"""Errors found in review (issue 10, "Errors"): each test failed before its fix."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import pytest
import yaml
from PIL import Image

from mediagate import catalog as catalog_mod
from mediagate.forms import _typed
from mediagate.health import Health
from mediagate.provider import ProviderSpecError, compile_provider
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread, Scripted

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")
MODELS = Path(__file__).resolve().parent.parent / "models.d"


def png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_a_429_from_the_only_configured_provider_stays_a_429(scripted: Scripted, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """imagen-4-fast routes Vertex (no credentials here) then fal (configured): fal's 429 is the answer."""
    for name in ("VERTEX_PROJECT", "VERTEX_ACCESS_TOKEN", "VERTEX_SERVICE_ACCOUNT_JSON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAL_KEY", "k")
    monkeypatch.setenv("FAL_QUEUE_URL", scripted.base_url)
    scripted.replies.append({"status": 429, "json": {"detail": "slow down"}, "headers": {"Retry-After": "7"}})
    with GatewayThread(None, tmp_path, sandbox="off") as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", json={"model": "imagen-4-fast", "prompt": "x"}, timeout=30)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert r.headers["retry-after"] == "7"


def test_nothing_configured_is_a_502_naming_each_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VERTEX_PROJECT", "VERTEX_ACCESS_TOKEN", "VERTEX_SERVICE_ACCOUNT_JSON", "FAL_KEY"):
        monkeypatch.delenv(name, raising=False)
    with GatewayThread(None, tmp_path, sandbox="off") as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", json={"model": "imagen-4-fast", "prompt": "x"}, timeout=30)
    assert r.status_code == 502 and r.json()["error"]["code"] == "all_providers_exhausted"
    assert "not configured" in r.json()["error"]["message"]


def test_a_provider_with_only_optional_secrets_must_say_what_configures_it() -> None:
    spec = {"id": "p", "base_url": "http://127.0.0.1:9", "operations": {},
            "secrets": {"a": {"env": "P_A", "optional": True}, "b": {"env": "P_B", "optional": True}}}
    with pytest.raises(ProviderSpecError, match="configured_when"):
        compile_provider(spec, "p.yaml", env={})
    with pytest.raises(ProviderSpecError, match="no secret 'c'"):
        compile_provider({**spec, "configured_when": [["c"]]}, "p.yaml", env={})
    either = {**spec, "configured_when": [["a"], ["b"]]}
    assert compile_provider(either, "p.yaml", env={}).missing_secrets == ["P_A"]
    assert compile_provider(either, "p.yaml", env={"P_B": "x"}).missing_secrets == []
    assert compile_provider({**spec, "configured_when": [[]]}, "p.yaml", env={}).missing_secrets == []


def test_vertex_without_credentials_is_not_configured(sim: SimulatorThread, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Its secrets are both optional: before configured_when it counted as configured and failed reading a key."""
    monkeypatch.setenv("VERTEX_PROJECT", "p")
    monkeypatch.setenv("VERTEX_BASE_URL", sim.base_url + "/vertex")
    for name in ("VERTEX_ACCESS_TOKEN", "VERTEX_SERVICE_ACCOUNT_JSON"):
        monkeypatch.delenv(name, raising=False)
    with GatewayThread(sim.base_url, tmp_path, sandbox="auto") as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", json={"model": "vertex/imagen-4", "prompt": "x"}, timeout=30)
    assert r.status_code == 502, r.text
    message = r.json()["error"]["message"]
    assert "not configured" in message and "unusable" not in message, message


def test_a_job_url_on_an_untrusted_host_fails_at_once(scripted: Scripted, scripted_gateway: GatewayThread) -> None:
    scripted.replies.append({"json": {"request_id": "r1", "status_url": "https://untrusted.example/status",
                                      "response_url": "https://untrusted.example/result"}})
    started = time.monotonic()
    r = httpx.post(scripted_gateway.base_url + "/v1/images/generations", json={"model": "fal/qwen-image", "prompt": "x"},
                   timeout=30)
    elapsed = time.monotonic() - started
    assert r.status_code == 502, r.text
    assert "not trusted" in r.json()["error"]["message"]
    assert len(scripted.requests) == 1, "the submit only: no poll is retried against a URL that can never be used"
    assert elapsed < 2.0, f"took {elapsed:.1f} s"


def test_anyof_failures_name_the_param(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + "/v1/videos", json={"model": "sora-2", "prompt": "x", "seconds": "abc"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "seconds" and "None" not in error["message"], error
    r = httpx.post(gateway.base_url + "/v1/videos", json={"model": "sora-2", "prompt": "x", "seconds": [4]})
    assert r.json()["error"]["param"] == "seconds" and "number or string" in r.json()["error"]["message"]


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-Infinity"])
def test_non_finite_form_numbers_are_not_numbers(text: str) -> None:
    assert _typed(text, {"type": "number"}) == text  # left as text: the schema refuses it by name


def test_nan_in_a_multipart_field_is_a_400(sim: SimulatorThread, tmp_path: Path) -> None:
    spec = yaml.safe_load((MODELS / "gpt-image-2.yaml").read_text())
    spec["id"], spec["aliases"] = "gpt-image-1-strength", []
    spec["params"]["strength"] = {"type": "number", "minimum": 0, "maximum": 1}
    (tmp_path / "models.d").mkdir()
    (tmp_path / "models.d" / "strength.yaml").write_text(yaml.safe_dump(spec))
    with GatewayThread(sim.base_url, tmp_path / "gw", spec_paths=[catalog_mod.shipped_root(), tmp_path]) as gw:
        for text in ("NaN", "Infinity"):
            r = httpx.post(gw.base_url + "/v1/images/edits", data={"model": "gpt-image-1-strength", "prompt": "x",
                                                                   "strength": text},
                           files=[("image", ("i.png", png(64, 64), "image/png"))], timeout=30)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["param"] == "strength"


def test_json_null_for_optional_fields_means_not_given(gateway: GatewayThread) -> None:
    """What the OpenAI SDKs send for a parameter a caller passed as None."""
    body = {"model": "gpt-image-1", "prompt": "x", "n": None, "size": None, "quality": None, "response_format": None,
            "output_format": None, "output_compression": None, "user": None, "background": None}
    r = httpx.post(gateway.base_url + "/v1/images/generations", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["adjustments"] == []
    r = httpx.post(gateway.base_url + "/v1/images/generations", json={"model": "gpt-image-1", "prompt": None})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"


def test_only_success_clears_a_cooldown(gateway: GatewayThread, sim: SimulatorThread) -> None:
    sim.reset()
    health = gateway.runtime.health = Health(failures=1)
    health.record("openai", ok=False)
    assert health.cooling("openai")
    sim.inject("safety", protocol="openai")
    r = httpx.post(gateway.base_url + "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "content_policy_violation", r.text
    assert health.cooling("openai"), "a caller's content-policy error says nothing about the provider's health"
    r = httpx.post(gateway.base_url + "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x"}, timeout=30)
    assert r.status_code == 200 and not health.cooling("openai")


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/v1/nothing-here", 404), ("DELETE", "/v1/images/generations", 405),
                                                        ("GET", "/nope", 404)])
def test_every_answer_carries_a_request_id(gateway: GatewayThread, method: str, path: str, status: int) -> None:
    r = httpx.request(method, gateway.base_url + path)
    assert r.status_code == status
    assert r.headers["x-request-id"].startswith("req_")
    r = httpx.request(method, gateway.base_url + path, headers={"X-Request-Id": "caller-chosen-id-1"})
    assert r.headers["x-request-id"] == "caller-chosen-id-1"


