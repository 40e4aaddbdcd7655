"""The Runway simulator, driven through the official runwayml SDK (base_url pointed at it)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import runwayml
import runwayml.lib.polling
from PIL import Image

from mediagate.sandbox import video
from mediagate.sandbox.testing import SimulatorThread

KEY = "key_" + "0" * 128


@pytest.fixture
def rw(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> Iterator[runwayml.RunwayML]:
    # wait_for_task_output sleeps ~6 s between polls (lib/polling.py POLL_TIME): shortened, not replaced
    monkeypatch.setattr(runwayml.lib.polling, "POLL_TIME", 0.05)
    monkeypatch.setattr(runwayml.lib.polling, "POLL_JITTER", 0.0)
    client = runwayml.RunwayML(api_key=KEY, base_url=sim.base_url + "/runway", max_retries=0)
    yield client
    client.close()


def data_uri(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 60)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def fetch(url: str) -> bytes:
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200
    return r.content


@pytest.mark.parametrize(("ratio", "size"), [("1920:1080", (1920, 1080)), ("720:960", (720, 960)), ("2112:912", (2112, 912))])
def test_text_to_image_wait_for_task_output(rw: runwayml.RunwayML, sim: SimulatorThread, ratio: str,
                                            size: tuple[int, int]) -> None:
    task = rw.text_to_image.create(model="gen4_image", prompt_text="a lighthouse [sim:job=50]", ratio=ratio, seed=7)
    done = task.wait_for_task_output(timeout=10)
    assert done.status == "SUCCEEDED" and len(done.output) == 1
    image = Image.open(io.BytesIO(fetch(done.output[0])))
    assert image.format == "PNG" and image.size == size
    create = sim.requests("runway")[0]
    assert create["path"] == "/runway/v1/text_to_image"
    assert create["headers"]["x-runway-version"] == "2024-11-06"
    assert create["headers"]["authorization"] == f"Bearer {KEY}"
    assert create["json"] == {"model": "gen4_image", "promptText": "a lighthouse [sim:job=50]", "ratio": ratio, "seed": 7}


def test_turbo_image_needs_reference_images(rw: runwayml.RunwayML) -> None:
    with pytest.raises(runwayml.BadRequestError) as exc:
        rw.text_to_image.create(model="gen4_image_turbo", prompt_text="x", ratio="1280:720",
                                reference_images=[])
    assert exc.value.status_code == 400
    task = rw.text_to_image.create(model="gen4_image_turbo", prompt_text="@ref in snow [sim:job=30]", ratio="720:720",
                                   reference_images=[{"uri": data_uri(64, 64), "tag": "ref"}])
    done = task.wait_for_task_output(timeout=10)
    assert Image.open(io.BytesIO(fetch(done.output[0]))).size == (720, 720)


def test_image_to_video_gen4_turbo_is_a_playable_mp4(rw: runwayml.RunwayML) -> None:
    task = rw.image_to_video.create(model="gen4_turbo", prompt_image=data_uri(1280, 720), ratio="1104:832",
                                    duration=5, prompt_text="waves [sim:job=100]")
    done = task.wait_for_task_output(timeout=20)
    info = video.probe(fetch(done.output[0]))
    assert (info.width, info.height) == (1104, 832) and round(info.duration) == 5


def test_text_to_video_gen45_and_its_ratio_rules(rw: runwayml.RunwayML) -> None:
    task = rw.text_to_video.create(model="gen4.5", prompt_text="a comet [sim:job=100]", ratio="720:1280", duration=2)
    done = task.wait_for_task_output(timeout=20)
    info = video.probe(fetch(done.output[0]))
    assert (info.width, info.height) == (720, 1280) and round(info.duration) == 2
    with pytest.raises(runwayml.BadRequestError):   # text to video has two frames only
        rw.text_to_video.create(model="gen4.5", prompt_text="x", ratio="960:960", duration=5)  # type: ignore[arg-type]
    with pytest.raises(runwayml.BadRequestError):
        rw.text_to_video.create(model="gen4.5", prompt_text="x", ratio="1280:720", duration=11)


def test_task_progress_and_delete(rw: runwayml.RunwayML) -> None:
    task = rw.text_to_video.create(model="gen4.5", prompt_text="slow [sim:job=3000]", ratio="1280:720", duration=3)
    first = rw.tasks.retrieve(task.id)
    assert first.status in ("PENDING", "RUNNING")
    rw.tasks.delete(task.id)
    with pytest.raises(runwayml.NotFoundError):
        rw.tasks.retrieve(task.id)


@pytest.mark.parametrize(("fault", "code"), [("safety", "SAFETY.OUTPUT.IMAGE"), ("prompt-blocked", "SAFETY.INPUT.TEXT"),
                                             ("fail", "INTERNAL.BAD_OUTPUT.CODE01")])
def test_failed_tasks_carry_failure_codes(rw: runwayml.RunwayML, fault: str, code: str) -> None:
    task = rw.text_to_image.create(model="gen4_image", prompt_text=f"x [sim:{fault}] [sim:job=20]", ratio="1280:720")
    with pytest.raises(runwayml.lib.polling.TaskFailedError) as exc:
        task.wait_for_task_output(timeout=10)
    details: Any = exc.value.task_details
    assert details.status == "FAILED" and details.failure_code == code and details.failure


def test_http_faults_and_auth(rw: runwayml.RunwayML, sim: SimulatorThread) -> None:
    sim.inject("429", 1, "runway")
    with pytest.raises(runwayml.RateLimitError):
        rw.text_to_image.create(model="gen4_image", prompt_text="x", ratio="1280:720")
    sim.inject("503", 1, "runway")
    with pytest.raises(runwayml.InternalServerError):
        rw.text_to_image.create(model="gen4_image", prompt_text="x", ratio="1280:720")
    bad = runwayml.RunwayML(api_key="bad-key", base_url=sim.base_url + "/runway", max_retries=0)
    with pytest.raises(runwayml.AuthenticationError):
        bad.text_to_image.create(model="gen4_image", prompt_text="x", ratio="1280:720")
    bad.close()
    r = httpx.post(sim.base_url + "/runway/v1/text_to_image", headers={"Authorization": f"Bearer {KEY}"},
                   json={"model": "gen4_image", "promptText": "x", "ratio": "1280:720"})
    assert r.status_code == 400 and "X-Runway-Version" in r.json()["error"]   # the version header is required


def test_veo_on_runway_text_and_image_to_video(rw: runwayml.RunwayML) -> None:
    task = rw.text_to_video.create(model="veo3.1_fast", prompt_text="a glacier [sim:job=80]", ratio="1080:1920",
                                   duration=4, audio=True)
    info = video.probe(fetch(task.wait_for_task_output(timeout=20).output[0]))
    assert (info.width, info.height) == (1080, 1920) and round(info.duration) == 4
    task = rw.image_to_video.create(model="veo3.1", prompt_image=data_uri(1280, 720), ratio="1920:1080",
                                    prompt_text="it melts [sim:job=80]")
    info = video.probe(fetch(task.wait_for_task_output(timeout=20).output[0]))
    assert (info.width, info.height) == (1920, 1080) and round(info.duration) == 8   # the default length
    with pytest.raises(runwayml.BadRequestError):   # no 4K on Runway
        rw.text_to_video.create(model="veo3.1", prompt_text="x", ratio="3840:2160", duration=8)  # type: ignore[arg-type]
