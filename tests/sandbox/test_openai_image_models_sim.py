"""The OpenAI Images simulator for the models added in issue 12 (gpt-image-2.5 Flare / Sunburst), through the openai SDK."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from PIL import Image

from mediagate.sandbox.testing import SimulatorThread


@pytest.mark.parametrize("model", ["gpt-image-2.5-flare", "gpt-image-2.5-sunburst"])
def test_the_new_quality_tiers_and_free_sizes(sim: SimulatorThread, model: str) -> None:
    c = openai.OpenAI(base_url=sim.url("/openai/v1"), api_key="sk-test", max_retries=0, timeout=60)
    res = c.images.generate(model=model, prompt="a product shot", size="2048x1152", quality="max")  # type: ignore[arg-type]
    im = Image.open(io.BytesIO(base64.b64decode((res.data or [])[0].b64_json or "")))
    assert im.size == (2048, 1152) and res.quality == "max"
    with pytest.raises(openai.BadRequestError):
        c.images.generate(model=model, prompt="x", size="4000x1000")            # past 3:1
    with pytest.raises(openai.BadRequestError):
        c.images.generate(model=model, prompt="x", quality="ultra")  # type: ignore[arg-type]
