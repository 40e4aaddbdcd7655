"""Nothing silent: every value a caller sends is used, refused with a 400 naming it, or applied and listed in
`metadata.adjustments` with the value asked for, the value used and why.

One row per case found in review (issue 10, "Silent drops"). Each row runs against the real gateway on the
provider simulators and, where it matters, checks what actually went upstream.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import pytest
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


def png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 140, 200)).save(buf, "PNG")
    return buf.getvalue()


def data_url(w: int, h: int) -> str:
    return "data:image/png;base64," + base64.b64encode(png(w, h)).decode()


def size_of(item: dict[str, Any]) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).size


@dataclass
class Row:
    """What to send, and one of three outcomes: works (check), refused (param) or adjusted (param, requested, applied)."""

    name: str
    body: dict[str, Any]
    endpoint: str = "/v1/images/generations"
    refused: str | None = None
    adjusted: list[tuple[str, Any, Any]] = field(default_factory=list)   # (param, requested, applied); applied "$any"
    reason: str | None = None                   # a word the (first) adjustment's reason contains
    works: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None  # (response, upstream requests)
    protocol: str | None = None                 # whose simulator log the check reads
    multipart: dict[str, Any] | None = None     # files for a multipart request (body then holds the form fields)


def _upstream_json(requests: list[dict[str, Any]]) -> dict[str, Any]:
    posts = [q for q in requests if q["method"] == "POST" and isinstance(q.get("json"), dict)]
    assert posts, "no upstream request was made"
    return posts[0]["json"]


def _qwen_sent(resp: dict[str, Any], requests: list[dict[str, Any]]) -> None:
    sent = _upstream_json(requests)
    assert sent["num_images"] == 1 and sent["image_size"] == {"width": 1328, "height": 1328}


def _gemini_sent(resp: dict[str, Any], requests: list[dict[str, Any]]) -> None:
    config = _upstream_json(requests)["generationConfig"]
    assert config["responseModalities"] == ["TEXT", "IMAGE"]
    assert config["imageConfig"]["aspectRatio"] == "1:1"
    assert config["imageConfig"]["personGeneration"] == "ALLOW_ADULT", "a sub-field the template does not set is merged in"


def _shape_kept(expected: tuple[int, int] | None, ratio: float) -> Callable[[dict[str, Any], list[dict[str, Any]]], None]:
    def check(resp: dict[str, Any], requests: list[dict[str, Any]]) -> None:
        w, h = size_of(resp["data"][0])
        if expected is not None:
            assert (w, h) == expected, (w, h)
        assert abs(w / h - ratio) / ratio < 0.06, f"{w}x{h} does not keep the input's shape"
        assert w * h > 1376 * 768 * 1.5, f"{w}x{h} was not scaled up to 2K"
    return check


WIDE = data_url(1376, 768)

ROWS = [
    # -- passthrough collisions: the template's value wins and the caller's is listed with it
    Row("qwen-image num_images and image_size set by the template",
        {"model": "qwen-image", "prompt": "x", "num_images": 3, "image_size": "square"},
        adjusted=[("num_images", 3, 1), ("image_size", "square", {"width": 1328, "height": 1328})],
        reason="overridden", works=_qwen_sent, protocol="fal"),
    Row("gemini caller responseModalities and imageConfig",
        {"model": "gemini-3-pro-image", "prompt": "x", "responseModalities": ["IMAGE"],
         "imageConfig": {"aspectRatio": "16:9", "personGeneration": "ALLOW_ADULT"}},
        adjusted=[("responseModalities", ["IMAGE"], ["TEXT", "IMAGE"]), ("imageConfig.aspectRatio", "16:9", "1:1")],
        reason="overridden", works=_gemini_sent, protocol="gemini"),
    Row("a boolean provider option given as 'yes' that the template sets",
        {"model": "vertex/imagen-4", "prompt": "x", "includeRaiReason": "yes"},
        adjusted=[("includeRaiReason", "yes", True)], reason="overridden"),
    # -- masks: sent where the protocol takes one (declared `mask: true`), refused where no route does
    Row("mask on a Gemini edit", {"model": "gemini-3-pro-image", "prompt": "x", "image": WIDE, "mask": WIDE},
        endpoint="/v1/images/edits", refused="mask"),
    Row("mask on a fal edit", {"model": "fal/gpt-image-1.5", "prompt": "x", "image": data_url(1024, 1024),
                               "mask": data_url(1024, 1024)}, endpoint="/v1/images/edits", refused="mask"),
    Row("mask on a Replicate edit", {"model": "replicate/flux.2-pro", "prompt": "x", "image": WIDE, "mask": WIDE},
        endpoint="/v1/images/edits", refused="mask"),
    # -- a route body that sets a field to null: computed per route
    Row("enhance_prompt on imagen-4-fast's fal route",
        {"model": "fal/imagen-4-fast", "prompt": "x", "enhance_prompt": "off"},
        adjusted=[("enhance_prompt", "off", None)], reason="ignored by fal.ai"),
    Row("a declared parameter the fal route does not carry",
        {"model": "fal/imagen-4-fast", "prompt": "x", "person_generation": "allow_all"},
        adjusted=[("person_generation", "allow_all", None)], reason="ignored by fal.ai"),
    # -- videos
    Row("video input_reference object without a url", {"model": "sora-2", "prompt": "x", "input_reference": {"file_id": "f"}},
        endpoint="/v1/videos", refused="input_reference"),
    Row("video output_format", {"model": "sora-2", "prompt": "x", "output_format": "webp"}, endpoint="/v1/videos",
        refused="output_format"),
    Row("video response_format", {"model": "sora-2", "prompt": "x", "response_format": "b64_json"}, endpoint="/v1/videos",
        refused="response_format"),
    Row("video output_compression", {"model": "sora-2", "prompt": "x", "output_compression": 50}, endpoint="/v1/videos",
        refused="output_compression"),
    Row("video duration that disagrees with seconds", {"model": "sora-2", "prompt": "x", "seconds": 8, "duration": 4},
        endpoint="/v1/videos", refused="duration"),
    Row("video mask part", {"model": "sora-2", "prompt": "x"}, endpoint="/v1/videos",
        multipart={"mask": png(720, 1280)}, refused="mask"),
    Row("two video input_reference parts", {"model": "sora-2", "prompt": "x"}, endpoint="/v1/videos",
        multipart={"input_reference": [png(720, 1280), png(720, 1280)]}, refused="input_reference"),
    Row("sora-2 input_reference of another size", {"model": "sora-2", "prompt": "x", "input_reference": data_url(640, 640)},
        endpoint="/v1/videos", refused="input_reference"),
    # -- video fields on images
    Row("image webhook_url", {"model": "gpt-image-1", "prompt": "x", "webhook_url": "https://example.com/h"},
        refused="webhook_url"),
    Row("image idempotency_key", {"model": "gpt-image-1", "prompt": "x", "idempotency_key": "k1"}, refused="idempotency_key"),
    Row("image input_reference", {"model": "gpt-image-1", "prompt": "x", "input_reference": WIDE}, refused="input_reference"),
    # -- unknown fields pass through, each listed, with did-you-mean
    Row("a typo'd field", {"model": "gemini-3-pro-image", "prompt": "x", "sise": "1024x1024"},
        adjusted=[("sise", "1024x1024", "1024x1024")], reason="did you mean 'size'?",
        works=lambda resp, requests: _assert(_upstream_json(requests)["generationConfig"]["sise"] == "1024x1024"),
        protocol="gemini"),
    Row("an unknown provider field", {"model": "qwen-image", "prompt": "x", "acceleration": "high"},
        adjusted=[("acceleration", "high", "high")], reason="passed through",
        works=lambda resp, requests: _assert(_upstream_json(requests)["acceleration"] == "high"), protocol="fal"),
    Row("an unknown model lists the nearest ids", {"model": "gemini-3-pro-imag", "prompt": "x"}, refused="model"),
    # -- an edit with resolution alone keeps the input image's shape (seed 001)
    Row("resolution alone on a gemini-3-pro-image edit", {"model": "gemini-3-pro-image", "prompt": "x", "image": WIDE,
                                                          "resolution": "2K"},
        endpoint="/v1/images/edits", works=_shape_kept((2752, 1536), 1376 / 768)),
    Row("resolution alone on a flux.2-pro edit", {"model": "flux.2-pro", "prompt": "x", "image": WIDE, "resolution": "2K"},
        endpoint="/v1/images/edits", works=_shape_kept(None, 1376 / 768)),
    Row("resolution alone on a gpt-image-1 edit", {"model": "gpt-image-1", "prompt": "x", "image": WIDE, "resolution": "2K"},
        endpoint="/v1/images/edits", adjusted=[("resolution", "2K", "1536x1024")],
        works=lambda resp, requests: _assert(size_of(resp["data"][0]) == (1536, 1024))),
]


def _assert(ok: bool) -> None:
    assert ok


def _send(gw: GatewayThread, row: Row) -> httpx.Response:
    body = {**row.body}
    if row.endpoint != "/v1/videos":
        body.setdefault("response_format", "b64_json")
    if row.multipart is not None:
        files = [(k, (f"{k}.png", d, "image/png")) for k, v in row.multipart.items() for d in (v if isinstance(v, list) else [v])]
        return httpx.post(gw.base_url + row.endpoint, data={k: str(v) for k, v in body.items()}, files=files, timeout=60)
    return httpx.post(gw.base_url + row.endpoint, json=body, timeout=60)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_nothing_silent(row: Row, gateway: GatewayThread, sim: SimulatorThread) -> None:
    sim.reset()
    r = _send(gateway, row)
    if row.refused is not None:
        assert r.status_code in (400, 404), r.text
        error = r.json()["error"]
        assert error["param"] == row.refused, error
        if row.refused == "model":
            assert "gemini-3-pro-image" in error["message"], "model_not_found names the nearest ids"
        return
    assert r.status_code in (200, 202), r.text
    resp = r.json()
    adjustments = resp["metadata"]["adjustments"]
    for param, requested, applied in row.adjusted:
        found = [a for a in adjustments if a["param"] == param]
        assert found, f"{param} not listed in {adjustments}"
        assert found[0]["requested"] == requested, found
        if applied != "$any":
            assert found[0]["applied"] == applied, found
        assert found[0]["reason"], found
    if row.reason is not None:
        assert any(row.reason in a["reason"] for a in adjustments), adjustments
    if row.works is not None:
        row.works(resp, sim.requests(row.protocol) if row.protocol else [])
    if not row.adjusted and row.works is None:
        pytest.fail("a row must check something")


# ---------------------------------------------------------------- cases that need more than one request

def test_mask_is_sent_where_the_protocol_takes_one(scripted: Any, scripted_gateway: GatewayThread) -> None:
    scripted.replies.append({"json": {"data": [{"b64_json": "$image(png,1024x1024)"}]}})
    r = httpx.post(scripted_gateway.base_url + "/v1/images/edits", data={"model": "gpt-image-1", "prompt": "x",
                                                                          "response_format": "b64_json"},
                   files=[("image", ("i.png", png(1024, 1024), "image/png")), ("mask", ("m.png", png(1024, 1024), "image/png"))],
                   timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["adjustments"] == []
    assert scripted.requests[0]["form"]["mask"].startswith("<file"), scripted.requests[0]["form"]


def test_a_fallback_routes_own_adjustments_appear_in_its_attempt_and_the_result(gateway: GatewayThread,
                                                                                sim: SimulatorThread) -> None:
    """imagen-4-fast: Vertex carries enhance_prompt, the fal fallback's body drops it."""
    sim.reset()
    sim.inject("429", protocol="vertex")
    r = httpx.post(gateway.base_url + "/v1/images/generations",
                   json={"model": "imagen-4-fast", "prompt": "x", "enhance_prompt": "off", "response_format": "b64_json"},
                   timeout=60)
    assert r.status_code == 200, r.text
    meta = r.json()["metadata"]
    assert [a["provider"] for a in meta["attempts"]] == ["vertex", "fal"]
    assert "adjustments" not in meta["attempts"][0], "Vertex sends enhancePrompt: nothing of its own to record"
    ignored = {"param": "enhance_prompt", "requested": "off", "applied": None,
               "reason": "ignored by fal.ai: this route's request does not carry it"}
    assert meta["attempts"][1]["adjustments"] == [ignored]
    assert ignored in meta["adjustments"]
    vertex = [q for q in sim.requests("vertex") if q["method"] == "POST"]
    assert vertex[0]["json"]["parameters"]["enhancePrompt"] is False


