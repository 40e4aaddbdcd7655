"""The Luma AI simulator, driven through the official lumaai SDK (base_url pointed at it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import av
import httpx
import lumaai
import pytest
from lumaai.types import Generation

from mediagate.sandbox.luma import PHOTON_SIZES, ray_frame
from mediagate.sandbox.testing import SimulatorThread


@pytest.fixture
def luma(sim: SimulatorThread) -> Iterator[lumaai.LumaAI]:
    client = lumaai.LumaAI(auth_token="luma-sandbox", base_url=sim.base_url + "/luma/dream-machine/v1", max_retries=0)
    yield client
    client.close()


def wait(client: lumaai.LumaAI, generation: Generation, timeout_s: float = 20) -> Generation:
    """Poll by id as Luma's docs show (GET /generations/{id} until completed or failed)."""
    deadline = time.monotonic() + timeout_s
    assert generation.id
    while generation.state not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        generation = client.generations.get(generation.id)
    return generation


@pytest.mark.parametrize(("model", "ratio", "fmt"), [("photon-1", "16:9", "jpg"), ("photon-flash-1", "9:21", "png"),
                                                     ("photon-1", "1:1", "png")])
def test_photon_image_is_polled_to_a_real_image(sim: SimulatorThread, luma: lumaai.LumaAI, util: SimpleNamespace,
                                                model: str, ratio: str, fmt: str) -> None:
    created = luma.generations.image.create(model=model, prompt="a reef [sim:job=100]", aspect_ratio=ratio,
                                            format=fmt)  # type: ignore[arg-type]
    assert created.state == "queued" and created.generation_type == "image"
    done = wait(luma, created)
    assert done.state == "completed" and done.assets and done.assets.image
    image = util.decode_bytes(httpx.get(done.assets.image, timeout=30).content)
    assert image.size == PHOTON_SIZES[ratio] and image.format == ("JPEG" if fmt == "jpg" else "PNG")
    sent = sim.requests("luma")[0]
    assert sent["path"] == "/luma/dream-machine/v1/generations/image"
    assert sent["headers"]["authorization"] == "Bearer luma-sandbox"


def test_ray_video_plays_at_its_frame_and_length(luma: lumaai.LumaAI) -> None:
    created = luma.generations.video.create(model="ray-flash-2", prompt="waves [sim:job=100]", aspect_ratio="4:3",
                                            resolution="540p", duration="5s")
    done = wait(luma, created)
    assert done.state == "completed" and done.assets and done.assets.video and done.assets.image is None
    data = httpx.get(done.assets.video, timeout=60).content
    with av.open(__import__("io").BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        size = (stream.codec_context.width, stream.codec_context.height)
        seconds = frames / float(stream.average_rate or 1)
    assert size == ray_frame("4:3", "540p") == (720, 540) and abs(seconds - 5) < 0.5


def test_delete_stops_an_unfinished_generation(sim: SimulatorThread, luma: lumaai.LumaAI) -> None:
    created = luma.generations.video.create(model="ray-2", prompt="slow [sim:job=5000]", resolution="540p")
    assert created.id
    luma.generations.delete(created.id)
    assert luma.generations.get(created.id).state == "failed"
    assert [r["method"] for r in sim.requests("luma")] == ["POST", "DELETE", "GET"]


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "photon-9", "prompt": "x"}, "model"), ({"model": "photon-1", "prompt": "x", "aspect_ratio": "5:4"}, "aspect_ratio"),
    ({"model": "photon-1", "prompt": "x" * 5001}, "prompt"),
])
def test_invalid_bodies_are_422_naming_the_field(sim: SimulatorThread, util: SimpleNamespace,
                                                 body: dict[str, str], field: str) -> None:
    status, _, raw = util.http("POST", sim.url("/luma/dream-machine/v1/generations/image"), body,
                               {"Authorization": "Bearer luma-sandbox"})
    assert status == 422 and f'"{field}"' in raw.decode()


def test_faults(sim: SimulatorThread, luma: lumaai.LumaAI) -> None:
    sim.inject("429", protocol="luma")
    with pytest.raises(lumaai.RateLimitError):
        luma.generations.image.create(model="photon-1", prompt="x")
    with pytest.raises(lumaai.BadRequestError) as err:
        luma.generations.image.create(model="photon-1", prompt="x [sim:prompt-blocked]")
    assert "moderation" in str(err.value.body)
    flagged = wait(luma, luma.generations.image.create(model="photon-1", prompt="x [sim:safety] [sim:job=50]"))
    assert flagged.state == "failed" and "moderation" in (flagged.failure_reason or "")
    broken = wait(luma, luma.generations.video.create(model="ray-2", prompt="x [sim:fail] [sim:job=50]", resolution="540p"))
    assert broken.state == "failed" and broken.failure_reason
    with pytest.raises(lumaai.AuthenticationError):
        lumaai.LumaAI(auth_token="bad", base_url=sim.base_url + "/luma/dream-machine/v1", max_retries=0) \
            .generations.get("nope")
