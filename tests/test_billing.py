"""No double billing (issue 9 item 5, DESIGN.md §5a): after a failure the provider may have taken, the request
is not sent to another provider; every attempt that may have been billed is counted.

Upstream calls are counted from the simulator's own request log (and the scripted upstream's), so each
test would fail on a gateway that resends: before this rule, every post-send failure below fell back.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest
import yaml

from mediagate.sandbox.testing import SimulatorThread
from tests import legacy
from tests.servers import GatewayThread, Scripted, ScriptedThread

ROOT = Path(__file__).resolve().parent.parent
URL = "/v1/images/generations"
GPT_IMAGE_PRICE = 0.034     # gpt-image-1.5, 1024x1024, quality unset (models.d/gpt-image-1.5.yaml)
GEMINI_PRO_PRICE = 0.134    # gemini-3-pro-image at 1K (models.d/gemini-3-pro-image.yaml)


def post(gw: GatewayThread, body: object, path: str = URL) -> httpx.Response:
    return httpx.post(gw.base_url + path, json=body, timeout=60)


def generations(sim: SimulatorThread, protocol: str) -> list[dict[str, Any]]:
    """The image requests one protocol's simulator received (job polls and result fetches left out)."""
    return [q for q in sim.requests(protocol) if q.get("method", "POST") == "POST" and "cancel" not in q["path"]]


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused before any byte of a request is written."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spec_root(tmp: Path, providers: dict[str, dict[str, Any]] = {}, models: dict[str, dict[str, Any]] = {}) -> Path:
    """An operator spec root layered over the shipped one: these providers and models replace theirs by id."""
    for kind, specs in (("providers.d", providers), ("models.d", models)):
        (tmp / kind).mkdir(parents=True, exist_ok=True)
        for name, spec in specs.items():
            (tmp / kind / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp


def shipped(kind: str, name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / kind / f"{name}.yaml").read_text()))


def assert_not_resent(r: httpx.Response, code: str = "all_providers_exhausted") -> dict[str, Any]:
    """The error table's failed-routes error, saying the provider may have billed it and listing the attempts."""
    assert r.status_code in (429, 502, 504), r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"].startswith("The provider may have processed (and billed) the request")
    assert "[sent; may have been billed" in err["message"]
    assert r.headers["x-should-retry"] == "false"       # OpenAI's SDKs would otherwise resend it themselves
    return dict(err)


# ------------------------------------------------------------------ failures after the send: returned at once

@pytest.mark.parametrize("fault, code", [("drop", "upstream_unavailable"), ("malformed", "upstream_malformed"),
                                         ("500", "upstream_error")])
def test_post_send_failure_is_not_sent_to_the_next_provider(gateway: GatewayThread, sim_clean: SimulatorThread,
                                                            fault: str, code: str) -> None:
    sim_clean.inject(fault, 1, "openai")
    r = post(gateway, {"model": "gpt-image-1.5", "prompt": "a lighthouse"})
    err = assert_not_resent(r)
    assert len(generations(sim_clean, "openai")) == 1
    assert generations(sim_clean, "fal") == []                  # the fallback route was not called
    assert f"openai: {code}" in err["message"]
    assert float(r.headers["x-mediagate-cost"]) == GPT_IMAGE_PRICE and r.headers["x-mediagate-cost-currency"] == "USD"


