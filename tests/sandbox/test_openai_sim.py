"""The OpenAI Images simulator, driven through the official openai SDK over real HTTP."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace

import openai
import pytest

from mediagate.sandbox.testing import SimulatorThread

GPT_IMAGE = ["gpt-image-1", "gpt-image-1.5", "gpt-image-1-mini"]


@pytest.mark.parametrize("model", GPT_IMAGE)
@pytest.mark.parametrize(("size", "expected"), [
    ("1024x1024", (1024, 1024)), ("1536x1024", (1536, 1024)), ("1024x1536", (1024, 1536)), ("auto", (1024, 1024)),
])
def test_gpt_image_sizes_and_shape(oai: openai.OpenAI, util: SimpleNamespace, model: str, size: str,
                                   expected: tuple[int, int]) -> None:
    resp = oai.images.generate(model=model, prompt="a lighthouse at dawn", size=size)
    assert resp.data is not None and len(resp.data) == 1
    item = resp.data[0]
    assert item.url is None and item.b64_json
    image = util.decode_b64(item.b64_json)
    assert image.size == expected and image.format == "PNG"
    assert resp.size == f"{expected[0]}x{expected[1]}"
    assert resp.output_format == "png" and resp.quality == "high" and resp.background == "opaque"
    assert resp.usage is not None and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_gpt_image_output_format(oai: openai.OpenAI, util: SimpleNamespace, fmt: str, pil_format: str) -> None:
    resp = oai.images.generate(model="gpt-image-1", prompt="a red bicycle", output_format=fmt,  # type: ignore[arg-type]
                               output_compression=70, quality="low", n=2)
    assert resp.output_format == fmt and resp.quality == "low"
    assert resp.data is not None and len(resp.data) == 2
    image = util.decode_b64(resp.data[0].b64_json)
    assert image.format == pil_format and image.size == (1024, 1024)


def test_gpt_image_transparent_background(oai: openai.OpenAI, util: SimpleNamespace) -> None:
    resp = oai.images.generate(model="gpt-image-1", prompt="a sticker", background="transparent")
    assert resp.background == "transparent"
    assert resp.data is not None
    assert util.decode_b64(resp.data[0].b64_json).mode == "RGBA"
    with pytest.raises(openai.BadRequestError) as err:
        oai.images.generate(model="gpt-image-1", prompt="a sticker", background="transparent", output_format="jpeg")
    assert err.value.body["param"] == "background"  # type: ignore[index]


def test_gpt_image_rejects_response_format_like_the_real_api(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.images.generate(model="gpt-image-1", prompt="x", response_format="b64_json")
    assert err.value.code == "unknown_parameter"
    assert err.value.param == "response_format"
    assert err.value.body == {"message": "Unknown parameter: 'response_format'.", "type": "invalid_request_error",
                              "param": "response_format", "code": "unknown_parameter"}


@pytest.mark.parametrize(("kwargs", "param", "code"), [
    ({"model": "gpt-image-1", "size": "512x512"}, "size", "invalid_value"),
    ({"model": "gpt-image-1", "quality": "hd"}, "quality", "invalid_value"),
    ({"model": "gpt-image-1", "n": 11}, "n", "integer_above_max_value"),
    ({"model": "gpt-image-1", "n": 0}, "n", "integer_below_min_value"),
    ({"model": "dall-e-3", "n": 2}, "n", "invalid_value"),
    ({"model": "dall-e-3", "size": "512x512"}, "size", "invalid_value"),
    ({"model": "dall-e-3", "quality": "low"}, "quality", "invalid_value"),
    ({"model": "dall-e-3", "style": "sketchy"}, "style", "invalid_value"),
    ({"model": "dall-e-2", "size": "1536x1024"}, "size", "invalid_value"),
    ({"model": "dall-e-2", "n": 11}, "n", "integer_above_max_value"),
    ({"model": "my-local-sd", "size": "1020x1000"}, "size", "invalid_value"),
    ({"model": "my-local-sd", "size": "4104x4104"}, "size", "invalid_value"),
    ({"model": "my-local-sd", "n": 5}, "n", "integer_above_max_value"),
])
def test_invalid_requests_get_openai_400s(oai: openai.OpenAI, kwargs: dict[str, object], param: str,
                                          code: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.images.generate(prompt="a cat", **kwargs)  # type: ignore[arg-type]
    assert err.value.status_code == 400
    assert err.value.param == param and err.value.code == code
    assert err.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_dall_e_3_url_default_revised_prompt_and_served_file(oai: openai.OpenAI, util: SimpleNamespace,
                                                             sim: SimulatorThread) -> None:
    resp = oai.images.generate(model="dall-e-3", prompt="a koi pond", size="1792x1024", quality="hd", style="natural")
    assert resp.data is not None and len(resp.data) == 1
    item = resp.data[0]
    assert item.b64_json is None and item.url and item.url.startswith(sim.base_url + "/openai/files/")
    assert item.revised_prompt and "koi pond" in item.revised_prompt
    assert resp.usage is None and resp.size is None  # dall-e answers carry only created + data
    with urllib.request.urlopen(item.url) as fetched:
        assert fetched.headers["Content-Type"] == "image/png"
        assert util.decode_bytes(fetched.read()).size == (1792, 1024)

    b64 = oai.images.generate(model="dall-e-3", prompt="a koi pond", size="1024x1792", response_format="b64_json")
    assert b64.data is not None and b64.data[0].url is None
    assert util.decode_b64(b64.data[0].b64_json).size == (1024, 1792)
    assert b64.data[0].revised_prompt


def test_dall_e_2_sizes_and_n(oai: openai.OpenAI, util: SimpleNamespace) -> None:
    resp = oai.images.generate(model="dall-e-2", prompt="a kite", size="256x256", n=3)
    assert resp.data is not None and len(resp.data) == 3
    assert len({item.url for item in resp.data}) == 3
    assert all(item.revised_prompt is None for item in resp.data)
    for item in resp.data:
        assert item.url
        with urllib.request.urlopen(item.url) as fetched:
            assert util.decode_bytes(fetched.read()).size == (256, 256)
    default = oai.images.generate(model="dall-e-2", prompt="a kite", response_format="b64_json")
    assert default.data is not None
    assert util.decode_b64(default.data[0].b64_json).size == (1024, 1024)


def test_generic_model_any_size(oai: openai.OpenAI, util: SimpleNamespace) -> None:
    default = oai.images.generate(model="flux-schnell-local", prompt="a fern")
    assert default.data is not None and default.data[0].b64_json
    assert util.decode_b64(default.data[0].b64_json).size == (512, 512)
    sized = oai.images.generate(model="flux-schnell-local", prompt="a fern", size="640x384", n=4,
                                output_format="webp")
    assert sized.data is not None and len(sized.data) == 4
    image = util.decode_b64(sized.data[0].b64_json)
    assert image.size == (640, 384) and image.format == "WEBP"


def test_unknown_openai_model_is_404(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        oai.images.generate(model="gpt-image-99", prompt="x")
    assert err.value.code == "model_not_found"


def test_auth_errors(sim: SimulatorThread, util: SimpleNamespace) -> None:
    bad = openai.OpenAI(base_url=sim.base_url + "/openai/v1", api_key="bad-key", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as err:
        bad.images.generate(model="gpt-image-1", prompt="x")
    assert err.value.code == "invalid_api_key"
    assert err.value.body["message"].startswith("Incorrect API key provided")  # type: ignore[index]
    status, _, body = util.http("POST", sim.url("/openai/v1/images/generations"), {"prompt": "x"})
    assert status == 401 and b"You didn't provide an API key" in body


def test_rate_limit_fault(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        oai.images.generate(model="gpt-image-1", prompt="a cat [sim:429]")
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.response.headers["retry-after"] == "1"


@pytest.mark.parametrize(("model", "code", "type_"), [
    ("gpt-image-1", "moderation_blocked", "image_generation_user_error"),
    ("dall-e-3", "content_policy_violation", "invalid_request_error"),
])
def test_safety_fault(oai: openai.OpenAI, model: str, code: str, type_: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.images.generate(model=model, prompt="something [sim:safety]")
    assert err.value.code == code
    assert err.value.body["type"] == type_  # type: ignore[index]


@pytest.mark.parametrize(("directive", "status"), [("[sim:500]", 500), ("[sim:503]", 503)])
def test_server_error_faults(oai: openai.OpenAI, directive: str, status: int) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        oai.images.generate(model="gpt-image-1", prompt=f"x {directive}")
    assert err.value.status_code == status
    assert err.value.body["type"] == "server_error"  # type: ignore[index]


def test_noimage_fault(oai: openai.OpenAI) -> None:
    resp = oai.images.generate(model="gpt-image-1", prompt="x [sim:noimage]")
    assert resp.data == []


def test_edit_with_image_and_mask(oai: openai.OpenAI, util: SimpleNamespace, sim: SimulatorThread) -> None:
    image = util.png_bytes(1200, 800)
    mask = util.png_bytes(1200, 800, "RGBA", (0, 0, 0, 0))
    resp = oai.images.edit(model="gpt-image-1", image=("photo.png", image, "image/png"),
                           mask=("mask.png", mask, "image/png"), prompt="add a moon")
    assert resp.data is not None
    edited = util.decode_b64(resp.data[0].b64_json)
    assert edited.size == (1536, 1024)  # auto picks the GPT size closest to the 3:2 input
    assert resp.size == "1536x1024" and resp.usage is not None
    assert resp.usage.input_tokens_details.image_tokens > 0
    logged = sim.requests("openai")[-1]
    assert logged["path"] == "/openai/v1/images/edits" and logged["json"] is None
    assert logged["form"]["prompt"] == "add a moon" and logged["form"]["model"] == "gpt-image-1"
    assert [f["name"] for f in logged["files"]] == ["image", "mask"]


def test_edit_sizes_and_errors(oai: openai.OpenAI, util: SimpleNamespace) -> None:
    image = util.png_bytes(640, 480)
    generic = oai.images.edit(model="local-inpaint", image=[("a.png", image, "image/png"),
                                                            ("b.png", util.png_bytes(64, 64), "image/png")],
                              prompt="make it snow")
    assert generic.data is not None
    assert util.decode_b64(generic.data[0].b64_json).size == (640, 480)  # keeps the first image's size
    sized = oai.images.edit(model="dall-e-2", image=("a.png", util.png_bytes(512, 512), "image/png"),
                            prompt="snow", size="256x256", response_format="b64_json")
    assert sized.data is not None
    assert util.decode_b64(sized.data[0].b64_json).size == (256, 256)
    with pytest.raises(openai.BadRequestError) as err:
        oai.images.edit(model="gpt-image-1", image=("a.png", image, "image/png"),
                        mask=("m.png", util.png_bytes(10, 10, "RGBA", (0, 0, 0, 0)), "image/png"), prompt="x")
    assert err.value.param == "mask"
    with pytest.raises(openai.BadRequestError) as err:
        oai.images.edit(model="gpt-image-1", image=("a.png", b"not an image", "image/png"), prompt="x")
    assert err.value.code == "invalid_image_file"
