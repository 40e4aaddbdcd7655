"""Provider health: after repeated failures a provider cools down and is tried last, not skipped.

In process for the embedded default; a shared store can implement the same three methods when several
instances run (docs/SCALING.md, "What state lives where").
"""

from __future__ import annotations

import time

from mediagate import metrics

FAILURES_BEFORE_COOLDOWN = 3     # consecutive retryable failures that put a provider in cooldown
COOLDOWN_S = 30.0                # how long it stays there (a success ends it early)


class Health:
    def __init__(self, failures: int = FAILURES_BEFORE_COOLDOWN, cooldown_s: float = COOLDOWN_S) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._streak: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def record(self, provider_id: str, ok: bool) -> None:
        if ok:
            self._streak.pop(provider_id, None)
            self._until.pop(provider_id, None)
            return
        streak = self._streak.get(provider_id, 0) + 1
        self._streak[provider_id] = streak
        if streak >= self.failures:
            if not self.cooling(provider_id):
                metrics.COOLDOWNS.labels(provider_id).inc()
            self._until[provider_id] = time.monotonic() + self.cooldown_s

    def cooling(self, provider_id: str) -> bool:
        until = self._until.get(provider_id)
        return until is not None and until > time.monotonic()

    def snapshot(self) -> dict[str, dict[str, float | int]]:
        now = time.monotonic()
        return {p: {"consecutive_failures": self._streak.get(p, 0),
                    "cooldown_remaining_s": round(max(0.0, self._until.get(p, now) - now), 1)}
                for p in set(self._streak) | set(self._until)}
