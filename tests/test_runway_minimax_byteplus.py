"""Runway, MiniMax and BytePlus ModelArk through the gateway, with the openai SDK, on their simulators."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread
from tests.test_videos import probe, wait

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")   # the SDK warns on every videos call


def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0, timeout=60)


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 20)).save(buf, "PNG")
    return buf.getvalue()


def image_of(b64: str | None) -> Image.Image:
    assert b64
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    im.load()
    return im




def paths(sim: SimulatorThread, protocol: str) -> list[tuple[str, str]]:
    return [(q["method"], q["path"]) for q in sim.requests(protocol)]


# ---- Runway ---------------------------------------------------------------------------------------------------

def test_runway_image_through_the_openai_sdk(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    r = c.images.generate(model="gen4-image", prompt="a red kite [sim:job=50]", size="1792x1024",  # type: ignore[arg-type]
                          response_format="b64_json")
    im = image_of(r.data[0].b64_json)
    assert im.format == "PNG" and im.size == (1920, 1080) and r.size == "1920x1080"  # type: ignore[attr-defined]
    meta = r.model_extra["metadata"]  # type: ignore[index]
    assert meta["provider"] == "runway" and meta["cost"] == pytest.approx(0.08)
    sent = sim_clean.requests("runway")
    assert sent[0]["path"] == "/runway/v1/text_to_image" and sent[0]["json"]["ratio"] == "1920:1080"
    assert sent[0]["headers"]["x-runway-version"] == "2024-11-06"
    assert ("GET", f"/runway/v1/tasks/{sent[1]['path'].rsplit('/', 1)[1]}") == paths(sim_clean, "runway")[1]


def test_runway_forced_prefix_and_720p_tier(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    r = c.images.generate(model="runway/gen4-image", prompt="a fox [sim:job=20]", response_format="b64_json",
                          extra_body={"aspect_ratio": "3:4", "resolution": "720p"})
    assert image_of(r.data[0].b64_json).size == (720, 960)
    assert r.model_extra["metadata"]["cost"] == pytest.approx(0.05)  # type: ignore[index]


def test_runway_turbo_edit_sends_reference_images(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    r = c.images.edit(model="gen4-image-turbo", prompt="the same scene at night [sim:job=20]",
                      image=("in.png", png(640, 480), "image/png"), response_format="b64_json",
                      extra_body={"aspect_ratio": "4:3"})
    assert image_of(r.data[0].b64_json).size == (1440, 1080)
    refs = sim_clean.requests("runway")[0]["json"]["referenceImages"]
    assert len(refs) == 1 and refs[0]["uri"].startswith("data:image/png;base64,")


def test_runway_video_image_to_video_plays(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="gen4-turbo", prompt="the kite flies [sim:job=200]", seconds="5",  # type: ignore[arg-type]
                            input_reference=("start.png", png(1280, 720), "image/png"))
    done = wait(c, video.id)
    assert done.status == "completed", done
    width, height, seconds = probe(c.videos.download_content(video.id).read())
    assert (width, height) == (1280, 720) and abs(seconds - 5) < 0.5
    sent = sim_clean.requests("runway")[0]
    assert sent["path"] == "/runway/v1/image_to_video" and sent["json"]["duration"] == 5
    assert sent["json"]["promptImage"].startswith("data:image/png;base64,")
    assert done.model_extra["metadata"]["cost"] == pytest.approx(0.25)


def test_runway_image_only_model_refuses_text_only(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as exc:
        c.videos.create(model="gen4-turbo", prompt="no image")
    assert exc.value.body["param"] == "input_reference"  # type: ignore[index]
    assert sim_clean.requests("runway") == []


def test_runway_gen45_text_to_video(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="runway/gen4.5", prompt="a comet [sim:job=200]", seconds="4",  # type: ignore[arg-type]
                            extra_body={"aspect_ratio": "9:16"})
    done = wait(c, video.id)
    assert done.status == "completed", done
    width, height, seconds = probe(c.videos.download_content(video.id).read())
    assert (width, height) == (720, 1280) and abs(seconds - 4) < 0.5
    assert sim_clean.requests("runway")[0]["path"] == "/runway/v1/text_to_video"


def test_runway_fractional_progress_is_scaled_to_percent(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    """Runway reports progress 0..1: `progress_scale: 100` makes the video object's 0-100."""
    c = client(gateway)
    video = c.videos.create(model="gen4.5", prompt="slow comet [sim:job=2500]", seconds="2")  # type: ignore[arg-type]
    seen: list[int] = []
    deadline = time.monotonic() + 20
    v = c.videos.retrieve(video.id)
    while v.status in ("queued", "in_progress") and time.monotonic() < deadline:
        if v.status == "in_progress":
            seen.append(v.progress)
        time.sleep(0.1)
        v = c.videos.retrieve(video.id)
    assert v.status == "completed" and v.progress == 100
    assert any(1 < p < 100 for p in seen), seen


