"""The Together AI simulator, driven through the official together SDK (base_url pointed at it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import together

from mediagate.sandbox.testing import SimulatorThread

SCHNELL = "black-forest-labs/FLUX.1-schnell"


def _error_of(exc: together.APIStatusError) -> dict[str, Any]:
    """Together's error object: {"error": {...}} (the SDK keeps the whole body)."""
    body = exc.body
    assert isinstance(body, dict)
    inner = body.get("error", body)
    assert isinstance(inner, dict)
    return inner


@pytest.fixture
def tg(sim: SimulatorThread) -> Iterator[together.Together]:
    client = together.Together(api_key="tg-sandbox", base_url=sim.base_url + "/together", max_retries=0)
    yield client
    client.close()


def test_generate_base64_images_of_the_asked_size(sim: SimulatorThread, tg: together.Together,
                                                  util: SimpleNamespace) -> None:
    r = tg.images.generate(model=SCHNELL, prompt="a lighthouse", width=1344, height=768, steps=4, n=2,
                           response_format="base64", output_format="png")
    assert r.object == "list" and r.model == SCHNELL and [d.index for d in r.data] == [0, 1]
    for item in r.data:
        assert item.type == "b64_json"
        image = util.decode_b64(item.b64_json)
        assert image.size == (1344, 768) and image.format == "PNG"
    sent = sim.requests("together")[0]
    assert sent["path"] == "/together/v1/images/generations"
    assert sent["headers"]["authorization"] == "Bearer tg-sandbox"
    assert sent["json"] == {"model": SCHNELL, "prompt": "a lighthouse", "width": 1344, "height": 768, "steps": 4,
                            "n": 2, "response_format": "base64", "output_format": "png"}


def test_url_format_is_a_fetchable_jpeg(tg: together.Together, util: SimpleNamespace) -> None:
    r = tg.images.generate(model="black-forest-labs/FLUX.1-dev", prompt="a barn", width=512, height=512)
    assert r.data[0].type == "url"
    image = util.decode_bytes(httpx.get(r.data[0].url, timeout=30).content)
    assert image.size == (512, 512) and image.format == "JPEG"


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"width": 1800}, "width"), ({"height": 100 + 1}, "height"), ({"n": 5}, "n"), ({"steps": 13}, "steps"),
    ({"output_format": "webp"}, "output_format"),
])
def test_out_of_range_fields_are_400_naming_them(tg: together.Together, kwargs: dict[str, object], param: str) -> None:
    with pytest.raises(together.BadRequestError) as err:
        tg.images.generate(model=SCHNELL, prompt="x", **kwargs)  # type: ignore[arg-type]
    assert _error_of(err.value)["param"] == param


def test_unknown_model_and_bad_key(sim: SimulatorThread) -> None:
    with together.Together(api_key="tg-sandbox", base_url=sim.base_url + "/together", max_retries=0) as tg:
        with pytest.raises(together.NotFoundError):
            tg.images.generate(model="acme/none", prompt="x")
    with together.Together(api_key="bad-key", base_url=sim.base_url + "/together", max_retries=0) as bad:
        with pytest.raises(together.AuthenticationError):
            bad.images.generate(model=SCHNELL, prompt="x")


@pytest.mark.parametrize(("fault", "error", "status"), [
    ("429", together.RateLimitError, 429), ("500", together.InternalServerError, 500),
    ("503", together.InternalServerError, 503), ("safety", together.UnprocessableEntityError, 422),
])
def test_faults_in_togethers_error_shape(sim: SimulatorThread, tg: together.Together, fault: str,
                                         error: type[together.APIStatusError], status: int) -> None:
    sim.inject(fault, protocol="together")
    with pytest.raises(error) as err:
        tg.images.generate(model=SCHNELL, prompt="x")
    assert err.value.status_code == status and _error_of(err.value)["message"]


def test_noimage_and_malformed(sim: SimulatorThread, tg: together.Together) -> None:
    assert tg.images.generate(model=SCHNELL, prompt="x [sim:noimage]").data == []
    sim.inject("malformed", protocol="together")
    with pytest.raises(json.JSONDecodeError):  # the SDK surfaces the cut body as it is
        tg.images.generate(model=SCHNELL, prompt="x")


def test_kontext_takes_an_input_image_others_refuse_it(tg: together.Together, util: SimpleNamespace) -> None:
    data_url = "data:image/png;base64," + __import__("base64").b64encode(util.png_bytes(64, 64)).decode()
    r = tg.images.generate(model="black-forest-labs/FLUX.1-kontext-pro", prompt="make it night", image_url=data_url,
                           width=1024, height=1024, response_format="base64")
    assert util.decode_b64(r.data[0].b64_json).size == (1024, 1024)  # type: ignore[union-attr]
    with pytest.raises(together.BadRequestError) as err:
        tg.images.generate(model=SCHNELL, prompt="x", image_url=data_url)
    assert _error_of(err.value)["param"] == "image_url"
    with pytest.raises(together.BadRequestError):
        tg.images.generate(model="black-forest-labs/FLUX.1-kontext-pro", prompt="x", image_url="data:image/png;base64,AAAA")
