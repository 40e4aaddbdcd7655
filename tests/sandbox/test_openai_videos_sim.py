"""The OpenAI Videos (Sora) simulator, driven through the official openai SDK over real HTTP."""

from __future__ import annotations

import io
import json
import time
from types import SimpleNamespace

import av
import httpx
import openai
import pytest

from mediagate.sandbox import video
from mediagate.sandbox.testing import SimulatorThread

# openai-python marks the Sora methods deprecated ("The Sora API is scheduled to permanently
# shut down on September 24, 2026."); the endpoints still have to work until then.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled")
AUTH = {"Authorization": "Bearer sk-test"}


def test_create_poll_download_and_delete(sim: SimulatorThread, oai: openai.OpenAI) -> None:
    created = oai.videos.create(prompt="a lighthouse in a storm [sim:job=600]", model="sora-2", seconds="4",
                                size="1280x720")
    assert created.id.startswith("video_") and created.object == "video" and created.status == "queued"
    assert (created.model, created.seconds, created.size, created.progress) == ("sora-2", "4", "1280x720", 0)
    assert created.completed_at is None and created.expires_at is None and created.error is None
    logged = sim.requests("openai")[0]
    assert logged["path"] == "/openai/v1/videos" and logged["form"]["seconds"] == "4"  # the SDK posts multipart
    with pytest.raises(openai.NotFoundError):  # no content before completion
        oai.videos.download_content(created.id)
    seen: set[str] = set()
    progress: list[int] = []
    while True:
        raw = oai.videos.with_raw_response.retrieve(created.id)
        current = raw.parse()
        seen.add(current.status)
        if current.status != "completed":
            assert 20 <= int(raw.headers["openai-poll-after-ms"]) <= 1000
            progress.append(current.progress)
            time.sleep(0.05)
            continue
        assert "openai-poll-after-ms" not in raw.headers
        break
    assert {"queued", "in_progress", "completed"} <= seen and progress == sorted(progress)
    assert current.progress == 100 and current.completed_at and current.expires_at
    assert current.expires_at > current.completed_at >= current.created_at
    data = oai.videos.download_content(created.id).read()
    info = video.probe(data)
    assert (info.width, info.height) == (1280, 720) and abs(info.frames - 4 * video.FPS) <= 1
    assert abs(info.duration - 4) <= 1 / video.FPS
    thumb = oai.videos.download_content(created.id, variant="thumbnail")
    assert thumb.response.headers["content-type"] == "image/webp" and thumb.read()[:4] == b"RIFF"
    sprite = oai.videos.download_content(created.id, variant="spritesheet")
    assert sprite.response.headers["content-type"] == "image/jpeg"
    deleted = oai.videos.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "video.deleted", True)
    with pytest.raises(openai.NotFoundError):
        oai.videos.retrieve(created.id)
    running = oai.videos.create(prompt="cancel me [sim:job=5000]")
    assert oai.videos.delete(running.id).deleted  # a gateway cancels by deleting; the log says it did
    assert sim.requests("openai")[-1]["deleted_status"] == "queued"


def test_create_and_poll_uses_the_poll_header(sim: SimulatorThread, oai: openai.OpenAI) -> None:
    start = time.perf_counter()
    done = oai.videos.create_and_poll(prompt="a paper boat [sim:job=400]", model="sora-2-pro", size="1024x1792",
                                      seconds="8")
    assert done.status == "completed" and done.size == "1024x1792" and done.seconds == "8"
    assert time.perf_counter() - start < 1.5  # the header made it poll faster than the SDK's 1 s default
    polls = [e for e in sim.requests("openai") if e["method"] == "GET"]
    assert len(polls) >= 2 and all(e["headers"]["x-stainless-poll-helper"] == "true" for e in polls)


def test_list_paginates(oai: openai.OpenAI) -> None:
    ids = [oai.videos.create(prompt=f"clip {i} [sim:job=0]").id for i in range(3)]
    page = oai.videos.list(limit=2)
    assert [v.id for v in page.data] == ids[::-1][:2] and page.has_more is True
    assert [v.id for v in oai.videos.list(limit=2)] == ids[::-1]  # auto-paging follows after=last_id
    assert [v.id for v in oai.videos.list(order="asc", limit=10).data] == ids
    assert [v.id for v in oai.videos.list(after=ids[1], order="asc").data] == [ids[2]]
    default = oai.videos.list()
    assert default.data[0].size == "720x1280" and default.data[0].seconds == "4" and default.data[0].model == "sora-2"


def test_input_reference_must_match_the_size(oai: openai.OpenAI, util: SimpleNamespace) -> None:
    ok = oai.videos.create(prompt="animate this [sim:job=0]", size="1280x720",
                           input_reference=("ref.png", util.png_bytes(1280, 720), "image/png"))
    assert ok.status == "completed"
    with pytest.raises(openai.BadRequestError) as err:
        oai.videos.create(prompt="x", size="1280x720", input_reference=("ref.png", util.png_bytes(720, 1280),
                                                                        "image/png"))
    assert err.value.body["param"] == "input_reference"  # type: ignore[index]
    assert "must match the requested width and height" in err.value.message


