"""Control API, cross-protocol faults, request log and the embedding helpers."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from types import SimpleNamespace

import aiohttp
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors

from mediagate.sandbox import render
from mediagate.sandbox.app import build_app
from mediagate.sandbox.state import REQUEST_LOG_SIZE
from mediagate.sandbox.testing import SimulatorThread, start_in_loop

GEN = "/openai/v1/images/generations"
AUTH = {"Authorization": "Bearer sk-test"}


def gen(util: SimpleNamespace, sim: SimulatorThread, prompt: str = "a cat", **extra: object) -> tuple[int, bytes]:
    status, _, body = util.http("POST", sim.url(GEN), {"model": "dall-e-2", "size": "256x256", "prompt": prompt,
                                                       "response_format": "b64_json", **extra}, AUTH)
    return status, body


def test_health_and_bad_control_requests(sim: SimulatorThread, util: SimpleNamespace) -> None:
    assert sim.control("health") == {"ok": True}
    for body in ({"fault": "418"}, {"fault": "429", "count": 0}, {"fault": "429", "protocol": "midjourney"}, {},
                 {"fault": "job-error", "protocol": "openai"}, {"fault": "safety", "protocol": "a1111"}):
        status, _, _ = util.http("POST", sim.url("/__control__/faults"), body)
        assert status == 400, body
    for config in ({"latency_ms": -1}, {"job_ms": -5}, {"job_ms": "soon"}, {"video_job_ms": 10**9},
                   {"chunk_ms": -1}):
        status, _, _ = util.http("POST", sim.url("/__control__/config"), config)
        assert status == 400, config


def test_queued_faults_are_consumed_in_order(sim: SimulatorThread, util: SimpleNamespace) -> None:
    sim.inject("429", protocol="openai")
    sim.inject("500", count=2)
    sim.inject("503", protocol="gemini")
    assert [f["fault"] for f in sim.control("faults")["faults"]] == ["429", "500", "503"]
    assert [gen(util, sim)[0] for _ in range(4)] == [429, 500, 500, 200]
    assert [f["fault"] for f in sim.control("faults")["faults"]] == ["503"]  # gemini-only, untouched by openai
    status, _, body = util.http("POST", sim.url("/gemini/v1beta/models/gemini-2.5-flash-image:generateContent"),
                                {"contents": [{"parts": [{"text": "x"}]}]}, {"x-goog-api-key": "k"})
    assert status == 503 and json.loads(body)["error"]["status"] == "UNAVAILABLE"
    assert sim.control("faults")["faults"] == []


def test_queued_fault_wins_over_prompt_directive(sim: SimulatorThread, util: SimpleNamespace) -> None:
    sim.inject("500")
    assert gen(util, sim, "x [sim:429]")[0] == 500
    assert gen(util, sim, "x [sim:429]")[0] == 429


def test_request_log(sim: SimulatorThread, util: SimpleNamespace) -> None:
    gen(util, sim, "logged prompt")
    util.http("POST", sim.url("/gemini/v1beta/models/gemini-2.5-flash-image:generateContent?alt=json"),
              {"contents": [{"parts": [{"text": "g"}]}]}, {"X-Goog-Api-Key": "gk"})
    sim.control("health")  # control calls are not logged
    entries = sim.requests()
    assert [e["protocol"] for e in entries] == ["openai", "gemini"]
    first, second = entries
    assert first["method"] == "POST" and first["path"] == GEN
    assert first["json"]["prompt"] == "logged prompt"
    assert first["headers"]["authorization"] == "Bearer sk-test"
    assert second["query"] == {"alt": "json"} and second["headers"]["x-goog-api-key"] == "gk"
    assert sim.requests("gemini") == [second]
    sim.reset()
    assert sim.requests() == []


def test_request_log_is_bounded(sim: SimulatorThread, util: SimpleNamespace) -> None:
    for i in range(REQUEST_LOG_SIZE + 5):
        util.http("POST", sim.url(GEN), {"prompt": f"p{i}"})  # 401s are logged too, and cheap
    entries = sim.requests()
    assert len(entries) == REQUEST_LOG_SIZE
    assert entries[-1]["json"]["prompt"] == f"p{REQUEST_LOG_SIZE + 4}"


def test_latency_config_directive_and_queued(sim: SimulatorThread, util: SimpleNamespace) -> None:
    start = time.perf_counter()
    gen(util, sim, "fast")
    assert time.perf_counter() - start < 0.5
    sim.set_latency(150)
    start = time.perf_counter()
    gen(util, sim, "slow base")
    assert time.perf_counter() - start >= 0.15
    sim.reset()
    assert sim.control("config") == {"config": {"latency_ms": 0.0, "job_ms": 300.0, "video_job_ms": 1000.0,
                                                "chunk_ms": 20.0}}
    start = time.perf_counter()
    status, _ = gen(util, sim, "directive [sim:latency=120]")
    assert status == 200 and time.perf_counter() - start >= 0.12
    sim.inject("latency=120")
    start = time.perf_counter()
    status, _ = gen(util, sim, "then rate limited [sim:429]")
    assert status == 429 and time.perf_counter() - start >= 0.12  # queued latency lets directives apply


def test_drop_closes_without_a_response(sim: SimulatorThread, oai: openai.OpenAI, gclient: genai.Client) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.images.generate(model="gpt-image-1", prompt="x [sim:drop]")
    with pytest.raises(httpx2.TransportError):
        gclient.models.generate_content(model="gemini-2.5-flash-image", contents="x [sim:drop]")
    host, port = sim.base_url.removeprefix("http://").split(":")
    body = json.dumps({"prompt": "x"}).encode()
    sim.inject("drop")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (f"POST {GEN} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        sock.sendall(head.encode() + body)
        assert sock.recv(1024) == b""
    assert sim.control("health") == {"ok": True}  # the server itself is fine


def test_malformed_bodies(sim: SimulatorThread, util: SimpleNamespace, gclient: genai.Client) -> None:
    status, body = gen(util, sim, "x [sim:malformed]")
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    sim.inject("malformed", protocol="gemini")
    status, headers, raw = util.http("POST", sim.url("/gemini/v1beta/models/gemini-2.5-flash-image:generateContent"),
                                     {"contents": [{"parts": [{"text": "x"}]}]}, {"x-goog-api-key": "k"})
    assert status == 200 and headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    with pytest.raises((json.JSONDecodeError, errors.APIError, ValueError)):
        gclient.models.generate_content(model="gemini-2.5-flash-image", contents="x [sim:malformed]")


def test_rendering_runs_off_the_event_loop(sim: SimulatorThread, util: SimpleNamespace,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = render.render_uncached

    def spy(*args: object, **kwargs: object) -> bytes:
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(render, "render_uncached", spy)
    assert gen(util, sim, f"unique prompt {time.time()}")[0] == 200
    assert seen and all(name != "sandbox-simulator" for name in seen)


def test_start_in_loop_embeds_in_a_running_loop() -> None:
    async def scenario() -> None:
        runner, base_url = await start_in_loop(build_app(latency_ms=0), "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(base_url + "/__control__/health") as resp:
                    assert await resp.json() == {"ok": True}
                async with session.post(base_url + GEN, json={"model": "dall-e-2", "prompt": "embedded",
                                                              "size": "256x256"},
                                        headers=AUTH) as resp:
                    assert resp.status == 200
                    url = (await resp.json())["data"][0]["url"]
                async with session.get(url) as resp:
                    assert resp.status == 200 and resp.content_type == "image/png"
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    runner_latency = asyncio.run(_latency_only())
    assert runner_latency.startswith("http://127.0.0.1:")


async def _latency_only() -> str:
    runner, base_url = await start_in_loop(25.0)
    await runner.cleanup()
    return base_url


def test_simulator_thread_lifecycle() -> None:
    sim = SimulatorThread(latency_ms=5).start()
    try:
        assert sim.control("config")["config"] == {"latency_ms": 5.0, "job_ms": 300.0, "video_job_ms": 1000.0,
                                                   "chunk_ms": 20.0}
    finally:
        sim.stop()
    sim.stop()  # idempotent


def test_new_protocols_share_the_log_and_the_fault_queue(sim: SimulatorThread, util: SimpleNamespace) -> None:
    sim.inject("job-error")  # any protocol may take it, but only fal can express it
    assert gen(util, sim)[0] == 200
    assert [f["fault"] for f in sim.control("faults")["faults"]] == ["job-error"]
    fal_key = {"Authorization": "Key k:s"}
    _, _, raw = util.http("POST", sim.url("/fal/queue/fal-ai/flux/schnell"), {"prompt": "x [sim:job=0]"}, fal_key)
    handle = json.loads(raw)
    assert sim.control("faults")["faults"] == []
    status, _, _ = util.http("GET", handle["response_url"], None, fal_key)
    assert status == 504
    util.http("POST", sim.url("/replicate/v1/models/black-forest-labs/flux-schnell/predictions"),
              {"input": {"prompt": "x [sim:job=0]"}}, {"Authorization": "Bearer r8", "Prefer": "wait"})
    util.http("POST", sim.url("/vertex/v1/projects/p/locations/l/publishers/google/models/imagen-4.0-generate-001"
                              ":predict"), {"instances": [{"prompt": "x"}], "parameters": {"sampleCount": 1}},
              {"Authorization": "Bearer sandbox"})
    util.http("GET", sim.url("/a1111/sdapi/v1/sd-models"))
    counts = {p: len(sim.requests(p)) for p in ("openai", "fal", "replicate", "vertex", "a1111")}
    assert counts == {"openai": 1, "fal": 2, "replicate": 1, "vertex": 1, "a1111": 1}
    assert sim.requests("fal")[0]["request_id"] == handle["request_id"]
    sim.inject("fail", protocol="replicate")
    status, _, raw = util.http("POST", sim.url("/replicate/v1/models/black-forest-labs/flux-schnell/predictions"),
                               {"input": {"prompt": "x [sim:job=0]"}}, {"Authorization": "Bearer r8",
                                                                          "Prefer": "wait"})
    assert status == 201 and json.loads(raw)["status"] == "failed"


def test_job_rendering_runs_off_the_event_loop(sim: SimulatorThread, util: SimpleNamespace,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = render.render_uncached

    def spy(*args: object, **kwargs: object) -> bytes:
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(render, "render_uncached", spy)
    status, _, _ = util.http("POST", sim.url("/fal/run/fal-ai/flux/schnell"),
                             {"prompt": f"unique fal prompt {time.time()} [sim:job=0]"}, {"Authorization": "Key k:s"})
    assert status == 200 and seen and all(name != "sandbox-simulator" for name in seen)


def test_job_time_config_covers_video_jobs(sim: SimulatorThread) -> None:
    sim.set_job_ms(40)  # job_ms alone sets every async job, video jobs included ...
    assert sim.control("config")["config"] == {"latency_ms": 0.0, "job_ms": 40.0, "video_job_ms": 40.0,
                                               "chunk_ms": 20.0}
    sim.control("config", {"job_ms": 10, "video_job_ms": 500, "chunk_ms": 5})  # ... unless both are given
    assert sim.control("config")["config"] == {"latency_ms": 0.0, "job_ms": 10.0, "video_job_ms": 500.0,
                                               "chunk_ms": 5.0}
    sim.reset()
    assert sim.control("config")["config"]["video_job_ms"] == 1000.0
