"""The Azure OpenAI images simulator, driven through the official openai SDK's AzureOpenAI client over real HTTP."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread

API_VERSION = "2025-04-01-preview"


def azure(sim: SimulatorThread, key: str = "k", version: str = API_VERSION) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=sim.url("/azure"), api_key=key, api_version=version, max_retries=0,
                              timeout=60)


def decode(b64: str | None) -> Image.Image:
    assert b64
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    im.load()
    return im


def png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (30, 60, 90)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("deployment", "size"), [("gpt-image-2", "2048x1152"), ("gpt-image-1.5", "1536x1024")])
def test_generate_on_a_deployment(sim: SimulatorThread, deployment: str, size: str) -> None:
    res = azure(sim).images.generate(model=deployment, prompt="a lighthouse", size=size, quality="low",  # type: ignore[arg-type]
                                     output_format="webp", n=2)
    assert res.data is not None and len(res.data) == 2
    im = decode(res.data[0].b64_json)
    assert f"{im.width}x{im.height}" == size and im.format == "WEBP"
    assert (res.data[0].model_extra or {})["content_filter_results"]["sexual"]["filtered"] is False
    sent = sim.requests("azure")[-1]
    # the SDK moves the model into the deployment path, sends api-key and api-version
    assert sent["path"] == f"/azure/openai/deployments/{deployment}/images/generations"
    assert sent["query"] == {"api-version": API_VERSION} and sent["headers"]["api-key"] == "k"
    assert "authorization" not in sent["headers"]


def test_edit_with_mask_on_a_deployment(sim: SimulatorThread) -> None:
    res = azure(sim).images.edit(model="gpt-image-2", image=("in.png", png(1024, 1536), "image/png"),
                                 mask=("m.png", png(1024, 1536), "image/png"), prompt="add a boat")
    assert res.data is not None
    im = decode(res.data[0].b64_json)
    assert (im.width, im.height) == (1024, 1536)
    assert sim.requests("azure")[-1]["path"].endswith("/deployments/gpt-image-2/images/edits")


def test_azure_refusals_reach_the_sdk_as_its_own_exceptions(sim: SimulatorThread) -> None:
    with pytest.raises(openai.AuthenticationError):
        azure(sim, key="bad-key").images.generate(model="gpt-image-2", prompt="x")
    with pytest.raises(openai.NotFoundError) as err:
        azure(sim).images.generate(model="my-unknown-deployment", prompt="x")
    assert err.value.code == "DeploymentNotFound"
    with pytest.raises(openai.BadRequestError) as bad:
        azure(sim, version="1999-01-01").images.generate(model="gpt-image-2", prompt="x")
    assert bad.value.code == "BadRequest"


@pytest.mark.parametrize(("fault", "exc"), [("429", openai.RateLimitError), ("500", openai.InternalServerError),
                                            ("safety", openai.BadRequestError)])
def test_fault_switches(sim: SimulatorThread, fault: str, exc: type[Exception]) -> None:
    sim.inject(fault, 1, "azure")
    with pytest.raises(exc) as err:
        azure(sim).images.generate(model="gpt-image-2", prompt="x")
    if fault == "429":
        assert err.value.response.headers["retry-after"] == "12"  # type: ignore[attr-defined]
    if fault == "safety":
        body = err.value.response.json()["error"]  # type: ignore[attr-defined]
        assert body["code"] == "content_policy_violation"
        assert body["inner_error"]["code"] == "ResponsibleAIPolicyViolation"
    assert azure(sim).images.generate(model="gpt-image-2", prompt="x").data   # one fault, then served again
