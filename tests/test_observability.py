"""/metrics and the logs, driven by real requests: every family parses with prometheus_client, the counters
and histograms move for what was done, labels stay bounded; every line `serve` prints is structured."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mediagate import logs, reqctx
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread
from tests.test_cli_serve import _free_port, _ready

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gw: GatewayThread | str) -> Samples:
    base = gw if isinstance(gw, str) else gw.base_url
    r = httpx.get(base + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def post(gw: GatewayThread, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gw.base_url + path, json=body, timeout=60)


def test_a_generation_with_conversion_moves_requests_latency_overhead_conversions_and_cost(gateway: GatewayThread) -> None:
    before = scrape(gateway)
    r = post(gateway, "/v1/images/generations", {"model": "gemini-3-pro-image", "prompt": "a fox", "n": 2,
                                                 "response_format": "b64_json", "output_format": "webp"})
    assert r.status_code == 200, r.text
    provider = r.headers["x-mediagate-provider"]
    after = scrape(gateway)
    labels = {"endpoint": "images.generations", "model": "gemini-3-pro-image", "provider": provider, "outcome": "ok"}
    assert moved(before, after, "mediagate_requests_total", **labels) == 1
    assert moved(before, after, "mediagate_request_duration_seconds_count", **labels) == 1
    assert moved(before, after, "mediagate_request_duration_seconds_bucket", le="+Inf", **labels) == 1
    assert moved(before, after, "mediagate_gateway_overhead_seconds_count", endpoint="images.generations") == 1
    overhead = moved(before, after, "mediagate_gateway_overhead_seconds_sum", endpoint="images.generations")
    latency = moved(before, after, "mediagate_request_duration_seconds_sum", **labels)
    assert 0 <= overhead < latency
    assert moved(before, after, "mediagate_format_conversions_total", format="webp") == 2
    assert moved(before, after, "mediagate_image_deliveries_total", delivered="b64_json") == 2
    assert moved(before, after, "mediagate_upstream_attempts_total", provider=provider, outcome="ok") == 1
    assert moved(before, after, "mediagate_cost_total", model="gemini-3-pro-image", provider=provider, team="default") == \
        pytest.approx(r.json()["metadata"]["cost"])


def test_a_fallback_counts_the_failed_attempt_and_the_fallback(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    before = scrape(gateway)
    sim_clean.inject("429", 1, "replicate")
    r = post(gateway, "/v1/images/generations", {"model": "flux.2-max", "prompt": "a glacier", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    after = scrape(gateway)
    assert moved(before, after, "mediagate_upstream_attempts_total", provider="replicate", outcome="rate_limit_exceeded") == 1
    assert moved(before, after, "mediagate_fallbacks_total", provider="replicate") == 1
    assert moved(before, after, "mediagate_upstream_attempts_total", provider="fal", outcome="ok") == 1
    assert moved(before, after, "mediagate_requests_total", endpoint="images.generations", model="flux.2-max",
                 provider="fal", outcome="ok") == 1


def test_fan_out_and_url_delivery_are_counted(gateway: GatewayThread) -> None:
    before = scrape(gateway)
    r = post(gateway, "/v1/images/generations", {"model": "dall-e-3", "prompt": "x", "n": 2})
    assert r.status_code == 200, r.text
    after = scrape(gateway)
    provider = r.headers["x-mediagate-provider"]
    assert moved(before, after, "mediagate_fanout_requests_total", provider=provider) == 1
    assert moved(before, after, "mediagate_fanout_calls_total", provider=provider) == 2
    assert moved(before, after, "mediagate_image_deliveries_total", delivered="url") == 2


def test_a_caller_model_name_never_becomes_a_label(gateway: GatewayThread) -> None:
    before = scrape(gateway)
    raw = "no-such-model-7f3a9"
    assert post(gateway, "/v1/images/generations", {"model": raw, "prompt": "x"}).status_code == 404
    after = scrape(gateway)
    assert moved(before, after, "mediagate_requests_total", endpoint="images.generations", model="unknown",
                 outcome="model_not_found") == 1
    assert not any(raw in v or v.startswith("req_") for _, ls in after for _, v in ls)


def test_a_chat_stream_is_measured_to_its_last_byte(gateway: GatewayThread) -> None:
    before = scrape(gateway)
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="x", max_retries=0)
    started = time.monotonic()
    stream = client.chat.completions.create(model="gpt-4.1-mini", stream=True,
                                            messages=[{"role": "user", "content": "one two three four five six [sim:chunk=80]"}])
    arrivals = [time.monotonic() for _ in stream]
    took = time.monotonic() - started
    relayed = arrivals[-1] - arrivals[0]   # the gateway was still sending all this time after its headers
    assert len(arrivals) >= 4 and relayed > 0.2
    after = scrape(gateway)
    labels = {"endpoint": "chat.completions", "model": "gpt-4.1-mini", "outcome": "ok"}
    assert moved(before, after, "mediagate_request_duration_seconds_count", **labels) == 1
    latency = moved(before, after, "mediagate_request_duration_seconds_sum", **labels)
    assert relayed <= latency <= took, (latency, relayed, took)   # to the last byte, not just to the headers
    overhead = moved(before, after, "mediagate_gateway_overhead_seconds_sum", endpoint="chat.completions")
    assert overhead < latency / 2   # the relay's pace is the provider's


def test_a_video_job_shows_in_the_job_gauges_and_its_cost(gateway: GatewayThread) -> None:
    before = scrape(gateway)
    r = post(gateway, "/v1/videos", {"model": "sora-2", "prompt": "a paper boat [sim:job=1500]", "seconds": "4",
                                     "size": "1280x720"})
    assert r.status_code in (200, 202), r.text
    video_id = r.json()["id"]
    during = scrape(gateway)
    assert total(during, "mediagate_job_store_up") == 1
    assert total(during, "mediagate_video_jobs") >= 1
    assert total(during, "mediagate_video_oldest_job_age_seconds") >= 0
    deadline = time.monotonic() + 30
    while httpx.get(f"{gateway.base_url}/v1/videos/{video_id}").json()["status"] in ("queued", "in_progress"):
        assert time.monotonic() < deadline, "the video job did not finish"
        time.sleep(0.1)
    after = scrape(gateway)
    assert moved(before, after, "mediagate_requests_total", endpoint="videos.create", model="sora-2") == 1
    assert moved(before, after, "mediagate_cost_total", model="sora-2", provider="openai") == pytest.approx(0.4)
    assert moved(before, after, "mediagate_upstream_attempts_total", provider="openai", outcome="ok") >= 1


def test_a_file_download_is_measured_to_its_last_byte(gateway: GatewayThread) -> None:
    url = post(gateway, "/v1/images/generations", {"model": "dall-e-2", "prompt": "x", "size": "256x256"}).json()["data"][0]["url"]
    before = scrape(gateway)
    assert httpx.get(url).status_code == 200
    after = scrape(gateway)
    assert moved(before, after, "mediagate_requests_total", endpoint="media", outcome="ok") == 1


def test_a_log_line_from_inside_a_request_carries_its_request_id() -> None:
    record = logging.LogRecord("mediagate.jobrunner", logging.WARNING, __file__, 1, "video job %s: taken over", ("v1",), None)
    assert json.loads(logs.JsonFormatter().format(record))["request_id"] is None
    reqctx.begin("req_abc12345", "videos.create")
    reqctx.note(model="sora-2")
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["request_id"] == "req_abc12345" and line["model"] == "sora-2" and line["message"] == "video job v1: taken over"
    assert "req_abc12345" in logs.TextFormatter().format(record)


REQUIRED = ("timestamp", "level", "logger", "message", "request_id", "key", "team", "model", "provider", "status",
            "error_code", "latency_ms")


def _serve(tmp: Path, fmt: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("MEDIAGATE_")}
    env.update(MEDIAGATE_MEDIA_DIR=str(tmp / "media"), MEDIAGATE_STATE_DIR=str(tmp / "state"), PYTHONUNBUFFERED="1",
               MEDIAGATE_LOG_FORMAT=fmt)
    log = tmp / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mediagate.cli", "serve", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    assert proc.wait(15) == 0


def test_every_line_serve_prints_is_json_with_the_fields(tmp_path: Path) -> None:
    proc, base, log = _serve(tmp_path, "json")
    try:
        _ready(base, proc)
        ok = httpx.post(base + "/v1/images/generations", json={"model": "gpt-image-2", "prompt": "x"}, timeout=60,
                        headers={"X-Request-Id": "req_logtest_ok_1"})
        assert ok.status_code == 200
        bad = httpx.post(base + "/v1/images/generations", json={"model": "nope", "prompt": "x"},
                         headers={"X-Request-Id": "req_logtest_bad_1"})
        assert bad.status_code == 404
    finally:
        _stop(proc)
    lines = log.read_text().splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    for p in parsed:
        assert all(k in p for k in REQUIRED), p
    loggers = {p["logger"] for p in parsed}
    assert any(name.startswith("uvicorn") for name in loggers), loggers   # uvicorn's own lines too
    messages = " ".join(p["message"] for p in parsed)
    assert "sandbox: simulators at" in messages and "listening on" in messages and "mediagate: stopped" in messages
    okline = next(p for p in parsed if p["request_id"] == "req_logtest_ok_1" and p["message"] == "request")
    assert okline["model"] == "gpt-image-2" and okline["provider"] and okline["status"] == 200 and okline["latency_ms"] > 0
    assert okline["error_code"] is None and okline["key"] is None and okline["team"] is None
    badline = next(p for p in parsed if p["request_id"] == "req_logtest_bad_1")
    assert badline["status"] == 404 and badline["error_code"] == "model_not_found" and badline["level"] == "info"


def test_text_format_prints_lines_for_a_terminal(tmp_path: Path) -> None:
    proc, base, log = _serve(tmp_path, "text")
    try:
        _ready(base, proc)
        assert httpx.get(base + "/healthz").status_code == 200
    finally:
        _stop(proc)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines and "listening on" in log.read_text()
    for line in lines:
        with pytest.raises(ValueError):
            json.loads(line)