def test_validation_errors(sim: SimulatorThread, oai: openai.OpenAI, util: SimpleNamespace) -> None:
    with pytest.raises(openai.BadRequestError) as seconds:
        oai.videos.create(prompt="x", seconds="10")  # type: ignore[arg-type]
    assert seconds.value.code == "invalid_value"
    assert "Supported values are: '4', '8', and '12'." in seconds.value.message
    with pytest.raises(openai.BadRequestError) as pro_only:
        oai.videos.create(prompt="x", model="sora-2", size="1792x1024")
    assert pro_only.value.body["param"] == "size"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as model:
        oai.videos.create(prompt="x", model="veo-3")  # type: ignore[arg-type]
    assert model.value.body["param"] == "model"  # type: ignore[index]
    status, _, raw = util.http("POST", sim.url("/openai/v1/videos"), {"prompt": "x", "seconds": 8}, AUTH)
    body = json.loads(raw)["error"]
    assert status == 400 and body["code"] == "invalid_type" and "but got an integer" in body["message"]
    status, _, raw = util.http("POST", sim.url("/openai/v1/videos"), {"prompt": "x [sim:job=0]", "seconds": "12",
                                                                      "size": "1280x720"}, AUTH)
    assert status == 200 and json.loads(raw)["seconds"] == "12"  # JSON bodies work as well as multipart
    status, _, raw = util.http("POST", sim.url("/openai/v1/videos"), {"prompt": "x"})
    assert status == 401 and "error" in json.loads(raw)


def test_failed_jobs_and_faults(sim: SimulatorThread, oai: openai.OpenAI) -> None:
    blocked = oai.videos.create_and_poll(prompt="forbidden [sim:safety] [sim:job=100]", poll_interval_ms=20)
    assert blocked.status == "failed" and blocked.error is not None
    assert blocked.error.code == "moderation_blocked" and blocked.error.message
    with pytest.raises(openai.NotFoundError):
        oai.videos.download_content(blocked.id)
    broken = oai.videos.create_and_poll(prompt="x [sim:fail] [sim:job=0]", poll_interval_ms=20)
    assert broken.status == "failed" and broken.error is not None and broken.error.code != "moderation_blocked"
    with pytest.raises(openai.BadRequestError) as refused:
        oai.videos.create(prompt="forbidden [sim:prompt-blocked]")
    assert refused.value.code == "moderation_blocked"
    with pytest.raises(openai.RateLimitError) as limited:
        oai.videos.create(prompt="x [sim:429]")
    assert limited.value.response.headers["retry-after"] == "1"
    sim.inject("503", protocol="openai")
    with pytest.raises(openai.InternalServerError):
        oai.videos.create(prompt="x")
    with pytest.raises(openai.APIConnectionError):
        oai.videos.create(prompt="x [sim:drop]")
    with pytest.raises(json.JSONDecodeError):
        httpx.post(sim.url("/openai/v1/videos"), json={"prompt": "x [sim:malformed]"}, headers=AUTH).json()
    sim.inject("fail", protocol="openai")  # a queued job fault waits for a video request ...
    oai.images.generate(model="dall-e-2", prompt="an image is not a video", size="256x256")
    assert sim.control("faults")["faults"][0]["fault"] == "fail"
    later = oai.videos.create_and_poll(prompt="queued fault [sim:job=0]", poll_interval_ms=20)  # ... and ends it
    assert later.status == "failed" and sim.control("faults")["faults"] == []


def test_remix_and_job_time_config(sim: SimulatorThread, oai: openai.OpenAI) -> None:
    sim.set_video_job_ms(50)
    assert sim.control("config")["config"]["video_job_ms"] == 50
    source = oai.videos.create_and_poll(prompt="a red kite", size="1280x720", poll_interval_ms=20)
    remix = oai.videos.remix(source.id, prompt="a blue kite")
    assert remix.remixed_from_video_id == source.id and remix.size == "1280x720" and remix.prompt == "a blue kite"
    sim.reset()
    slow = oai.videos.create(prompt="default job time")
    time.sleep(0.3)
    assert oai.videos.retrieve(slow.id).status == "in_progress"  # ~1 s by default


def test_download_bytes_play_back(oai: openai.OpenAI) -> None:
    done = oai.videos.create_and_poll(prompt="decode me [sim:job=0]", size="720x1280", seconds="8",
                                      poll_interval_ms=20)
    content = oai.videos.download_content(done.id)
    assert content.response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(content.read())) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert (frames[0].width, frames[0].height) == (720, 1280) and abs(len(frames) - 64) <= 1
