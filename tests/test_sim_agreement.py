"""The model files and the simulators were written from the sources independently; they must agree."""

from __future__ import annotations

import pytest

from mediagate import catalog
from mediagate.sandbox.gemini_sizes import TIER_ALIASES, table_for

CATALOG = catalog.load()
GEMINI = [m for m in CATALOG.models.values() for r in m.routes if r.provider.id == "gemini" and m.kind == "image"]


@pytest.mark.parametrize("model", GEMINI, ids=lambda m: m.id)
def test_gemini_dimension_tables_agree(model: catalog.Model) -> None:
    route = next(r for r in model.routes if r.provider.id == "gemini")
    sim = table_for(route.upstream_model)
    assert sim is not None
    ours = model.spec["shape"]["dimensions"]
    for ratio, row in ours.items():
        for tier, size in row.items():
            sim_tier = TIER_ALIASES.get(tier, tier)
            assert sim[sim_tier][ratio] == tuple(int(x) for x in size.split("x")), (model.id, ratio, tier)
