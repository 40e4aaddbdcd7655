"""Video jobs: the openai SDK end to end, Veo, restarts, idempotency, listing, cancelling, webhooks, pricing."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Iterator

import av
import httpx
import openai
import pytest

from mediagate import webhooks
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0, timeout=60)


def wait(c: openai.OpenAI, video_id: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    v = c.videos.retrieve(video_id)
    while v.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        v = c.videos.retrieve(video_id)
    return v


def probe(data: bytes) -> tuple[int, int, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.width, stream.codec_context.height, frames / float(stream.average_rate or 1)


def test_sora_create_retrieve_download_plays(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="sora-2", prompt="a paper boat [sim:job=300]", seconds="4", size="1280x720")
    assert video.status == "queued" and video.id.startswith("video_")
    done = wait(c, video.id)
    assert done.status == "completed" and done.progress == 100
    data = c.videos.download_content(video.id).read()
    width, height, seconds = probe(data)
    assert (width, height) == (1280, 720) and abs(seconds - 4) < 0.5
    meta = done.model_extra["metadata"]
    assert meta["provider"] == "openai" and meta["cost"] == pytest.approx(0.4)
    assert [q["method"] for q in sim_clean.requests("openai")][0] == "POST"


def test_veo_on_the_gemini_api_downloads_with_the_key(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="veo-3.1", prompt="a lighthouse [sim:job=300]", seconds="6", extra_body={"aspect_ratio": "9:16"})
    done = wait(c, video.id)
    assert done.status == "completed", done.error
    assert done.size == "720x1280" and done.seconds == "6"
    width, height, seconds = probe(c.videos.download_content(video.id).read())
    assert (width, height) == (720, 1280) and abs(seconds - 6) < 0.5
    log = sim_clean.requests("gemini")
    assert log[0]["path"].endswith(":predictLongRunning") and log[0]["json"]["parameters"]["durationSeconds"] == "6"
    downloads = [q for q in log if "files/" in q["path"]]
    assert downloads and downloads[0]["headers"]["x-goog-api-key"] == "sandbox"


def test_durations_are_matched_and_recorded(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + "/v1/videos", json={"model": "kling-2.5-turbo-pro", "prompt": "x", "duration": 7})
    assert r.status_code == 202
    adj = r.json()["metadata"]["adjustments"]
    assert adj == [{"param": "seconds", "requested": 7, "applied": 5, "reason": "nearest supported duration (5, 10 s)"}]


def test_a_job_survives_a_restart_without_being_submitted_twice(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.reset()
    with GatewayThread(sim.base_url, tmp_path) as first:
        c = client(first)
        video = c.videos.create(model="veo-3.1", prompt="slow sunrise [sim:job=2500]", seconds="4")
        deadline = time.monotonic() + 10
        while c.videos.retrieve(video.id).status != "in_progress" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.videos.retrieve(video.id).status == "in_progress"
    with GatewayThread(sim.base_url, tmp_path) as second:
        done = wait(client(second), video.id)
        assert done.status == "completed", done.error
        assert client(second).videos.download_content(video.id).read()[4:8] == b"ftyp"
    submits = [q for q in sim.requests("gemini") if q["path"].endswith(":predictLongRunning")]
    assert len(submits) == 1, "the restarted gateway resumed the upstream job instead of starting another"


def test_idempotency_key_returns_the_existing_job(gateway: GatewayThread) -> None:
    body = {"model": "wan-2.5", "prompt": "x [sim:job=300]", "idempotency_key": "order-4711"}
    first = httpx.post(gateway.base_url + "/v1/videos", json=body)
    again = httpx.post(gateway.base_url + "/v1/videos", json=body)
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]


def test_list_is_paginated(gateway: GatewayThread) -> None:
    ids = [httpx.post(gateway.base_url + "/v1/videos", json={"model": "wan-2.5", "prompt": f"clip {i} [sim:job=200]"}).json()["id"]
           for i in range(3)]
    c = client(gateway)
    page = c.videos.list(limit=2, order="desc")
    assert [v.id for v in page.data] == ids[::-1][:2] and page.has_more
    rest = httpx.get(gateway.base_url + "/v1/videos", params={"limit": 2, "order": "desc", "after": page.data[-1].id}).json()
    assert rest["data"][0]["id"] == ids[0]
    assert httpx.get(gateway.base_url + "/v1/videos", params={"limit": 0}).status_code == 400


def test_delete_cancels_the_upstream_job(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="fal/veo-3.1", prompt="long one [sim:job=20000]", seconds="4")
    deadline = time.monotonic() + 5
    while c.videos.retrieve(video.id).status != "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
    deleted = c.videos.delete(video.id)
    assert deleted.deleted is True
    assert httpx.get(gateway.base_url + f"/v1/videos/{video.id}").status_code == 404
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(q["method"] == "PUT" for q in sim_clean.requests("fal")):
        time.sleep(0.05)
    assert any(q["method"] == "PUT" and q["path"].endswith("/cancel") for q in sim_clean.requests("fal"))


def test_content_before_completion_is_409(gateway: GatewayThread) -> None:
    vid = httpx.post(gateway.base_url + "/v1/videos", json={"model": "wan-2.5", "prompt": "x [sim:job=5000]"}).json()["id"]
    r = httpx.get(gateway.base_url + f"/v1/videos/{vid}/content")
    assert r.status_code == 409 and r.json()["error"]["code"] == "video_not_ready"
    assert httpx.get(gateway.base_url + "/v1/videos/video_nope").status_code == 404


def test_failed_job_reports_its_error(gateway: GatewayThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="sora-2", prompt="x [sim:safety]")
    done = wait(c, video.id)
    assert done.status == "failed"
    assert done.error.code == "content_policy_violation"


def test_dry_run_prices_seconds(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = httpx.post(gateway.base_url + "/v1/videos?dryRun=true", json={"model": "veo-3.1", "prompt": "x", "seconds": 8})
    assert r.json()["total_cost_micros"] == 3_200_000
    # nothing submitted (earlier tests' jobs may still be polled in the background: GETs only)
    assert [q for q in sim_clean.requests() if q["method"] == "POST"] == []


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status = 500 if _Hook.fail_first > 0 else 200
        _Hook.fail_first -= 1
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture()
def hook_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()


def test_webhook_is_signed_and_retried(sim: SimulatorThread, tmp_path: Path, hook_server: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "RETRY_SCHEDULE_S", (0.2, 0.2))
    secret = webhooks.new_secret()
    _Hook.fail_first = 1
    with GatewayThread(sim.base_url, tmp_path, fetch_allow="127.0.0.1", webhook_secret=secret) as gw:
        c = client(gw)
        video = c.videos.create(model="sora-2", prompt="x [sim:job=200]", extra_body={"webhook_url": hook_server})
        assert wait(c, video.id).status == "completed"
        deadline = time.monotonic() + 10
        while len(_Hook.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(_Hook.received) == 2, "one failed delivery, then the retry"
    headers, body = _Hook.received[-1]
    assert webhooks.verify(secret, headers, body)
    assert not webhooks.verify(webhooks.new_secret(), headers, body)
    event = json.loads(body)
    assert event["type"] == "video.completed" and event["data"]["id"] == video.id
    assert headers["webhook-id"] == _Hook.received[0][0]["webhook-id"], "a retry keeps its message id"


def test_webhook_to_a_private_address_is_refused(gateway: GatewayThread) -> None:
    r = httpx.post(gateway.base_url + "/v1/videos", json={"model": "sora-2", "prompt": "x", "webhook_url": "https://169.254.169.254/"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "webhook_url"


def test_multipart_create_with_an_input_reference(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (1280, 720), (20, 90, 160)).save(buf, "PNG")
    c = client(gateway)
    video = c.videos.create(model="sora-2", prompt="the scene comes alive [sim:job=200]", size="1280x720",
                            input_reference=("first.png", buf.getvalue(), "image/png"))
    assert wait(c, video.id).status == "completed"
    sent = [q for q in sim_clean.requests("openai") if q["method"] == "POST"][0]
    assert [f["name"] for f in sent["files"]] == ["input_reference"]
    fal = c.videos.create(model="fal/kling-2.5-turbo-pro", prompt="x [sim:job=200]",
                          input_reference=("first.png", buf.getvalue(), "image/png"))
    done = wait(c, fal.id)
    assert done.status == "completed", (done.error, done.model_extra)
    submit = [q for q in sim_clean.requests("fal") if q["method"] == "POST"][0]
    assert submit["json"]["image_url"].startswith("data:image/png;base64,")


def test_replicate_video_route(gateway: GatewayThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="replicate/kling-2.5-turbo-pro", prompt="x [sim:job=200]", seconds="5")
    done = wait(c, video.id)
    assert done.status == "completed", done.error
    assert probe(c.videos.download_content(video.id).read())[:2] == (1920, 1080)
