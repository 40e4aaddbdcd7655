"""The Model Studio (DashScope) simulator, driven through the official dashscope SDK (base_http_api_url)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from http import HTTPStatus
from types import SimpleNamespace

import av
import dashscope
import httpx
import pytest
from dashscope import ImageSynthesis, VideoSynthesis

from mediagate.sandbox.testing import SimulatorThread

KEY = "sk-sandbox"


@pytest.fixture
def ds(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SDK reads its endpoint from the module setting ``dashscope.base_http_api_url``."""
    monkeypatch.setattr(dashscope, "base_http_api_url", sim.base_url + "/dashscope/api/v1")
    yield


@pytest.mark.parametrize(("model", "size", "n"), [("wan2.5-t2i-preview", "1696*960", 2), ("wan2.2-t2i-flash", "512*1440", 1),
                                                  ("qwen-image-plus", "1328*1328", 1), ("qwen-image", "928*1664", 1)])
def test_image_tasks_run_async_and_return_pngs(sim: SimulatorThread, ds: None, util: SimpleNamespace,
                                               model: str, size: str, n: int) -> None:
    rsp = ImageSynthesis.call(api_key=KEY, model=model, prompt="a tea house [sim:job=20]", n=n, size=size)
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    assert len(rsp.output.results) == n and rsp.usage.image_count == n
    w, h = (int(x) for x in size.split("*"))
    for result in rsp.output.results:
        image = util.decode_bytes(httpx.get(result.url, timeout=30).content)
        assert image.size == (w, h) and image.format == "PNG"
    submit = sim.requests("dashscope")[0]
    assert submit["path"] == "/dashscope/api/v1/services/aigc/text2image/image-synthesis"
    assert submit["headers"]["x-dashscope-async"] == "enable" and submit["headers"]["authorization"] == f"Bearer {KEY}"
    assert submit["json"]["parameters"]["size"] == size and submit["json"]["input"]["prompt"].startswith("a tea house")


def test_video_task_plays(ds: None) -> None:
    rsp = VideoSynthesis.call(api_key=KEY, model="wan2.5-t2v-preview", prompt="a river [sim:job=20]", size="832*480",
                              duration=5)
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    assert rsp.usage.video_duration == 5
    data = httpx.get(rsp.output.video_url, timeout=60).content
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (832, 480)


def test_a_pending_task_can_be_cancelled(sim: SimulatorThread, ds: None) -> None:
    submitted = ImageSynthesis.async_call(api_key=KEY, model="wan2.2-t2i-flash", prompt="slow [sim:job=20000]")
    assert submitted.output.task_status == "PENDING"
    assert ImageSynthesis.cancel(submitted, api_key=KEY).status_code == HTTPStatus.OK
    assert ImageSynthesis.fetch(submitted, api_key=KEY).output.task_status == "CANCELED"


def test_a_synchronous_call_is_refused(sim: SimulatorThread, util: SimpleNamespace) -> None:
    status, _, raw = util.http("POST", sim.url("/dashscope/api/v1/services/aigc/text2image/image-synthesis"),
                               {"model": "wan2.2-t2i-flash", "input": {"prompt": "x"}}, {"Authorization": f"Bearer {KEY}"})
    assert status == 403 and b"AccessDenied" in raw


@pytest.mark.parametrize(("model", "params", "message"), [
    ("qwen-image-plus", {"size": "1024*1024"}, "not supported"), ("wan2.2-t2i-flash", {"size": "1600*1024"}, "between 512"),
    ("wan2.5-t2i-preview", {"size": "512*512"}, "768*768"), ("qwen-image", {"n": 2}, "parameters.n"),
    ("wan2.2-t2i-flash", {"n": 5}, "parameters.n"),
])
def test_invalid_parameters(ds: None, model: str, params: dict[str, object], message: str) -> None:
    rsp = ImageSynthesis.async_call(api_key=KEY, model=model, prompt="x", **params)  # type: ignore[arg-type]
    assert rsp.status_code == HTTPStatus.BAD_REQUEST and rsp.code == "InvalidParameter" and message in rsp.message


def test_faults(sim: SimulatorThread, ds: None) -> None:
    sim.inject("429", protocol="dashscope")
    rsp = ImageSynthesis.async_call(api_key=KEY, model="wan2.2-t2i-flash", prompt="x")
    assert rsp.status_code == 429 and rsp.code == "Throttling.RateQuota"
    blocked = ImageSynthesis.async_call(api_key=KEY, model="wan2.2-t2i-flash", prompt="x [sim:prompt-blocked]")
    assert blocked.status_code == 400 and blocked.code == "DataInspectionFailed"
    flagged = ImageSynthesis.call(api_key=KEY, model="wan2.2-t2i-flash", prompt="x [sim:safety] [sim:job=10]")
    assert flagged.output.task_status == "FAILED" and flagged.output.code == "DataInspectionFailed"
    withheld = ImageSynthesis.call(api_key=KEY, model="wan2.2-t2i-flash", prompt="x [sim:noimage] [sim:job=10]", n=1)
    assert withheld.output.task_status == "SUCCEEDED" and not withheld.output.results[0].url
    assert withheld.output.task_metrics == {"TOTAL": 1, "SUCCEEDED": 0, "FAILED": 1}
    bad = ImageSynthesis.async_call(api_key="bad-key", model="wan2.2-t2i-flash", prompt="x")
    assert bad.status_code == 401 and bad.code == "InvalidApiKey"


def test_image_to_video_follows_the_image_at_the_tier(ds: None, util: SimpleNamespace) -> None:
    data_url = "data:image/png;base64," + __import__("base64").b64encode(util.png_bytes(600, 800)).decode()
    rsp = VideoSynthesis.call(api_key=KEY, model="wan2.5-i2v-preview", prompt="it moves [sim:job=20]", img_url=data_url,
                              resolution="480P", duration=5)
    assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
    with av.open(io.BytesIO(httpx.get(rsp.output.video_url, timeout=60).content)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (480, 832)   # 3:4 is nearest 9:16 at 480P
    t2v = VideoSynthesis.async_call(api_key=KEY, model="wan2.2-t2v-plus", prompt="x", img_url=data_url)
    assert t2v.status_code == 400 and "image-to-video" in t2v.message
