"""Every bound on an input, tested at the limit and at limit + 1; and the memory-shaped internals
(lazy image encodings, big JSON moved in slices) that keep a request's memory to its payload."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mediagate import catalog as catalog_mod
from mediagate import context, imaging, inputs, jsonbody, upstream, videos
from mediagate.request_schema import DEFAULT_PROMPT_CHARS
from tests.servers import GatewayThread, image_bytes

GEN = "/v1/images/generations?dryRun=true"


def _post(gw: GatewayThread, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gw.base_url + path, json=body, timeout=30)


# ---------------------------------------------------------------- prompt characters

@pytest.mark.parametrize(("model", "path", "limit"), [
    ("dall-e-3", GEN, 4000),                                   # declared in its spec
    ("gemini-3-pro-image", GEN, DEFAULT_PROMPT_CHARS),         # declares none: the gateway default
    ("veo-3.1", "/v1/videos?dryRun=true", DEFAULT_PROMPT_CHARS),  # a video model without a declared limit
    ("sora-2", "/v1/videos?dryRun=true", 10000),
])
def test_prompt_chars_at_limit_and_limit_plus_one(gateway: GatewayThread, model: str, path: str, limit: int) -> None:
    extra = {"seconds": 8} if model == "veo-3.1" else {}
    assert _post(gateway, path, {"model": model, "prompt": "p" * limit, **extra}).status_code == 200
    r = _post(gateway, path, {"model": model, "prompt": "p" * (limit + 1), **extra})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["param"] == "prompt"


# ---------------------------------------------------------------- list pages are bounded

def test_video_list_cuts_long_prompts_with_a_marker(gateway: GatewayThread, sim_clean: Any) -> None:
    at_limit = "a" * (videos.LIST_PROMPT_CHARS - len(" [sim:job=50]")) + " [sim:job=50]"
    at = _post(gateway, "/v1/videos", {"model": "sora-2", "prompt": at_limit})
    whole = "b" * (videos.LIST_PROMPT_CHARS + 1)
    over = _post(gateway, "/v1/videos", {"model": "sora-2", "prompt": whole})
    assert at.status_code == over.status_code == 202
    listed = {v["id"]: v for v in httpx.get(gateway.base_url + "/v1/videos?limit=100", timeout=30).json()["data"]}
    cut = listed[over.json()["id"]]
    assert cut["prompt"] == whole[:videos.LIST_PROMPT_CHARS] + videos.TRUNCATED_MARKER
    assert cut["metadata"]["prompt_truncated"] is True and cut["metadata"]["prompt_chars"] == len(whole)
    kept = listed[at.json()["id"]]
    assert kept["prompt"] == at_limit and "prompt_truncated" not in kept["metadata"]
    assert httpx.get(gateway.base_url + f"/v1/videos/{over.json()['id']}").json()["prompt"] == whole  # the job keeps it


def test_video_list_prompt_at_the_limit_is_whole() -> None:
    prompt = "c" * videos.LIST_PROMPT_CHARS
    job = {"id": "video_x", "model": "m", "status": "queued", "progress": 0, "created_at": 0, "prompt": prompt}
    assert videos._listed(videos.public(job))["prompt"] == prompt
    assert videos._listed(videos.public({**job, "prompt": prompt + "c"}))["prompt"].endswith(videos.TRUNCATED_MARKER)


# ---------------------------------------------------------------- requests in flight

def test_concurrent_requests_over_the_cap_get_a_shaped_503(sim: Any, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, max_concurrent_requests=2) as gw:
        async def run() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as client:
                slow = [asyncio.create_task(client.post("/v1/images/generations", json={
                    "model": "dall-e-2", "prompt": f"hold {i} [sim:latency=1500]", "size": "256x256"})) for i in range(2)]
                deadline = time.monotonic() + 10
                while gw.app.state.admission.requests < 2:  # both held at the cap
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.01)
                third = await client.post("/v1/images/generations", json={"model": "dall-e-2", "prompt": "x"})
                health = await client.get("/healthz")
                assert health.status_code == 200  # operations endpoints are never refused
                return [third, *await asyncio.gather(*slow)]
        third, *held = asyncio.run(run())
    assert [r.status_code for r in held] == [200, 200]
    assert third.status_code == 503
    assert third.json()["error"]["code"] == "service_unavailable" and third.headers["retry-after"] == "1"


def test_a_streamed_answer_holds_its_place_until_the_last_byte(sim: Any, tmp_path: Path) -> None:
    """The cap counts a request until its answer is sent, not until its handler returns: two chat streams
    still being relayed fill a cap of 2 (limit + 1 is refused); one read to its end and one the caller
    leaves mid-stream each give their place back."""
    def chat(words: int) -> dict[str, Any]:
        return {"model": "gpt-4.1-mini", "stream": True,
                "messages": [{"role": "user", "content": " ".join(["word"] * words) + " [sim:chunk=100]"}]}

    def wait_for(held: int) -> None:
        deadline = time.monotonic() + 10
        while gw.app.state.admission.requests != held:
            assert time.monotonic() < deadline, f"{gw.app.state.admission.requests} held, expected {held}"
            time.sleep(0.01)

    with GatewayThread(sim.base_url, tmp_path, max_concurrent_requests=2) as gw, httpx.Client(timeout=30) as client:
        url = gw.base_url + "/v1/chat/completions"
        with client.stream("POST", url, json=chat(12)) as short, client.stream("POST", url, json=chat(60)) as long:
            assert short.status_code == long.status_code == 200
            short_chunks, long_chunks = short.iter_bytes(), long.iter_bytes()
            next(short_chunks), next(long_chunks)   # both handlers have returned; their bodies are being sent
            wait_for(2)
            third = client.post(gw.base_url + GEN, json={"model": "dall-e-2", "prompt": "x"})
            assert third.status_code == 503, third.text[:300]
            assert third.json()["error"]["code"] == "service_unavailable"
            assert b"[DONE]" in b"".join(short_chunks)   # read to the end: one place back
            wait_for(1)
            assert client.post(gw.base_url + GEN, json={"model": "dall-e-2", "prompt": "x"}).status_code == 200
            next(long_chunks)
        wait_for(0)   # the caller left mid-stream: its place is back too
        assert client.post(gw.base_url + GEN, json={"model": "dall-e-2", "prompt": "x"}).status_code == 200


# ---------------------------------------------------------------- upload bytes in flight

def _open_upload(port: int, declared: int) -> socket.socket:
    """A request whose body is declared but not sent yet: it holds its share of the budget."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              f"Content-Length: {declared}\r\n\r\n--b\r\n".encode())
    return s