def test_timeout_after_send_is_not_sent_to_the_next_provider(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.reset()
    fast = {**shipped("providers.d", "openai"), "timeout_s": 0.5}
    with GatewayThread(sim.base_url, tmp_path, [ROOT, legacy.root(), spec_root(tmp_path / "specs", {"openai": fast})]) as gw:
        r = post(gw, {"model": "gpt-image-1.5", "prompt": "slow [sim:latency=2000]"})
    assert_not_resent(r, "upstream_timeout")
    assert r.status_code == 504
    assert len(generations(sim, "openai")) == 1 and generations(sim, "fal") == []
    sim.reset()


# ------------------------------------------------------------------ failures that prove nothing was taken: fall back

def test_refused_connection_falls_back(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.reset()
    unreachable = {k: v for k, v in shipped("providers.d", "openai").items() if k != "sandbox"}
    unreachable["base_url"] = f"http://127.0.0.1:{closed_port()}/v1"
    unreachable["secrets"] = {"api_key": {"env": "MEDIAGATE_TEST_UNSET_KEY", "optional": True}}
    unreachable["configured_when"] = [[]]   # configured without a key: a real call goes to the closed port
    with GatewayThread(sim.base_url, tmp_path, [ROOT, legacy.root(), spec_root(tmp_path / "specs", {"openai": unreachable})]) as gw:
        r = post(gw, {"model": "gpt-image-1.5", "prompt": "a harbour", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    meta = r.json()["metadata"]
    first, second = meta["attempts"]
    assert (first["provider"], first["outcome"], first["sent"], first["may_be_billed"]) == \
        ("openai", "upstream_unavailable", False, False)
    assert "cost" not in first
    assert (second["provider"], second["outcome"], second["sent"]) == ("fal", "ok", True)
    assert meta["cost"] == GPT_IMAGE_PRICE                     # only what fal made
    sim.reset()


def test_rate_limit_falls_back_and_costs_nothing(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("429", 1, "openai")
    r = post(gateway, {"model": "gpt-image-1.5", "prompt": "a harbour", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    meta = r.json()["metadata"]
    assert [(a["provider"], a["sent"], a["may_be_billed"]) for a in meta["attempts"]] == \
        [("openai", True, False), ("fal", True, True)]
    assert meta["cost"] == GPT_IMAGE_PRICE


def test_documented_not_billed_5xx_falls_back(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    """fal documents that a 5xx is never charged (providers.d/fal.yaml `not_billed`): the next route may run it."""
    sim_clean.inject("503", 1, "fal")
    r = post(gateway, {"model": "flux-1.1-pro-ultra", "prompt": "a dune", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    meta = r.json()["metadata"]
    assert [(a["provider"], a["sent"], a["may_be_billed"]) for a in meta["attempts"]] == \
        [("fal", True, False), ("replicate", True, True)]
    assert meta["cost"] == meta["attempts"][1]["cost"]


def test_operator_opt_in_falls_back_and_counts_both_attempts(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.reset()
    model = {**yaml.safe_load((legacy.root() / "gpt-image-1.5.yaml").read_text()), "fallback_after_send": True}
    with GatewayThread(sim.base_url, tmp_path, [ROOT, legacy.root(), spec_root(tmp_path / "specs", models={"gpt-image-1.5": model})]) as gw:
        sim.inject("drop", 1, "openai")
        r = post(gw, {"model": "gpt-image-1.5", "prompt": "a harbour", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    meta = r.json()["metadata"]
    first, second = meta["attempts"]
    assert (first["provider"], first["sent"], first["may_be_billed"], first["cost"]) == ("openai", True, True, GPT_IMAGE_PRICE)
    assert second["provider"] == "fal" and second["cost"] == GPT_IMAGE_PRICE
    assert meta["cost"] == round(2 * GPT_IMAGE_PRICE, 6)       # what the dropped attempt may have cost, too
    sim.reset()


# ------------------------------------------------------------------ fan-out

def test_fanout_with_one_failing_batch_is_not_redone_elsewhere(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    """n=4 on a one-image model is four Gemini calls; one fails after the others were taken: no Vertex call,
    and the taken batches are reported as the request's possible cost."""
    sim_clean.inject("latency=300", 3, "gemini")   # three batches are received and run a little longer ...
    sim_clean.inject("500", 1, "gemini")           # ... the fourth fails once the others were taken
    r = post(gateway, {"model": "gemini-3-pro-image", "prompt": "four foxes", "n": 4})
    assert_not_resent(r)
    assert "gemini: upstream_error" in r.json()["error"]["message"]
    assert "in one of 4 concurrent calls" in r.json()["error"]["message"]
    assert generations(sim_clean, "vertex") == [] and generations(sim_clean, "fal") == []
    assert len(generations(sim_clean, "gemini")) == 4
    assert float(r.headers["x-mediagate-cost"]) == round(4 * GEMINI_PRO_PRICE, 6)   # an undocumented 5xx counts too


def test_fanout_rate_limited_batch_alone_still_counts_the_taken_ones(gateway: GatewayThread,
                                                                     sim_clean: SimulatorThread) -> None:
    """A 429 proves only its own batch was not taken; the siblings sent with it were, so no fallback."""
    sim_clean.inject("latency=300", 3, "gemini")
    sim_clean.inject("429", 1, "gemini")
    r = post(gateway, {"model": "gemini-3-pro-image", "prompt": "four foxes", "n": 4})
    assert_not_resent(r, "rate_limit_exceeded")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert generations(sim_clean, "vertex") == []
    assert float(r.headers["x-mediagate-cost"]) == round(3 * GEMINI_PRO_PRICE, 6)   # the 429'd batch costs nothing


# ------------------------------------------------------------------ chat, before the first byte

def test_chat_drop_after_send_is_not_resent(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("drop", 1, "openai")
    r = post(gateway, {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]}, "/v1/chat/completions")
    assert "openai: upstream_unavailable" in assert_not_resent(r)["message"]
    assert sim_clean.requests("openrouter") == []


def test_chat_stream_5xx_before_first_byte_is_not_resent(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("500", 1, "openai")
    c = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="x")   # the SDK's own retries are on
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="gpt-5-mini", stream=True, messages=[{"role": "user", "content": "hi"}])
    assert len(sim_clean.requests("openai")) == 1                        # X-Should-Retry: false held the SDK back
    assert sim_clean.requests("openrouter") == []


# ------------------------------------------------------------------ idempotency declared by the provider

@pytest.fixture()
def scripted_idem(tmp_path: Path) -> Iterator[tuple[Scripted, GatewayThread]]:
    spec = shipped("providers.d", "openai")
    spec["operations"]["generate"]["idempotency"] = {"header": "Idempotency-Key"}
    with ScriptedThread() as script:
        with GatewayThread(script.base_url, tmp_path, [ROOT, legacy.root(), spec_root(tmp_path / "specs", {"openai": spec})]) as gw:
            yield script, gw


def test_idempotent_provider_is_retried_itself_under_the_same_key(scripted_idem: tuple[Scripted, GatewayThread]) -> None:
    script, gw = scripted_idem
    script.replies += [{"drop": True}, {"json": {"created": 1, "data": [{"b64_json": "$image(png,1024x1024)"}]}}]
    r = post(gw, {"model": "gpt-image-1.5", "prompt": "a harbour", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    calls = [q for q in script.requests if q["path"] != "/" and not q["path"].startswith("/__files__")]
    assert [q["path"] for q in calls] == ["/openai/v1/images/generations"] * 2     # never fal
    keys = {q["headers"].get("idempotency-key") for q in calls}
    assert len(keys) == 1 and None not in keys                                    # one key on both tries
    meta = r.json()["metadata"]
    assert [a.get("idempotent_retry", False) for a in meta["attempts"]] == [False, True]
    assert meta["cost"] == GPT_IMAGE_PRICE                                        # one charge under one key


def test_idempotent_provider_failing_twice_is_returned(scripted_idem: tuple[Scripted, GatewayThread]) -> None:
    script, gw = scripted_idem
    script.replies += [{"drop": True}, {"drop": True}]
    r = post(gw, {"model": "gpt-image-1.5", "prompt": "a harbour"})
    assert_not_resent(r)
    assert len(script.requests) == 2
    assert float(r.headers["x-mediagate-cost"]) == GPT_IMAGE_PRICE                # the pair is charged once at most
