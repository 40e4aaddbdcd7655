"""The Recraft simulator, driven through the openai SDK, the client Recraft documents for its OpenAI-like API
("every non-OpenAI parameter must go in extra_body": www.recraft.ai/docs/api-reference/agents.md)."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from PIL import Image

from mediagate import imaging
from mediagate.sandbox.testing import SimulatorThread


def recraft(sim: SimulatorThread, key: str = "rc-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.url("/recraft/v1"), api_key=key, max_retries=0, timeout=60)


def test_raster_with_style_and_substyle(sim: SimulatorThread) -> None:
    res = recraft(sim).images.generate(model="recraftv3", prompt="a lighthouse", size="1820x1024", n=2,  # type: ignore[arg-type]
                                       response_format="b64_json",
                                       extra_body={"style": "digital_illustration", "substyle": "hand_drawn"})
    assert len(res.data or []) == 2
    im = Image.open(io.BytesIO(base64.b64decode((res.data or [])[0].b64_json or "")))
    assert im.format == "PNG" and im.size == (1820, 1024)
    sent = sim.requests("recraft")[-1]["json"]
    assert (sent["style"], sent["substyle"]) == ("digital_illustration", "hand_drawn")


@pytest.mark.parametrize(("model", "style"), [("recraftv4_vector", None), ("recraftv3", "vector_illustration"),
                                              ("recraftv3_vector", "icon")])
def test_vector_output_is_an_svg_document_of_the_size(sim: SimulatorThread, model: str, style: str | None) -> None:
    extra = {"style": style} if style else {}
    res = recraft(sim).images.generate(model=model, prompt="a fox <logo> & co", size="1024x1024",  # type: ignore[arg-type]
                                       response_format="b64_json", extra_body=extra)
    doc = base64.b64decode((res.data or [])[0].b64_json or "")
    assert doc.startswith(b"<?xml") and b"<svg" in doc and b"&lt;logo&gt; &amp; co" in doc
    assert imaging.identify(doc, vector=True) == imaging.Info("svg", 1024, 1024)


def test_refusals(sim: SimulatorThread) -> None:
    with pytest.raises(openai.AuthenticationError):
        recraft(sim, "bad-token").images.generate(model="recraftv4", prompt="x")
    with pytest.raises(openai.BadRequestError) as err:
        recraft(sim).images.generate(model="recraftv4", prompt="x", extra_body={"style": "realistic_image"})
    assert err.value.body["code"] == "invalid_style"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        recraft(sim).images.generate(model="recraftv4", prompt="x", size="1820x1024")   # a V3 size
    with pytest.raises(openai.BadRequestError):
        recraft(sim).images.generate(model="recraftv3", prompt="x" * 1001)


@pytest.mark.parametrize(("fault", "exc"), [("429", openai.RateLimitError), ("500", openai.InternalServerError),
                                            ("safety", openai.BadRequestError)])
def test_fault_switches(sim: SimulatorThread, fault: str, exc: type[Exception]) -> None:
    sim.inject(fault, 1, "recraft")
    with pytest.raises(exc):
        recraft(sim).images.generate(model="recraftv4", prompt="x")
    assert recraft(sim).images.generate(model="recraftv4", prompt="x").data
