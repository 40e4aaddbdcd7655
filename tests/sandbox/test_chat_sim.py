"""Chat completions as OpenAI, Gemini's OpenAI compatibility layer and OpenRouter serve
them, driven through the official openai SDK (``base_url`` pointed at each)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import openai
import pytest

from mediagate.sandbox.testing import SimulatorThread

USER = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]


def client(sim: SimulatorThread, root: str, key: str = "key") -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url + root, api_key=key, max_retries=0)


@pytest.fixture
def gem(sim: SimulatorThread) -> Iterator[openai.OpenAI]:
    with client(sim, "/gemini/v1beta/openai", "gemini-key") as c:
        yield c


@pytest.fixture
def orouter(sim: SimulatorThread) -> Iterator[openai.OpenAI]:
    with client(sim, "/openrouter/api/v1", "sk-or-v1-test") as c:
        yield c


def test_openai_non_stream(sim: SimulatorThread, oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model="gpt-4.1-mini", messages=USER)  # type: ignore[arg-type]
    assert resp.id.startswith("chatcmpl-") and resp.object == "chat.completion" and resp.model == "gpt-4.1-mini"
    choice = resp.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.content == "You said: hello there. This is a simulated reply from gpt-4.1-mini."
    assert resp.usage and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    again = oai.chat.completions.create(model="gpt-4.1-mini", messages=USER)  # type: ignore[arg-type]
    assert again.choices[0].message.content == choice.message.content  # deterministic
    logged = sim.requests("openai")[0]
    assert logged["path"] == "/openai/v1/chat/completions" and logged["json"]["messages"] == USER


def test_openai_stream_arrives_incrementally(sim: SimulatorThread, oai: openai.OpenAI) -> None:
    stamps: list[float] = []
    chunks = []
    start = time.perf_counter()
    stream = oai.chat.completions.create(model="gpt-5-mini", stream=True, stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": "count the chunks [sim:chunk=60]"}])
    for chunk in stream:
        stamps.append(time.perf_counter() - start)
        chunks.append(chunk)
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: count the chunks. This is a simulated reply from gpt-5-mini."
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 4
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1
    gaps = [b - a for a, b in zip(stamps[1:], stamps[2:])]
    assert stamps[-1] - stamps[0] >= 0.3 and max(gaps) >= 0.04  # delivered over time, not in one burst
    entry = sim.requests("openai")[-1]
    assert entry["stream"] is True and entry["completed"] is True and entry["chunk_ms"] == 60
    assert "disconnected" not in entry


def test_gemini_compat_and_openrouter(gem: openai.OpenAI, orouter: openai.OpenAI, sim: SimulatorThread) -> None:
    g = gem.chat.completions.create(model="gemini-2.5-flash", messages=USER)  # type: ignore[arg-type]
    assert g.choices[0].message.content == "You said: hello there. This is a simulated reply from gemini-2.5-flash."
    assert sim.requests("gemini")[0]["headers"]["authorization"] == "Bearer gemini-key"
    streamed = gem.chat.completions.create(model="gemini-3-pro-preview", messages=USER, stream=True)  # type: ignore
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices).startswith("You said: hello")
    r = orouter.chat.completions.create(model="anthropic/claude-sonnet-4.5", messages=USER)  # type: ignore
    assert r.id.startswith("gen-") and r.model == "anthropic/claude-sonnet-4.5"
    assert r.model_extra and r.model_extra["provider"] == "Anthropic"
    pieces = list(orouter.chat.completions.create(model="meta-llama/llama-3.3-70b-instruct", messages=USER,
                                                  stream=True))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices).endswith("llama-3.3-70b-instruct.")
    assert sim.requests("openrouter")[-1]["path"] == "/openrouter/api/v1/chat/completions"


def test_n_and_max_tokens(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model="gpt-4o-mini", messages=USER, n=2, max_tokens=3)  # type: ignore
    assert [c.index for c in resp.choices] == [0, 1]
    assert all(c.finish_reason == "length" for c in resp.choices)
    assert resp.choices[0].message.content == "You said: hello"
    assert resp.usage and resp.usage.completion_tokens == 6


def test_errors_in_each_upstream_format(sim: SimulatorThread, oai: openai.OpenAI, gem: openai.OpenAI,
                                        orouter: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as o429:
        oai.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x [sim:429]"}])
    assert o429.value.code == "rate_limit_exceeded" and o429.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.RateLimitError) as g429:
        gem.chat.completions.create(model="gemini-2.5-pro", messages=[{"role": "user", "content": "x [sim:429]"}])
    assert isinstance(g429.value.body, list) and g429.value.body[0]["error"]["status"] == "RESOURCE_EXHAUSTED"
    with pytest.raises(openai.RateLimitError) as r429:
        orouter.chat.completions.create(model="openai/gpt-4.1", messages=[{"role": "user", "content": "x [sim:429]"}])
    assert r429.value.body["code"] == 429 and r429.value.response.headers["retry-after"] == "1"  # type: ignore
    with pytest.raises(openai.NotFoundError) as unknown:
        gem.chat.completions.create(model="claude-3", messages=USER)  # type: ignore[arg-type]
    assert unknown.value.body[0]["error"]["status"] == "NOT_FOUND"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad_id:
        orouter.chat.completions.create(model="not a model", messages=USER)  # type: ignore[arg-type]
    assert bad_id.value.body["message"] == "not a model is not a valid model ID"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="gpt-image-1", messages=USER)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as empty:
        oai.chat.completions.create(model="gpt-4.1", messages=[])
    assert empty.value.code == "empty_array"
    with pytest.raises(openai.BadRequestError) as temp:
        oai.chat.completions.create(model="gpt-4.1", messages=USER, temperature=3)  # type: ignore[arg-type]
    assert temp.value.code == "decimal_above_max_value"
    for c, status in ((client(sim, "/openai/v1", "bad-key"), 401), (client(sim, "/openrouter/api/v1", "bad"), 401),
                      (client(sim, "/gemini/v1beta/openai", "bad"), 400)):
        with c, pytest.raises(openai.APIStatusError) as denied:
            c.chat.completions.create(model="gpt-4.1" if "openai/v1" in str(c.base_url) else
                                      "gemini-2.5-flash" if "gemini" in str(c.base_url) else "x/y", messages=USER)
        assert denied.value.status_code == status
    with pytest.raises(openai.PermissionDeniedError) as blocked:  # OpenRouter's moderation error
        orouter.chat.completions.create(model="x/y", messages=[{"role": "user", "content": "x [sim:prompt-blocked]"}])
    assert blocked.value.body["metadata"]["reasons"] == ["violence"]  # type: ignore[index]


def test_transport_faults(sim: SimulatorThread, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x [sim:drop]"}])
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x [sim:malformed]"}])
    with pytest.raises(json.JSONDecodeError):
        list(oai.chat.completions.create(model="gpt-4.1", stream=True,
                                         messages=[{"role": "user", "content": "x [sim:malformed]"}]))
    got: list[str] = []
    with pytest.raises(openai.APIConnectionError):  # the stream ended without a finish chunk or [DONE]
        for chunk in oai.chat.completions.create(model="gpt-4.1", stream=True,
                                                 messages=[{"role": "user", "content": "cut me [sim:stream-cut]"}]):
            got.extend(c.delta.content or "" for c in chunk.choices)
    assert got and sim.requests("openai")[-1]["cut"] is True
    safe = oai.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x [sim:safety]"}])
    assert safe.choices[0].finish_reason == "content_filter" and safe.choices[0].message.content is None
    sim.inject("500", protocol="openrouter")
    with client(sim, "/openrouter/api/v1") as o, pytest.raises(openai.InternalServerError):
        o.chat.completions.create(model="x/y", messages=USER)  # type: ignore[arg-type]


def test_client_disconnect_mid_stream_is_recorded(sim: SimulatorThread, util: SimpleNamespace) -> None:
    body = {"model": "gpt-4.1", "stream": True,
            "messages": [{"role": "user", "content": "one two three four five six seven eight nine ten"}]}
    sim.set_chunk_ms(80)
    with httpx.Client(timeout=10) as http, http.stream("POST", sim.url("/openai/v1/chat/completions"), json=body,
                                                       headers={"Authorization": "Bearer sk"}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = 0
        for line in resp.iter_lines():
            events += line.startswith("data: ")
            if events == 3:
                break  # leaving the block closes the connection mid-stream
    deadline = time.time() + 3
    while time.time() < deadline and not sim.requests("openai")[-1].get("disconnected"):
        time.sleep(0.05)
    entry = sim.requests("openai")[-1]
    assert entry["disconnected"] is True and entry["completed"] is False
    assert 3 <= entry["chunks_sent"] < 10 and entry["chunk_ms"] == 80
