"""The timeline of an asynchronous job (a fal queue request, a Replicate prediction, an
OpenAI video, a Veo operation).

No background tasks: a job is a start timestamp plus a duration, and its phase is
computed from the clock whenever a client looks. The first ``QUEUE_SHARE`` of the
duration it waits in the queue, then it runs; its images are rendered lazily the
first time anyone needs them (under a per-job lock, so concurrent polls render once).
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from . import faults
from .state import SimState

QUEUE_SHARE = 0.25  # share of the job time spent waiting in the queue
QUEUED_AHEAD = 3  # queue position right after submit; it counts down to 0 while queued
MAX_JOB_MS = 10 * 60 * 1000.0

Phase = Literal["queued", "running", "done", "cancelled"]


@dataclass
class Job:
    """One submitted request and everything needed to answer for it later."""

    id: str
    protocol: str
    model: str
    prompt: str
    params: dict[str, Any]
    job_ms: float
    fault: str | None = None
    created: float = field(default_factory=time.time)
    cancelled_at: float | None = None
    outputs: Any = None  # protocol-specific rendered result, set once
    render_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def started_at(self) -> float:
        return self.created + self.job_ms * QUEUE_SHARE / 1000.0

    @property
    def completed_at(self) -> float:
        return self.created + self.job_ms / 1000.0

    def phase(self, now: float | None = None) -> Phase:
        """Where the job is at ``now``: a cancel only counts if it came before completion."""
        now = time.time() if now is None else now
        if self.cancelled_at is not None and self.cancelled_at < self.completed_at:
            return "cancelled" if now >= self.cancelled_at else self._timeline(now)
        return self._timeline(now)

    def _timeline(self, now: float) -> Phase:
        if now >= self.completed_at:
            return "done"
        return "running" if now >= self.started_at else "queued"

    def queue_position(self, now: float | None = None) -> int:
        """Requests "ahead": counts down from ``QUEUED_AHEAD`` to 0 while queued."""
        now = time.time() if now is None else now
        left = max(0.0, self.started_at - now)
        span = max(1e-9, self.started_at - self.created)
        return min(QUEUED_AHEAD, int(QUEUED_AHEAD * left / span + 0.999))

    def remaining_s(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        return max(0.0, self.completed_at - now)

    def cancel(self, now: float | None = None) -> bool:
        """Cancel unless already finished; True if the job will end cancelled."""
        now = time.time() if now is None else now
        if self.phase(now) in ("done", "cancelled"):
            return self.phase(now) == "cancelled"
        self.cancelled_at = now
        return True


def job_duration_ms(state: SimState, prompt: str, video: bool = False) -> float:
    """``[sim:job=MS]`` if the prompt says so, else the configured (image or video) job time."""
    asked = faults.job_ms_directive(prompt)
    configured = state.video_job_ms if video else state.job_ms
    return min(MAX_JOB_MS, asked if asked is not None else configured)


def new_id(length: int = 26) -> str:
    """A lowercase alphanumeric id (Replicate's shape; fal uses UUIDs)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


async def wait_until_done(job: Job, max_wait_s: float) -> None:
    """Sleep until the job finishes (or is cancelled), at most ``max_wait_s``."""
    deadline = time.time() + max(0.0, max_wait_s)
    while job.phase() in ("queued", "running"):
        left = min(job.remaining_s(), deadline - time.time())
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.05))