def test_upload_budget_at_limit_and_limit_plus_one(sim: Any, tmp_path: Path) -> None:
    budget = 1_000_000
    with GatewayThread(sim.base_url, tmp_path, max_inflight_upload_bytes=budget) as gw:
        admission = gw.app.state.admission
        too_big = httpx.post(gw.base_url + "/v1/images/edits", content=b"x" * (budget + 1),
                             headers={"content-type": "multipart/form-data; boundary=b"}, timeout=30)
        assert too_big.status_code == 413  # more than the whole budget: never admissible
        held = _open_upload(gw.port, budget - 1000)
        try:
            deadline = time.monotonic() + 10
            while admission.upload_bytes < budget - 1000:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            body = b'{"model": "dall-e-2", "prompt": "x"' + b" " * (1000 - 36) + b"}"
            assert len(body) == 1000  # exactly what is left: admitted (then the usual answer)
            fits = httpx.post(gw.base_url + GEN, content=body, headers={"content-type": "application/json"}, timeout=30)
            assert fits.status_code == 200, fits.text[:300]
            over = httpx.post(gw.base_url + GEN, content=body + b" ", headers={"content-type": "application/json"}, timeout=30)
            assert over.status_code == 503, over.text[:300]
            assert over.json()["error"]["code"] == "service_unavailable" and over.headers["retry-after"] == "1"
        finally:
            held.close()
        deadline = time.monotonic() + 10
        while admission.upload_bytes or admission.requests:  # given back when the held request ends
            assert time.monotonic() < deadline
            time.sleep(0.01)
        again = httpx.post(gw.base_url + GEN, content=body + b" ", headers={"content-type": "application/json"}, timeout=30)
        assert again.status_code == 200