def test_a_fallback_that_takes_no_mask_records_it(gateway: GatewayThread, sim: SimulatorThread) -> None:
    """gpt-image-1.5: OpenAI sends the mask; when it rate-limits, fal's edit app takes none and says so."""
    sim.reset()
    sim.inject("429", protocol="openai")
    r = httpx.post(gateway.base_url + "/v1/images/edits",
                   json={"model": "gpt-image-1.5", "prompt": "x", "image": data_url(1024, 1024), "mask": data_url(1024, 1024),
                         "response_format": "b64_json"}, timeout=60)
    assert r.status_code == 200, r.text
    meta = r.json()["metadata"]
    assert [a["provider"] for a in meta["attempts"]] == ["openai", "fal"]
    mask = [a for a in meta["adjustments"] if a["param"] == "mask"]
    assert mask and mask[0]["applied"] is None and "fal.ai" in mask[0]["reason"], meta["adjustments"]
    assert mask[0] in meta["attempts"][1]["adjustments"]


@pytest.mark.parametrize("model", ["fal/gpt-image-1.5", "gpt-image-1.5", "fal/imagen-4-fast", "vertex/imagen-4-fast"])
def test_output_compression_is_applied_on_every_route(model: str, gateway: GatewayThread) -> None:
    """The model makes jpeg with compression natively; a route that cannot ask for it gets it from the gateway."""
    sizes = []
    for quality in (5, 95):
        r = httpx.post(gateway.base_url + "/v1/images/generations",
                       json={"model": model, "prompt": "a detailed scene [sim:seed=1]", "output_format": "jpeg",
                             "output_compression": quality, "response_format": "b64_json"}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["output_format"] == "jpeg"
        sizes.append(len(base64.b64decode(r.json()["data"][0]["b64_json"])))
    assert sizes[0] < sizes[1], f"quality 5 gave {sizes[0]} bytes, 95 gave {sizes[1]}"
