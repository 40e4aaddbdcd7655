"""Veo on the Gemini API and on Vertex AI, driven through google-genai.

google-genai 3.x only builds ``generate_videos`` requests in Vertex mode (in Gemini API
mode it raises "only supported in Gemini Enterprise Agent Platform mode"), so the Gemini
API tests post ``:predictLongRunning`` themselves and then use the SDK's
``operations.get`` and ``files.download``. ``files.download`` only parses ``https://``
video uris, hence the TLS simulator there.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import google.oauth2.credentials
import httpx
import pytest
from google import genai
from google.genai import errors, types

from mediagate.sandbox import video
from mediagate.sandbox.testing import SimulatorThread

VEO = "veo-3.1-generate-preview"
KEY = {"x-goog-api-key": "gemini-key"}


@pytest.fixture
def tls_gemini(tls_sim: SimulatorThread) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=tls_sim.base_url + "/gemini", api_version="v1beta",
                                client_args={"verify": tls_sim.client_ssl_context})
    client = genai.Client(api_key="gemini-key", http_options=options)
    yield client
    client.close()


@pytest.fixture
def vertex_veo(sim: SimulatorThread) -> Iterator[genai.Client]:
    client = genai.Client(vertexai=True, project="p", location="us-central1",
                          credentials=google.oauth2.credentials.Credentials(token="sandbox"),
                          http_options=types.HttpOptions(base_url=sim.base_url + "/vertex"))
    yield client
    client.close()


def predict(sim: SimulatorThread, body: dict[str, Any], model: str = VEO,
            headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(verify=sim.client_ssl_context or True, timeout=30) as http:
        return http.post(sim.url(f"/gemini/v1beta/models/{model}:predictLongRunning"), json=body,
                         headers=KEY if headers is None else headers)


def wait(client: genai.Client, op: types.GenerateVideosOperation) -> types.GenerateVideosOperation:
    deadline = time.time() + 10
    while not op.done and time.time() < deadline:
        time.sleep(0.05)
        op = client.operations.get(op)
    return op


def test_gemini_api_operation_and_download(tls_sim: SimulatorThread, tls_gemini: genai.Client) -> None:
    params = {"aspectRatio": "16:9", "durationSeconds": "4", "personGeneration": "allow_all"}  # string, as REST allows
    resp = predict(tls_sim, {"instances": [{"prompt": "a glacier calving [sim:job=300]"}], "parameters": params})
    assert resp.status_code == 200 and list(resp.json()) == ["name"]
    name = resp.json()["name"]
    assert name.startswith(f"models/{VEO}/operations/")
    op = tls_gemini.operations.get(types.GenerateVideosOperation(name=name))
    assert not op.done
    op = wait(tls_gemini, op)
    assert op.done and op.error is None and op.result and op.result.generated_videos
    generated = op.result.generated_videos[0]
    assert generated.video and generated.video.uri and generated.video.uri.endswith(":download?alt=media")
    data = tls_gemini.files.download(file=generated)
    info = video.probe(data)
    assert (info.width, info.height) == (1280, 720) and abs(info.frames - 4 * video.FPS) <= 1
    paths = [(e["method"], e["path"]) for e in tls_sim.requests("gemini")]
    assert ("GET", f"/gemini/v1beta/{name}") in paths
    assert paths[-1][1].startswith("/gemini/v1beta/files/") and paths[-1][1].endswith(":download")
    raw = json.loads(httpx.get(tls_sim.url(f"/gemini/v1beta/{name}"), headers=KEY,
                               verify=tls_sim.client_ssl_context).text)
    assert raw["response"]["@type"].endswith("PredictLongRunningResponse")
    # the video uri needs the API key, like every other Gemini API call
    uri = generated.video.uri
    assert httpx.get(uri, verify=tls_sim.client_ssl_context).status_code == 403
    assert httpx.get(uri + "&key=gemini-key", verify=tls_sim.client_ssl_context).content == data


@pytest.mark.parametrize(("params", "size"), [
    ({"aspectRatio": "9:16", "resolution": "1080p", "durationSeconds": 8}, (1080, 1920)),
    ({}, (1280, 720)),
])
def test_gemini_api_sizes(tls_sim: SimulatorThread, tls_gemini: genai.Client, params: dict[str, Any],
                          size: tuple[int, int]) -> None:
    name = predict(tls_sim, {"instances": [{"prompt": "sizes [sim:job=0]"}], "parameters": params}).json()["name"]
    op = wait(tls_gemini, types.GenerateVideosOperation(name=name))
    info = video.probe(tls_gemini.files.download(file=op.result.generated_videos[0]))  # type: ignore[index, union-attr]
    assert (info.width, info.height) == size and abs(info.duration - params.get("durationSeconds", 8)) <= 0.2


def test_gemini_api_safety_failure_and_errors(tls_sim: SimulatorThread, tls_gemini: genai.Client,
                                              util: Any) -> None:
    blocked = predict(tls_sim, {"instances": [{"prompt": "forbidden [sim:safety] [sim:job=0]"}]}).json()["name"]
    op = wait(tls_gemini, types.GenerateVideosOperation(name=blocked))
    assert op.done and op.result is not None and not op.result.generated_videos
    assert op.result.rai_media_filtered_count == 1 and op.result.rai_media_filtered_reasons
    failed = predict(tls_sim, {"instances": [{"prompt": "x [sim:fail] [sim:job=0]"}]}).json()["name"]
    op = wait(tls_gemini, types.GenerateVideosOperation(name=failed))
    assert op.done and op.error and op.error["code"] == 13
    for body, model, status in (
        ({"instances": [{"prompt": "x"}], "parameters": {"resolution": "1080p", "durationSeconds": 4}}, VEO, 400),
        ({"instances": [{"prompt": "x"}], "parameters": {"aspectRatio": "1:1"}}, VEO, 400),
        ({"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 5}}, VEO, 400),
        ({"instances": [{"prompt": "x"}]}, "veo-9", 404),
        ({"instances": [{"prompt": "x [sim:429]"}]}, VEO, 429),
        ({"instances": [{"prompt": "x [sim:prompt-blocked]"}]}, VEO, 400),
    ):
        resp = predict(tls_sim, body, model)
        assert resp.status_code == status and resp.json()["error"]["code"] == status, body
    image = util.png_bytes(1280, 720)
    with_image = predict(tls_sim, {"instances": [{"prompt": "animate [sim:job=0]", "image": {
        "bytesBase64Encoded": base64.b64encode(image).decode(), "mimeType": "image/png"}}]})
    assert with_image.status_code == 200
    assert predict(tls_sim, {"instances": [{"prompt": "x"}]}, headers={}).status_code == 403
    with pytest.raises(errors.ClientError) as missing:
        tls_gemini.operations.get(types.GenerateVideosOperation(name=f"models/{VEO}/operations/nope"))
    assert missing.value.code == 404


def test_vertex_inline_bytes(sim: SimulatorThread, vertex_veo: genai.Client) -> None:
    op = vertex_veo.models.generate_videos(
        model="veo-3.1-generate-001", source=types.GenerateVideosSource(prompt="a fox in snow [sim:job=200]"),
        config=types.GenerateVideosConfig(aspect_ratio="9:16", duration_seconds=4, number_of_videos=2))
    assert op.name and op.name.startswith(
        "projects/p/locations/us-central1/publishers/google/models/veo-3.1-generate-001/operations/")
    op = wait(vertex_veo, op)
    assert op.result is not None and op.result.rai_media_filtered_count == 0
    videos = op.result.generated_videos or []
    assert len(videos) == 2
    for item in videos:
        assert item.video and item.video.mime_type == "video/mp4" and item.video.video_bytes
        info = video.probe(item.video.video_bytes)
        assert (info.width, info.height) == (720, 1280) and abs(info.duration - 4) <= 0.2
    methods = [e["path"].rsplit(":", 1)[1] for e in sim.requests("vertex")]
    assert methods[0] == "predictLongRunning" and set(methods[1:]) == {"fetchPredictOperation"}
    fetch = [e for e in sim.requests("vertex") if e["path"].endswith(":fetchPredictOperation")][0]
    assert fetch["json"] == {"operationName": op.name}


def test_vertex_storage_uri_safety_and_errors(sim: SimulatorThread, vertex_veo: genai.Client) -> None:
    op = wait(vertex_veo, vertex_veo.models.generate_videos(
        model="veo-3.0-generate-001", source=types.GenerateVideosSource(prompt="to a bucket [sim:job=0]"),
        config=types.GenerateVideosConfig(output_gcs_uri="gs://bucket/out")))
    item = op.result.generated_videos[0].video  # type: ignore[index, union-attr]
    assert item and item.uri and item.uri.startswith("gs://bucket/out/") and item.video_bytes is None
    op = wait(vertex_veo, vertex_veo.models.generate_videos(
        model="veo-3.1-fast-generate-001", source=types.GenerateVideosSource(prompt="x [sim:safety] [sim:job=0]")))
    assert op.result and op.result.rai_media_filtered_count == 1 and not op.result.generated_videos
    with pytest.raises(errors.ClientError) as bad:
        vertex_veo.models.generate_videos(model="veo-2.0-generate-001", source=types.GenerateVideosSource(prompt="x"),
                                          config=types.GenerateVideosConfig(resolution="1080p"))
    assert bad.value.code == 400
    with pytest.raises(errors.ClientError) as unknown:
        vertex_veo.models.generate_videos(model="veo-99", source=types.GenerateVideosSource(prompt="x"))
    assert unknown.value.code == 404
    sim.inject("503", protocol="vertex")
    with pytest.raises(errors.ServerError):
        vertex_veo.models.generate_videos(model="veo-3.1-generate-001", source=types.GenerateVideosSource(prompt="x"))
