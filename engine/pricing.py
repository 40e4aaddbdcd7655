"""Cost from pricing components: estimated before a call (dryRun) and computed after it from what was produced.

A component is (metric, unit_price, conditions). Quantities come from the canonical request when
estimating and from the delivered outputs (measured sizes, actual count) when charging, so an emulated
`n` counts every image and a clamped size is priced at the size really made. `Charges` sums what every
attempt of one request may have cost, failed ones included (docs/RELIABILITY.md, "No double billing").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from mediagate.numbers import plain

MICROS = 1_000_000
PIXELS_PER_MEGAPIXEL = 1024 * 1024   # how image APIs bill a "megapixel" (1024x1024 is 1 MP, not 1.05)
UNPRICED = {"total_cost_micros": None, "currency": None, "components": []}   # no price known: not "free"


@dataclass(frozen=True)
class Produced:
    """What one request made (or would make)."""

    sizes: tuple[tuple[int, int], ...]   # one per image (or video)
    calls: int                           # upstream calls (batches)
    facts: Mapping[str, Any]             # values `when` conditions test
    tokens: Mapping[str, int] = field(default_factory=dict)   # "input" / "output" token counts, when known
    seconds: float = 0.0                 # media duration, for per-second prices (each output counts)


def _matches(when: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    for key, want in when.items():
        have = facts.get(key)
        if isinstance(want, dict):   # a numeric range, both ends inclusive (`pixels: {max: 1048576}`)
            if not isinstance(have, (int, float)) or have < want.get("min", -math.inf) or have > want.get("max", math.inf):
                return False
        elif isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def _quantity(metric: str, produced: Produced, rounding: str, exclude_first: float = 0,
              kind: str = "output") -> tuple[float, float]:
    if metric == "image":
        q = float(len(produced.sizes))
        return q, q
    if metric == "call":
        return float(produced.calls), float(produced.calls)
    if metric == "megapixel":
        mps = [w * h / PIXELS_PER_MEGAPIXEL for w, h in produced.sizes]
        billable = [max(0.0, (math.ceil(m - 1e-9) if rounding == "up" else m) - exclude_first) for m in mps]
        return round(sum(mps), 6), round(sum(billable), 6)
    if metric == "token":
        t = float(produced.tokens.get(kind, 0))
        return t, t
    if metric == "second":
        per_video = max(0.0, (math.ceil(produced.seconds - 1e-9) if rounding == "up" else produced.seconds) - exclude_first)
        count = max(1, len(produced.sizes))
        return produced.seconds * count, per_video * count
    return 0.0, 0.0


def price(pricing: Mapping[str, Any] | None, produced: Produced) -> dict[str, Any] | None:
    """Components and totals, or None when no component applies (the cost is unknown, not zero)."""
    if not pricing:
        return None
    components = []
    total = 0.0
    for comp in pricing["components"]:
        if not _matches(comp.get("when", {}), produced.facts):
            continue
        quantity, billable = _quantity(comp["metric"], produced, comp.get("round", "none"), comp.get("exclude_first", 0),
                                       comp.get("type", "output"))
        if billable == 0:
            continue
        cost = billable * comp["unit_price"] / comp.get("per", 1)
        total += cost
        components.append({"type": comp.get("type", "output"), "metric": comp["metric"], "quantity": plain(quantity),
                           "billable_quantity": plain(billable), "unit_price": comp["unit_price"], "total_cost": round(cost, 6)})
    if not components:
        return None
    return {"total_cost_micros": int(round(total * MICROS)), "currency": pricing.get("currency", "USD"),
            "components": components}


def facts(shape: Mapping[str, Any], params: Mapping[str, Any], thinking: str | None, output_format: str | None) -> dict[str, Any]:
    return {**{k: v for k, v in params.items() if v is not None}, "resolution": shape.get("resolution"),
            "size": shape.get("size"), "aspect_ratio": shape.get("aspect_ratio"), "thinking": thinking,
            "output_format": output_format, "pixels": _pixels(shape.get("size"))}


def _pixels(size: Any) -> int | None:
    """W x H of a `WxH` size: tiered prices (up to 1024x1024, up to 2048x2048) are ranges over it."""
    w, _, h = str(size or "").partition("x")
    return int(w) * int(h) if w.isdigit() and h.isdigit() else None


class Charges:
    """Every charge a request may have caused, one per possibly billed try (a provider deduplicating by
    idempotency key charges all tries under one key once)."""

    def __init__(self) -> None:
        self._by_group: dict[str, tuple[int, str]] = {}

    def add(self, group: str, cost: dict[str, Any] | None, replace: bool = False) -> None:
        if cost is None or cost["total_cost_micros"] is None:
            return
        entry = (int(cost["total_cost_micros"]), str(cost["currency"]))
        self._by_group[group] = entry if replace else max(self._by_group.get(group, entry), entry)

    def total(self, currency: str | None = None) -> tuple[int, str] | None:
        if not self._by_group:
            return None
        currency = currency or next(iter(self._by_group.values()))[1]
        return sum(m for m, c in self._by_group.values() if c == currency), currency

    def headers(self) -> dict[str, str]:
        """The possible cost of a failed request, for its error response (whose body keeps the error shape)."""
        total = self.total()
        if total is None:
            return {}
        return {"X-Mediagate-Cost": str(round(total[0] / MICROS, 6)), "X-Mediagate-Cost-Currency": total[1]}
