"""The Gemini simulator, driven through the official google-genai SDK over real HTTP."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
from google import genai
from google.genai import errors, types

from mediagate.sandbox.gemini_sizes import GEMINI_IMAGE_DIMENSIONS, MODEL_TABLES
from mediagate.sandbox.testing import SimulatorThread

PRO = "gemini-3-pro-image-preview"
FLASH = "gemini-2.5-flash-image"
FLASH31 = "gemini-3.1-flash-image-preview"


def image_config(aspect_ratio: str | None = None, image_size: str | None = None,
                 modalities: list[str] | None = None) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        response_modalities=modalities or ["TEXT", "IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=aspect_ratio, image_size=image_size),
    )


def image_parts(resp: types.GenerateContentResponse) -> list[types.Part]:
    assert resp.candidates
    content = resp.candidates[0].content
    return [p for p in (content.parts or []) if p.inline_data] if content else []


def test_pro_16_9_2k(gclient: genai.Client, util: SimpleNamespace) -> None:
    resp = gclient.models.generate_content(model=PRO, contents="a harbour at night", config=image_config("16:9", "2K"))
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.STOP
    parts = resp.candidates[0].content.parts  # type: ignore[union-attr]
    assert parts and parts[0].text and "harbour" in parts[0].text
    images = image_parts(resp)
    assert len(images) == 1 and images[0].inline_data and images[0].inline_data.mime_type == "image/png"
    decoded = util.decode_bytes(images[0].inline_data.data)
    assert decoded.size == (2752, 1536) and decoded.format == "PNG"
    assert resp.model_version == PRO and resp.response_id
    usage = resp.usage_metadata
    assert usage and usage.candidates_token_count and usage.total_token_count


@pytest.mark.parametrize(("model", "ratio", "size", "expected"), [
    (FLASH, "1:1", None, (1024, 1024)),
    (FLASH, "16:9", None, (1344, 768)),
    (FLASH, "21:9", "1K", (1536, 672)),
    ("gemini-2.5-flash-image-preview", "9:16", None, (768, 1344)),
    (PRO, "16:9", "1K", (1376, 768)),
    (PRO, "2:3", "1K", (848, 1264)),
    (PRO, "5:4", "2K", (2304, 1856)),
    (PRO, "1:1", "4K", (4096, 4096)),
    (FLASH31, "1:1", "512", (512, 512)),
    (FLASH31, "16:9", "0.5K", (688, 384)),
    (FLASH31, "1:8", "1K", (352, 2928)),
    (FLASH31, "4:1", "2K", (4128, 1024)),
    (FLASH31, "21:9", "1K", (1584, 672)),
])
def test_documented_dimensions(gclient: genai.Client, util: SimpleNamespace, model: str, ratio: str,
                               size: str | None, expected: tuple[int, int]) -> None:
    resp = gclient.models.generate_content(model=model, contents="a test card",
                                           config=image_config(ratio, size, ["IMAGE"]))
    images = image_parts(resp)
    assert len(images) == 1 and images[0].inline_data
    assert util.decode_bytes(images[0].inline_data.data).size == expected


@pytest.mark.parametrize("model", sorted(MODEL_TABLES))
def test_every_1k_table_entry_is_served_exactly(sim: SimulatorThread, util: SimpleNamespace, model: str) -> None:
    for ratio, expected in GEMINI_IMAGE_DIMENSIONS[MODEL_TABLES[model]]["1K"].items():
        body = {"contents": [{"parts": [{"text": "grid"}]}],
                "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": ratio}}}
        status, _, raw = util.http("POST", sim.url(f"/gemini/v1beta/models/{model}:generateContent"), body,
                                   {"x-goog-api-key": "k"})
        assert status == 200, raw
        part = json.loads(raw)["candidates"][0]["content"]["parts"][0]
        assert util.decode_b64(part["inlineData"]["data"]).size == expected, (model, ratio)


def test_defaults_without_image_config(gclient: genai.Client, util: SimpleNamespace) -> None:
    resp = gclient.models.generate_content(model=FLASH, contents="a teapot")
    images = image_parts(resp)
    assert images and images[0].inline_data
    assert util.decode_bytes(images[0].inline_data.data).size == (1024, 1024)
    assert any(p.text for p in resp.candidates[0].content.parts)  # type: ignore[union-attr, index]


def test_image_only_modality_and_thoughts(gclient: genai.Client) -> None:
    only_image = gclient.models.generate_content(model=PRO, contents="a teapot",
                                                 config=image_config(modalities=["IMAGE"]))
    parts = only_image.candidates[0].content.parts  # type: ignore[union-attr, index]
    assert parts and len(parts) == 1 and parts[0].inline_data
    thinking = gclient.models.generate_content(
        model=PRO, contents="a teapot",
        config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"],
                                           thinking_config=types.ThinkingConfig(include_thoughts=True)))
    parts = thinking.candidates[0].content.parts  # type: ignore[union-attr, index]
    assert parts and parts[0].thought is True and parts[0].text
    assert not any(p.thought for p in parts[1:])
    assert [p for p in parts if p.inline_data]


@pytest.mark.parametrize(("model", "ratio", "size"), [
    (FLASH, "8:1", None),
    (FLASH, "1:1", "2K"),
    (PRO, "1:4", "1K"),
    (PRO, "1:1", "512"),
    (PRO, "1:1", "1k"),
    (FLASH31, "7:3", "1K"),
])
def test_unsupported_config_is_invalid_argument(gclient: genai.Client, model: str, ratio: str,
                                                size: str | None) -> None:
    with pytest.raises(errors.ClientError) as err:
        gclient.models.generate_content(model=model, contents="x", config=image_config(ratio, size))
    assert err.value.code == 400 and err.value.status == "INVALID_ARGUMENT"


def test_edit_keeps_input_aspect_ratio(gclient: genai.Client, util: SimpleNamespace) -> None:
    portrait = util.png_bytes(900, 1600)
    resp = gclient.models.generate_content(
        model=FLASH, contents=[types.Part.from_bytes(data=portrait, mime_type="image/png"), "make it autumn"])
    images = image_parts(resp)
    assert images and images[0].inline_data
    assert util.decode_bytes(images[0].inline_data.data).size == (768, 1344)  # 9:16 row
    forced = gclient.models.generate_content(
        model=PRO, contents=[types.Part.from_bytes(data=portrait, mime_type="image/png"), "make it autumn"],
        config=image_config("4:3", "1K"))
    forced_images = image_parts(forced)
    assert forced_images and forced_images[0].inline_data
    assert util.decode_bytes(forced_images[0].inline_data.data).size == (1200, 896)


def test_safety_and_prompt_blocked(gclient: genai.Client) -> None:
    blocked = gclient.models.generate_content(model=PRO, contents="something [sim:safety]", config=image_config())
    assert blocked.candidates and blocked.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    assert not image_parts(blocked)
    prompt_blocked = gclient.models.generate_content(model=PRO, contents="x [sim:prompt-blocked]")
    assert not prompt_blocked.candidates
    assert prompt_blocked.prompt_feedback and prompt_blocked.prompt_feedback.block_reason == "PROHIBITED_CONTENT"


def test_noimage_returns_text_only(gclient: genai.Client) -> None:
    resp = gclient.models.generate_content(model=FLASH, contents="x [sim:noimage]", config=image_config())
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.STOP
    assert not image_parts(resp)
    assert resp.candidates[0].content and resp.candidates[0].content.parts
    assert "[sim:" not in (resp.candidates[0].content.parts[0].text or "")


def test_rate_limit_and_server_errors(gclient: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as err:
        gclient.models.generate_content(model=PRO, contents="x [sim:429]")
    assert err.value.code == 429 and err.value.status == "RESOURCE_EXHAUSTED"
    details = err.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"} in details
    with pytest.raises(errors.ServerError) as server:
        gclient.models.generate_content(model=PRO, contents="x [sim:503]")
    assert server.value.code == 503 and server.value.status == "UNAVAILABLE"
    with pytest.raises(errors.ServerError) as internal:
        gclient.models.generate_content(model=PRO, contents="x [sim:500]")
    assert internal.value.code == 500 and internal.value.status == "INTERNAL"


def test_auth_and_unknown_model(sim: SimulatorThread, gclient: genai.Client, util: SimpleNamespace) -> None:
    bad = genai.Client(api_key="bad-key", http_options=types.HttpOptions(base_url=sim.base_url + "/gemini"))
    with bad, pytest.raises(errors.ClientError) as err:
        bad.models.generate_content(model=PRO, contents="x")
    assert err.value.code == 400
    assert err.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert err.value.message == "API key not valid. Please pass a valid API key."
    with pytest.raises(errors.ClientError) as missing:
        gclient.models.generate_content(model="gemini-9-ultra-image", contents="x")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    status, _, raw = util.http("POST", sim.url(f"/gemini/v1beta/models/{PRO}:generateContent"),
                               {"contents": [{"parts": [{"text": "x"}]}]})
    assert status == 403 and json.loads(raw)["error"]["status"] == "PERMISSION_DENIED"


def test_v1beta_path_query_key_and_snake_case(sim: SimulatorThread, util: SimpleNamespace) -> None:
    source = base64.b64encode(util.png_bytes(1600, 900)).decode()
    body = {"contents": [{"role": "user", "parts": [
        {"text": "brighter"}, {"inline_data": {"mime_type": "image/png", "data": source}}]}],
        "generation_config": {"response_modalities": ["IMAGE"], "image_config": {"image_size": "2K"}}}
    status, _, raw = util.http("POST", sim.url(f"/gemini/v1beta/models/{PRO}:generateContent?key=k"), body)
    assert status == 200
    parts = json.loads(raw)["candidates"][0]["content"]["parts"]
    assert util.decode_b64(parts[-1]["inlineData"]["data"]).size == (2752, 1536)
    logged = sim.requests("gemini")[-1]
    assert logged["path"] == f"/gemini/v1beta/models/{PRO}:generateContent" and logged["query"] == {"key": "k"}
    sdk = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.base_url + "/gemini",
                                                                  api_version="v1beta"))
    with sdk:
        assert image_parts(sdk.models.generate_content(model=FLASH, contents="x"))
    assert sim.requests("gemini")[-1]["path"].startswith("/gemini/v1beta/")
