"""The Hugging Face HF Inference simulator, driven through huggingface_hub's InferenceClient(base_url=...)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from mediagate.sandbox.testing import SimulatorThread


def client(sim: SimulatorThread, model: str, token: str = "hf_sandbox") -> InferenceClient:
    return InferenceClient(base_url=f"{sim.base_url}/huggingface/hf-inference/models/{model}", api_key=token)


@pytest.mark.parametrize("model", ["black-forest-labs/FLUX.1-schnell", "black-forest-labs/FLUX.1-dev",
                                   "stabilityai/stable-diffusion-3.5-large"])
def test_text_to_image_answers_the_image_itself(sim: SimulatorThread, model: str) -> None:
    image = client(sim, model).text_to_image("a canal at dusk", width=1344, height=768, num_inference_steps=4,
                                             guidance_scale=3.5, seed=7)
    assert image.size == (1344, 768) and image.format == "JPEG"
    sent = sim.requests("huggingface")[0]
    assert sent["path"] == f"/huggingface/hf-inference/models/{model}"
    assert sent["headers"]["authorization"] == "Bearer hf_sandbox"
    assert sent["json"] == {"inputs": "a canal at dusk", "parameters": {
        "width": 1344, "height": 768, "num_inference_steps": 4, "guidance_scale": 3.5, "seed": 7}}


def test_defaults_to_one_megapixel(sim: SimulatorThread) -> None:
    assert client(sim, "black-forest-labs/FLUX.1-schnell").text_to_image("x").size == (1024, 1024)


@pytest.mark.parametrize(("fault", "status"), [("429", 429), ("500", 500), ("503", 503), ("safety", 400)])
def test_faults_are_hf_error_bodies(sim: SimulatorThread, fault: str, status: int) -> None:
    sim.inject(fault, protocol="huggingface")
    with pytest.raises(HfHubHTTPError) as err:
        client(sim, "black-forest-labs/FLUX.1-schnell").text_to_image("x")
    assert err.value.response.status_code == status and "error" in err.value.response.json()


def test_bad_sizes_unknown_models_and_keys(sim: SimulatorThread, util: SimpleNamespace) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        client(sim, "black-forest-labs/FLUX.1-schnell").text_to_image("x", width=1001)
    assert err.value.response.status_code == 400
    with pytest.raises(HfHubHTTPError) as err:
        client(sim, "acme/none").text_to_image("x")
    assert err.value.response.status_code == 404
    with pytest.raises(HfHubHTTPError) as err:
        client(sim, "black-forest-labs/FLUX.1-schnell", token="bad").text_to_image("x")
    assert err.value.response.status_code == 401


def test_the_provider_routed_form_through_the_router(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """InferenceClient(provider="together") with an hf_ token builds the router URL and Together's payload itself;
    only the Hub's model -> provider lookup (a network call) is given through the SDK's own local-testing table."""
    from huggingface_hub import constants
    from huggingface_hub.hf_api import InferenceProviderMapping
    from huggingface_hub.inference._providers import _common

    model = "black-forest-labs/FLUX.1-schnell"
    monkeypatch.setattr(constants, "INFERENCE_PROXY_TEMPLATE", sim.base_url + "/huggingface/{provider}")
    monkeypatch.setitem(_common.HARDCODED_MODEL_INFERENCE_MAPPING, "together", {model: InferenceProviderMapping(
        provider="together", hf_model_id=model, providerId=model, status="live", task="text-to-image")})
    image = InferenceClient(provider="together", api_key="hf_sandbox").text_to_image(
        "a canal", model=model, width=768, height=512, num_inference_steps=4)
    assert image.size == (768, 512)
    sent = sim.requests("huggingface")[0]
    assert sent["path"] == "/huggingface/together/v1/images/generations"
    assert sent["json"] == {"prompt": "a canal", "response_format": "base64", "width": 768, "height": 512, "steps": 4,
                            "model": model}
