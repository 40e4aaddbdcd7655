"""Regressions found in review: each was a real failure before its fix."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from mediagate import forms
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


def _wait_status(gw: GatewayThread, vid: str, wanted: set[str], timeout_s: float = 20) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = httpx.get(gw.base_url + f"/v1/videos/{vid}").json()
        if job["status"] in wanted or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_shutdown_does_not_cancel_upstream_jobs_and_every_batch_resumes(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.reset()
    with GatewayThread(sim.base_url, tmp_path) as first:
        vid = httpx.post(first.base_url + "/v1/videos", json={"model": "fal/veo-3.1", "prompt": "a [sim:job=2500]", "n": 2,
                                                              "seconds": 4}).json()["id"]
        deadline = time.monotonic() + 10
        while len([q for q in sim.requests("fal") if q["method"] == "POST"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    assert not [q for q in sim.requests("fal") if q["method"] == "PUT"], "a shutdown must not cancel upstream jobs"
    with GatewayThread(sim.base_url, tmp_path) as second:
        job = _wait_status(second, vid, {"completed", "failed"})
    assert job["status"] == "completed", job
    assert len([q for q in sim.requests("fal") if q["method"] == "POST"]) == 2, "both batches resumed, none resubmitted"


def test_idempotency_key_is_free_again_after_delete(gateway: GatewayThread) -> None:
    body = {"model": "wan-2.5", "prompt": "x [sim:job=100]", "idempotency_key": "reuse-after-delete"}
    first = httpx.post(gateway.base_url + "/v1/videos", json=body).json()["id"]
    assert httpx.delete(gateway.base_url + f"/v1/videos/{first}").json()["deleted"] is True
    again = httpx.post(gateway.base_url + "/v1/videos", json=body)
    assert again.status_code == 202 and again.json()["id"] != first


@pytest.mark.parametrize("url", ["https://100.100.100.200/latest/meta-data", "https://[64:ff9b::a9fe:a9fe]/",
                                 "https://[2002:7f00:1::1]/", "https://[::1", "https://example.com:99999/"])
def test_more_non_public_and_broken_urls_are_400(gateway: GatewayThread, url: str) -> None:
    r = httpx.post(gateway.base_url + "/v1/videos", json={"model": "wan-2.5", "prompt": "x", "webhook_url": url})
    assert r.status_code == 400 and r.json()["error"]["param"] == "webhook_url", r.text
    r = httpx.post(gateway.base_url + "/v1/images/edits", json={"model": "gpt-image-1", "prompt": "x", "image": url})
    assert r.status_code == 400 and r.json()["error"]["param"] == "image", r.text


def test_chunked_multipart_over_the_limit_is_413(gateway: GatewayThread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forms, "MAX_MULTIPART_BODY_BYTES", 2 * 1024 * 1024)
    boundary = "mediagateboundary"

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-image-1\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
               "Content-Type: image/png\r\n\r\n").encode()
        for _ in range(64):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()
    r = httpx.post(gateway.base_url + "/v1/images/edits", content=body(),
                   headers={"content-type": f"multipart/form-data; boundary={boundary}"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_chat_dry_run_with_odd_content_is_not_a_500(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + "/v1/chat/completions?dryRun=true",
                   json={"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}, None]}]})
    assert r.status_code == 200 and r.json()["estimated"] is True
