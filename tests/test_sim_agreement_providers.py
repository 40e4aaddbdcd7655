"""The model files of the providers added in issue 12 and their simulators were written from the sources
independently (the simulators from the providers' references, the models from the same plus third-party tables):
they must agree, or a golden case would test one against itself."""

from __future__ import annotations

import pytest

from mediagate import catalog
from mediagate.sandbox import recraft, xai
from mediagate.sandbox.openai_models import MODELS as OPENAI_MODELS, resolve_size

CATALOG = catalog.load([catalog.shipped_root()])


@pytest.mark.parametrize("model_id", ["grok-imagine-image", "grok-imagine-image-quality"])
def test_xai_image_sizes_agree(model_id: str) -> None:
    dims = CATALOG.models[model_id].spec["shape"]["dimensions"]
    assert set(dims) == set(xai.SIZES_1K)
    for ratio, row in dims.items():
        for tier, size in row.items():
            assert xai.image_size(ratio, tier.lower()) == tuple(int(x) for x in size.split("x")), (ratio, tier)


def test_xai_video_frames_agree() -> None:
    dims = CATALOG.models["grok-imagine-video"].spec["shape"]["dimensions"]
    assert set(dims) == set(xai.VIDEO_RATIOS)
    for ratio, row in dims.items():
        for tier, size in row.items():
            assert xai.video_size(ratio, tier) == tuple(int(x) for x in size.split("x")), (ratio, tier)
    assert CATALOG.models["grok-imagine-video"].spec["durations"]["allowed"] == list(range(1, xai.MAX_SECONDS + 1))


@pytest.mark.parametrize(("model_id", "upstream"), [("recraft-v3", "recraftv3"), ("recraft-v3-vector", "recraftv3_vector"),
                                                    ("recraft-v4", "recraftv4"), ("recraft-v4-vector", "recraftv4_vector")])
def test_recraft_sizes_and_limits_agree(model_id: str, upstream: str) -> None:
    spec = CATALOG.models[model_id].spec
    sizes, prompt_max, vector = recraft.MODELS[upstream]
    assert set(spec["shape"]["sizes"]) == set(sizes)
    assert spec["limits"]["prompt_chars"] == prompt_max and spec["limits"]["n"] == recraft.MAX_N
    assert (spec["output"]["formats"] == ["svg"]) == vector


@pytest.mark.parametrize("model_id", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.5-sunburst"])
def test_gpt_image_free_size_bounds_agree(model_id: str) -> None:
    """Every corner of the model's bounds is a size the simulator accepts, and one step past is refused."""
    b = CATALOG.models[model_id].spec["shape"]["bounds"]
    sim = OPENAI_MODELS[model_id]
    for w, h in [(3840, 2160), (2160, 3840), (1024, 640), (3840, 1280), (1280, 3840), (1024, 1024)]:
        assert b["min_width"] <= w <= b["max_width"] and w * h <= b["max_pixels"]
        assert resolve_size(sim, f"{w}x{h}") == (w, h)
    for bad in ["3856x2160", "3840x1264", "1024x632"]:
        with pytest.raises(Exception):
            resolve_size(sim, bad)
    assert set(CATALOG.models[model_id].spec["params"]["quality"]["enum"]) == set(sim.qualities)
