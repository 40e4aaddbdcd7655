"""Chat completions passthrough: the openai SDK against the gateway, streaming relayed as it is produced."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread


def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0, timeout=30)


@pytest.mark.parametrize(("model", "protocol", "upstream"), [
    ("gpt-4.1-mini", "openai", "gpt-4.1-mini"),
    ("gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
    ("claude-sonnet-4.5", "openrouter", "anthropic/claude-sonnet-4.5"),
])
def test_non_stream_passthrough_renames_the_model(gateway: GatewayThread, sim_clean: SimulatorThread, model: str,
                                                  protocol: str, upstream: str) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello there"}], temperature=0.2, max_tokens=50)
    res = raw.parse()
    assert res.choices[0].message.content and "hello there" in res.choices[0].message.content
    assert raw.headers["x-mediagate-provider"] in ("openai", "gemini-openai", "openrouter")
    sent = sim_clean.requests(protocol)[-1]["json"]
    assert sent["model"] == upstream and sent["temperature"] == 0.2 and sent["max_tokens"] == 50
    assert float(raw.headers["x-mediagate-cost"]) > 0


def test_stream_arrives_in_several_chunks_as_produced(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    stream = client(gateway).chat.completions.create(
        model="gpt-4.1-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count one two three four five six [sim:chunk=80]"}])
    arrivals = []
    text = ""
    for chunk in stream:
        arrivals.append(time.monotonic())
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert len(arrivals) >= 4
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert sum(g > 0.04 for g in gaps) >= 2, f"chunks were buffered, not relayed as produced: {gaps}"
    assert "count one two" in text


def test_client_disconnect_closes_the_upstream_stream(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    body = {"model": "gpt-4.1-mini", "stream": True,
            "messages": [{"role": "user", "content": " ".join(["word"] * 60) + " [sim:chunk=100]"}]}
    with httpx.stream("POST", gateway.base_url + "/v1/chat/completions", json=body, timeout=30) as resp:
        for i, _ in enumerate(resp.iter_bytes()):
            if i >= 2:
                break
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not sim_clean.requests("openai")[-1].get("disconnected"):
        time.sleep(0.05)
    entry = sim_clean.requests("openai")[-1]
    assert entry.get("disconnected") is True and entry["chunks_sent"] < 60


def test_stream_fails_over_before_the_first_byte(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("429", 1, "openai")   # not taken; a 5xx may have been billed and is not resent (test_billing)
    stream = client(gateway).chat.completions.create(model="gpt-5-mini", stream=True,
                                                     messages=[{"role": "user", "content": "hi"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert sim_clean.requests("openrouter")


def test_errors_are_normalized(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="gpt-4.1-mini", messages=[])
    assert exc.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="gemini-3-pro-image", messages=[{"role": "user", "content": "x"}])
    sim_clean.inject("429", 1, "gemini")
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}])


def test_chat_dry_run(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = httpx.post(gateway.base_url + "/v1/chat/completions?dryRun=true",
                   json={"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "x" * 4000}], "max_tokens": 1000})
    est = r.json()
    assert est["estimated"] and est["total_cost_micros"] == 400 + 1600  # 1000 in at $0.40/M, 1000 out at $1.60/M
    assert sim_clean.requests() == []
