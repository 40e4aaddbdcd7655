"""The BytePlus ModelArk simulator, driven through the official byteplus-python-sdk-v2 (byteplussdkarkruntime.Ark)."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import httpx
import pytest
from byteplussdkarkruntime import Ark
from byteplussdkarkruntime._exceptions import ArkAPIError
from byteplussdkarkruntime.types.images import SequentialImageGenerationOptions
from PIL import Image

from mediagate.sandbox import video
from mediagate.sandbox.testing import SimulatorThread


@pytest.fixture
def ark(sim: SimulatorThread) -> Iterator[Ark]:
    client = Ark(base_url=sim.base_url + "/byteplus/api/v3", api_key="ark-sandbox", max_retries=0)
    yield client
    client.close()


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def data_url(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 10, 200)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(("model", "size", "expected"), [
    ("seedream-4-0-250828", "2560x1440", (2560, 1440)),
    ("seedream-4-0-250828", "1K", (1024, 1024)),
    ("seedream-4-5-251128", "2K", (2048, 2048)),
    ("seedream-4-5-251128", "3024x1296", (3024, 1296)),
])
def test_seedream_sizes_b64(ark: Ark, sim: SimulatorThread, model: str, size: str, expected: tuple[int, int]) -> None:
    r = ark.images.generate(model=model, prompt="a harbour at dawn", size=size, response_format="b64_json",
                            watermark=False, seed=3)
    assert len(r.data) == 1 and r.data[0].size == f"{expected[0]}x{expected[1]}"
    im = decode(base64.b64decode(r.data[0].b64_json))
    assert im.size == expected and im.format == "JPEG"
    assert r.usage.generated_images == 1
    sent = sim.requests("byteplus")[0]
    assert sent["path"] == "/byteplus/api/v3/images/generations" and sent["headers"]["authorization"] == "Bearer ark-sandbox"
    assert sent["json"]["watermark"] is False and sent["json"]["size"] == size


def test_seedream_url_output_and_sequential_images(ark: Ark) -> None:
    r = ark.images.generate(model="seedream-4-0-250828", prompt="four seasons", size="2048x2048",
                            sequential_image_generation="auto", sequential_image_generation_options=SequentialImageGenerationOptions(max_images=3),
                            image=[data_url(64, 64)])
    assert len(r.data) == 3
    got = httpx.get(r.data[0].url, timeout=30)
    assert got.status_code == 200 and decode(got.content).size == (2048, 2048)


@pytest.mark.parametrize(("model", "size"), [("seedream-4-5-251128", "1K"), ("seedream-4-5-251128", "1280x720"),
                                             ("seedream-4-0-250828", "640x640"), ("seedream-4-0-250828", "8320x512")])
def test_seedream_refuses_sizes_out_of_range(ark: Ark, model: str, size: str) -> None:
    with pytest.raises(ArkAPIError) as exc:
        ark.images.generate(model=model, prompt="x", size=size)
    assert exc.value.status_code == 400 and exc.value.code == "InvalidParameter" and exc.value.param == "size"


@pytest.mark.parametrize(("fault", "status", "code"), [
    ("prompt-blocked", 400, "InputTextSensitiveContentDetected"), ("safety", 400, "OutputImageSensitiveContentDetected"),
    ("429", 429, "RateLimitExceeded.EndpointRPMExceeded"), ("500", 500, "InternalServiceError"),
])
def test_seedream_faults(ark: Ark, sim: SimulatorThread, fault: str, status: int, code: str) -> None:
    sim.inject(fault, 1, "byteplus")
    with pytest.raises(ArkAPIError) as exc:
        ark.images.generate(model="seedream-4-0-250828", prompt="x", size="2K")
    assert exc.value.status_code == status and exc.value.code == code


def wait_task(ark: Ark, task_id: str, timeout_s: float = 20) -> object:
    deadline = time.monotonic() + timeout_s
    task = ark.content_generation.tasks.get(task_id=task_id)
    while task.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        task = ark.content_generation.tasks.get(task_id=task_id)
    return task


@pytest.mark.parametrize(("model", "resolution", "ratio", "frame"), [
    ("seedance-1-0-pro-250528", "1080p", "16:9", (1920, 1088)),
    ("seedance-1-0-pro-fast-251015", "480p", "21:9", (960, 416)),
    ("seedance-1-0-lite-t2v-250428", "720p", "3:4", (832, 1120)),
])
def test_seedance_text_to_video_task(ark: Ark, model: str, resolution: str, ratio: str, frame: tuple[int, int]) -> None:
    created = ark.content_generation.tasks.create(model=model, content=[{"type": "text", "text": "a heron [sim:job=100]"}],
                                                  resolution=resolution, ratio=ratio, duration=3, watermark=False)
    task = wait_task(ark, created.id)
    assert task.status == "succeeded" and task.resolution == resolution and task.duration == 3  # type: ignore[attr-defined]
    info = video.probe(httpx.get(task.content.video_url, timeout=30).content)  # type: ignore[attr-defined]
    assert (info.width, info.height) == frame and round(info.duration) == 3


def test_seedance_image_to_video_and_model_rules(ark: Ark) -> None:
    content = [{"type": "text", "text": "it moves [sim:job=50]"},
               {"type": "image_url", "image_url": {"url": data_url(320, 180)}, "role": "first_frame"}]
    created = ark.content_generation.tasks.create(model="seedance-1-0-lite-i2v-250428", content=content, duration=2)
    assert wait_task(ark, created.id).status == "succeeded"  # type: ignore[attr-defined]
    with pytest.raises(ArkAPIError):   # the t2v model takes no image
        ark.content_generation.tasks.create(model="seedance-1-0-lite-t2v-250428", content=content)
    with pytest.raises(ArkAPIError):
        ark.content_generation.tasks.create(model="seedance-1-0-pro-250528", content=content[:1], duration=13)


def test_seedance_failures_and_cancel(ark: Ark) -> None:
    created = ark.content_generation.tasks.create(model="seedance-1-0-pro-250528",
                                                  content=[{"type": "text", "text": "x [sim:safety] [sim:job=30]"}])
    task = wait_task(ark, created.id)
    assert task.status == "failed" and task.error.code == "OutputVideoSensitiveContentDetected"  # type: ignore[attr-defined]
    queued = ark.content_generation.tasks.create(model="seedance-1-0-pro-250528",
                                                 content=[{"type": "text", "text": "slow [sim:job=20000]"}])
    ark.content_generation.tasks.delete(task_id=queued.id)
    assert ark.content_generation.tasks.get(task_id=queued.id).status == "cancelled"