def test_chunked_upload_is_counted_as_it_arrives(sim: Any, tmp_path: Path) -> None:
    budget = 200_000
    with GatewayThread(sim.base_url, tmp_path, max_inflight_upload_bytes=budget) as gw:
        def chunks() -> Any:
            for _ in range(30):
                yield b" " * 10_000  # no Content-Length: 300 kB arrive in pieces
        r = httpx.post(gw.base_url + "/v1/images/generations", content=chunks(),
                       headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        assert gw.app.state.admission.upload_bytes == 0


# ---------------------------------------------------------------- images held once, encoded only as used

def _edit_request(model_id: str, data: bytes) -> tuple[Any, Any]:
    cat = catalog_mod.load()
    model, _ = cat.resolve(model_id)
    image = inputs.decode(data, "image")
    req = model.canonical({"model": model_id, "prompt": "x"}, "edit", images=(image,), implicit_size="64x64")
    return model, req


@pytest.mark.parametrize(("model_id", "provider", "made"), [
    ("gpt-image-1", "openai", set()),             # multipart upstream: the upload itself, no base64 at all
    ("flux.2-pro", "replicate", {"data_url"}),   # a JSON upstream reading data_url: that encoding only
])
def test_input_image_encodings_are_made_only_when_a_route_reads_them(model_id: str, provider: str, made: set[str]) -> None:
    data = image_bytes("png", 64, 64)
    model, req = _edit_request(model_id, data)
    route = next(r for r in model.routes if r.provider.id == provider)
    target = upstream.Target("http://127.0.0.1:9", {k: "k" for k in route.provider.secrets}, True)
    ctx = context.build(req, route, 1)
    rendered = asyncio.run(upstream.render_async(route.provider, route.operation("edit"), ctx, target))
    assert set(req.images[0]._encoded) == made
    if not made:
        assert rendered.multipart
        form = rendered.form()
        assert form is not None
    else:
        assert f"data:image/png;base64,{base64.b64encode(data).decode()}" in orjson.dumps(rendered.json).decode()


def test_sliced_base64_matches_the_standard_library() -> None:
    for n in (0, 1, 2, 3, imaging.B64_SLICE_BYTES - 1, imaging.B64_SLICE_BYTES, 3 * imaging.B64_SLICE_BYTES + 2):
        data = os.urandom(n)
        text = base64.b64encode(data).decode()
        assert imaging.b64encode(data) == text and imaging.b64decode(text) == data
        assert imaging.b64encode(data, "data:image/png;base64,") == "data:image/png;base64," + text
    with pytest.raises(ValueError):
        imaging.b64decode("ab=c" + "A" * 4)


# ---------------------------------------------------------------- JSON with big strings

BIG = jsonbody.BIG_STRING_CHARS + 1


def test_big_json_round_trips_through_the_sliced_paths() -> None:
    doc = {"data": [{"b64_json": base64.b64encode(os.urandom(BIG)).decode()}, {"s": "é\"\\\n\u2028" * BIG}],
           "n": [1, 2.5, None, True, 2 ** 70], "k": "small"}
    encoded = b"".join(jsonbody.iter_bytes(jsonbody.parts(doc)))
    assert jsonbody.loads(encoded) == doc
    assert asyncio.run(jsonbody.loads_async(encoded + b" " * jsonbody.JSON_INLINE_BYTES)) == doc
    assert asyncio.run(jsonbody.dumps_async(doc)) == encoded


@pytest.mark.parametrize("bad", [
    b'{"a": "' + b"y" * BIG + b'\x01"}',            # a control character inside a big string
    b'{"a": "' + b"y" * BIG + b'", "b": NaN}',        # NaN beside one
    b'{"a": "' + b"y" * BIG,                          # unterminated
    b'{"a": "' + b"y" * BIG + b'\xff"}',              # not UTF-8
])
def test_big_json_is_checked_like_small_json(bad: bytes) -> None:
    with pytest.raises(ValueError):
        asyncio.run(jsonbody.loads_async(bad + b" " * jsonbody.JSON_INLINE_BYTES))


def test_duplicate_keys_with_big_values_keep_the_last_like_any_parser() -> None:
    raw = b'{"a": "' + b"y" * BIG + b'", "a": "' + b"z" * BIG + b'"}' + b" " * jsonbody.JSON_INLINE_BYTES
    assert asyncio.run(jsonbody.loads_async(raw)) == {"a": "z" * BIG}


def test_integers_past_64_bits_stay_exact_and_nan_is_refused() -> None:
    assert jsonbody.loads(b'{"seed": 123456789012345678901234567890}') == {"seed": 123456789012345678901234567890}
    for bad in (b'[NaN]', b'[Infinity]', b'[12345678901234567890123, NaN]'):
        with pytest.raises(ValueError):
            jsonbody.loads(bad)
    assert jsonbody.dumps({"s": "\ud800"}) == b'{"s":"\\ud800"}'  # what orjson refuses is still written


def test_a_big_b64_response_is_streamed_and_exact(gateway: GatewayThread, sim_clean: Any) -> None:
    r = httpx.post(gateway.base_url + "/v1/images/generations", timeout=60,
                   json={"model": "dall-e-2", "prompt": "big [sim:noise]", "size": "512x512", "response_format": "b64_json"})
    assert r.status_code == 200 and "content-length" not in r.headers  # sent as encoded
    data = base64.b64decode(r.json()["data"][0]["b64_json"])
    assert imaging.identify(data) == imaging.Info("png", 512, 512) and len(data) > 512 * 512 * 3
