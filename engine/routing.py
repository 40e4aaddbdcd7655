"""Route order: a forced provider, else priority groups (lower first) shuffled by weight inside a group,
with providers in cooldown moved to the end (still tried, last)."""

from __future__ import annotations

import random
from itertools import groupby

from engine.catalog import Model, Route
from engine.health import Health


def order(model: Model, forced_provider: str | None, rng: random.Random | None = None,
          health: Health | None = None) -> list[Route]:
    if forced_provider is not None:
        return [r for r in model.routes if r.provider.id == forced_provider]
    rng = rng or random
    out: list[Route] = []
    for _, group in groupby(sorted(model.routes, key=lambda r: r.priority), key=lambda r: r.priority):
        pool = list(group)
        while pool:
            pick = rng.choices(range(len(pool)), weights=[r.weight for r in pool])[0]
            out.append(pool.pop(pick))
    if health is not None:
        out = [r for r in out if not health.cooling(r.provider.id)] + [r for r in out if health.cooling(r.provider.id)]
    return out
