"""Golden cases for video models: client request -> expected upstream requests (submit, polls, result) -> scripted
replies -> the finished video object and its file.

Cases live in tests/golden/videos/<model>.yaml, in the image cases' format (tests/test_golden.py) with one more
placeholder: "$video(WxH,S)" in a reply becomes the URL of a real MP4 of that frame and length served by the scripted
upstream. The gateway runs for real, its job runner polling the scripted upstream.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import yaml

from mediagate.sandbox import video
from tests.servers import GatewayThread, Scripted, subset
from tests.test_golden import _match_upstream

GOLDEN = Path(__file__).parent / "golden" / "videos"
TERMINAL = ("completed", "failed")


def _cases() -> list[Any]:
    out = []
    for f in sorted(GOLDEN.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        for case in doc["cases"]:
            out.append(pytest.param(doc["model"], case, id=f"{f.stem}: {case['name']}"))
    return out


def _videos(scripted: Scripted, value: Any) -> Any:
    """Replace "$video(WxH,S)" with the URL of a rendered MP4 served by the scripted upstream."""
    if isinstance(value, dict):
        return {k: _videos(scripted, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_videos(scripted, v) for v in value]
    if isinstance(value, str) and value.startswith("$video(") and value.endswith(")"):
        size, seconds = value[len("$video("):-1].split(",")
        w, h = (int(x) for x in size.split("x"))
        name = f"v{len(scripted.files)}.mp4"
        scripted.files[name] = video.render_mp4(w, h, float(seconds), "golden")
        return f"{scripted.base_url}/__files__/{name}"
    return value


def _probe(data: bytes) -> tuple[int, int, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.width, stream.codec_context.height, frames / float(stream.average_rate or 1)


def test_the_video_golden_cases_exist() -> None:
    assert _cases(), f"no golden video cases under {GOLDEN}"


@pytest.mark.parametrize(("model", "case"), _cases())
def test_golden_video(model: str, case: dict[str, Any], scripted: Scripted, scripted_gateway: GatewayThread) -> None:
    for step in case.get("upstream", []):
        scripted.replies.append(_videos(scripted, step["reply"]))
    body = scripted.materialize({"model": model, **case["request"]})
    want = case["response"]
    with httpx.Client(timeout=30) as client:
        created = client.post(scripted_gateway.base_url + "/v1/videos", json=body)
        if want.get("status", 202) != 202:   # refused before any job exists
            assert created.status_code == want["status"], created.text
            assert not subset(want.get("json", {}), created.json())
            assert scripted.requests == []
            return
        assert created.status_code == 202, created.text
        video_id = created.json()["id"]
        deadline = time.monotonic() + 30
        got = created.json()
        while got["status"] not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.05)
            got = client.get(f"{scripted_gateway.base_url}/v1/videos/{video_id}").json()
        problems = _match_upstream(case.get("upstream", []), scripted.requests)
        problems += [f"response {m}" for m in subset(want.get("json", {}), got)]
        assert not problems, "\n".join(problems)
        expected = want.get("video")
        if expected:
            content = client.get(f"{scripted_gateway.base_url}/v1/videos/{video_id}/content")
            assert content.status_code == 200
            width, height, seconds = _probe(content.content)
            assert f"{width}x{height}" == expected["size"] and abs(seconds - expected["seconds"]) < 0.5