def test_veo_forced_onto_runway(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="runway/veo-3.1-fast", prompt="a glacier [sim:job=100]", seconds="4",  # type: ignore[arg-type]
                            extra_body={"resolution": "1080p", "negative_prompt": "people"})
    done = wait(c, video.id)
    assert done.status == "completed", done
    width, height, seconds = probe(c.videos.download_content(video.id).read())
    assert (width, height) == (1920, 1080) and abs(seconds - 4) < 0.5
    sent = sim_clean.requests("runway")[0]
    assert sent["path"] == "/runway/v1/text_to_video"
    assert sent["json"] == {"model": "veo3.1_fast", "promptText": "a glacier [sim:job=100]", "ratio": "1920:1080",
                            "duration": 4, "audio": True, "negativePrompt": "people"}
    assert done.model_extra["metadata"]["cost"] == pytest.approx(0.6)


def test_runway_moderation_failure_is_content_policy(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as exc:
        c.images.generate(model="gen4-image", prompt="x [sim:safety] [sim:job=20]")
    assert exc.value.body["code"] == "content_policy_violation"  # type: ignore[index]


# ---- BytePlus ModelArk ----------------------------------------------------------------------------------------

def test_byteplus_seedream_through_the_openai_sdk(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    r = c.images.generate(model="seedream-4.0", prompt="a harbour", size="1792x1024",  # type: ignore[arg-type]
                          response_format="b64_json", n=2)
    assert len(r.data) == 2 and all(image_of(d.b64_json).size == (1792, 1024) for d in r.data)
    meta = r.model_extra["metadata"]  # type: ignore[index]
    assert meta["provider"] == "byteplus" and meta["cost"] == pytest.approx(0.06)
    sent = sim_clean.requests("byteplus")
    assert [q["path"] for q in sent] == ["/byteplus/api/v3/images/generations"] * 2
    assert sent[0]["json"]["watermark"] is False and sent[0]["headers"]["authorization"] == "Bearer sandbox"


def test_byteplus_forced_prefix_serves_seedream_45(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    r = c.images.generate(model="byteplus/seedream-4.5", prompt="a market", response_format="b64_json",
                          extra_body={"aspect_ratio": "16:9"})
    assert image_of(r.data[0].b64_json).size == (2728, 1536)
    assert r.model_extra["metadata"]["provider"] == "byteplus"  # type: ignore[index]
    assert sim_clean.requests("byteplus")[0]["json"]["model"] == "seedream-4-5-251128"


def test_byteplus_content_filter_is_content_policy(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as exc:
        c.images.generate(model="seedream-4.0", prompt="x [sim:prompt-blocked]")
    assert exc.value.body["code"] == "content_policy_violation"  # type: ignore[index]


def test_byteplus_seedance_text_to_video(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="seedance-1-pro", prompt="a heron [sim:job=200]", seconds="4",  # type: ignore[arg-type]
                            extra_body={"aspect_ratio": "21:9", "resolution": "480p"})
    done = wait(c, video.id)
    assert done.status == "completed", done
    width, height, seconds = probe(c.videos.download_content(video.id).read())
    assert (width, height) == (960, 416) and abs(seconds - 4) < 0.5
    sent = sim_clean.requests("byteplus")[0]
    assert sent["json"]["resolution"] == "480p" and sent["json"]["ratio"] == "21:9" and sent["json"]["duration"] == 4
    assert done.model_extra["metadata"]["cost"] == pytest.approx(0.0243 * 4)


def test_byteplus_seedance_lite_image_to_video_uses_the_i2v_model(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="byteplus/seedance-1-lite", prompt="it moves [sim:job=100]", seconds="2",  # type: ignore[arg-type]
                            input_reference=("first.png", png(1248, 704), "image/png"))
    done = wait(c, video.id)
    assert done.status == "completed", done
    sent = sim_clean.requests("byteplus")[0]["json"]
    assert sent["model"] == "seedance-1-0-lite-i2v-250428"
    assert sent["content"][1]["role"] == "first_frame" and sent["content"][1]["image_url"]["url"].startswith("data:image/png")


def test_byteplus_seedance_blocked_output_fails_the_video(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="seedance-1-pro-fast", prompt="x [sim:safety] [sim:job=50]", seconds="2")  # type: ignore[arg-type]
    done = wait(c, video.id)
    assert done.status == "failed" and done.error.code == "content_policy_violation"  # type: ignore[union-attr]


# ---- MiniMax --------------------------------------------------------------------------------------------------

def test_minimax_hailuo_result_three_calls_away(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    """submit -> status (names a file id) -> file retrieve (names the URL) -> download: `last` and step `query`."""
    c = client(gateway)
    video = c.videos.create(model="hailuo-02", prompt="a heron lands [sim:job=200]", seconds="10")  # type: ignore[arg-type]
    done = wait(c, video.id)
    assert done.status == "completed", done
    width, height, seconds = probe(c.videos.download_content(video.id).read())
    assert (width, height) == (1366, 768) and abs(seconds - 10) < 0.5
    sent = sim_clean.requests("minimax")
    assert sent[0]["path"] == "/minimax/v1/video_generation" and sent[0]["json"]["resolution"] == "768P"
    task_id = sent[1]["query"]["task_id"]
    assert all(q["query"] == {"task_id": task_id} for q in sent[1:-1])
    assert sent[-1]["path"] == "/minimax/v1/files/retrieve" and sent[-1]["query"]["file_id"].isdigit()
    assert done.model_extra["metadata"]["cost"] == pytest.approx(0.56)


def test_minimax_image_01_forced_prefix_and_free_size(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    r = c.images.generate(model="minimax/image-01", prompt="a teapot", size="1024x1536", n=2,  # type: ignore[arg-type]
                          response_format="b64_json")
    assert [image_of(d.b64_json).size for d in r.data] == [(1024, 1536)] * 2
    sent = sim_clean.requests("minimax")
    assert len(sent) == 1 and sent[0]["json"]["width"] == 1024 and "aspect_ratio" not in sent[0]["json"]
    assert r.model_extra["metadata"]["cost"] == pytest.approx(0.007)  # type: ignore[index]


def test_minimax_rate_limit_inside_a_200_is_a_429(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    sim_clean.inject("429", 1, "minimax")
    c = client(gateway)
    with pytest.raises(openai.RateLimitError) as exc:
        c.images.generate(model="image-01", prompt="a teapot")
    assert exc.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]


def test_minimax_blocked_prompt_inside_a_200_is_content_policy(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as exc:
        c.images.generate(model="image-01", prompt="x [sim:prompt-blocked]")
    assert exc.value.body["code"] == "content_policy_violation"  # type: ignore[index]


def test_minimax_fast_needs_an_image_and_sends_it_as_first_frame(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError):
        c.videos.create(model="hailuo-2.3-fast", prompt="no image")
    video = c.videos.create(model="hailuo-2.3-fast", prompt="it moves [sim:job=100]", seconds="6",  # type: ignore[arg-type]
                            input_reference=("first.png", png(1366, 768), "image/png"))
    assert wait(c, video.id).status == "completed"
    assert sim_clean.requests("minimax")[0]["json"]["first_frame_image"].startswith("data:image/png;base64,")


def test_minimax_failed_task_is_a_failed_video(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    video = c.videos.create(model="hailuo-2.3", prompt="x [sim:safety] [sim:job=50]")
    done = wait(c, video.id)
    assert done.status == "failed" and done.error.code == "content_policy_violation"  # type: ignore[union-attr]


# ---- forced-provider prefixes ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "provider", "endpoint"), [
    ("runway/gen4-image", "runway", "images/generations"), ("runway/gen4.5", "runway", "videos"),
    ("byteplus/seedream-4.5", "byteplus", "images/generations"), ("byteplus/seedance-1-pro", "byteplus", "videos"),
    ("minimax/image-01", "minimax", "images/generations"), ("minimax/hailuo-2.3", "minimax", "videos"),
])
def test_each_new_slug_forces_its_route(gateway: GatewayThread, model: str, provider: str, endpoint: str) -> None:
    r = httpx.post(f"{gateway.base_url}/v1/{endpoint}?dryRun=true", json={"model": model, "prompt": "a fox"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == provider and r.json()["total_cost_micros"] > 0


def test_a_slug_that_does_not_serve_the_model_is_refused(gateway: GatewayThread) -> None:
    c = client(gateway)
    with pytest.raises(openai.APIStatusError) as exc:
        c.images.generate(model="minimax/seedream-4.0", prompt="a fox")
    assert exc.value.status_code in (400, 404)
