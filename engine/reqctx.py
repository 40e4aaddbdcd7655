"""The request in progress, for the code deep inside it: its id (log lines carry it), the model and provider
it resolved to (bounded labels for metrics), and how long it waited on upstreams (gateway overhead is the rest).

A contextvar holds one mutable object per request: tasks the request spawns (concurrent batches, a streamed
body) copy the context and so share that object. Outside a request (the video scheduler, sweepers) there is
none and every function here is a no-op.
"""

from __future__ import annotations

import contextlib
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class RequestContext:
    request_id: str
    endpoint: str
    started: float = field(default_factory=time.monotonic)
    model: str | None = None          # a catalog id, never the caller's raw string
    provider: str | None = None
    key: str | None = None            # the gateway key's name (never its secret), once authenticated
    team: str | None = None
    error_code: str | None = None
    cost: tuple[float, str] | None = None    # (amount, currency) of a priced success
    details: dict[str, Any] = field(default_factory=dict)   # what the request history records (mediagate.history)
    _waited_s: float = 0.0
    _open: int = 0                    # upstream waits in flight (concurrent batches overlap: time is counted once)
    _since: float = 0.0

    def upstream_s(self) -> float:
        """Wall-clock time with at least one upstream call (or poll sleep) outstanding."""
        return self._waited_s + (time.monotonic() - self._since if self._open else 0.0)


_CURRENT: ContextVar[RequestContext | None] = ContextVar("mediagate_request", default=None)


def begin(request_id: str, endpoint: str) -> RequestContext:
    ctx = RequestContext(request_id, endpoint)
    _CURRENT.set(ctx)
    return ctx


def current() -> RequestContext | None:
    return _CURRENT.get()


def note(model: str | None = None, provider: str | None = None) -> None:
    ctx = _CURRENT.get()
    if ctx is not None:
        if model is not None:
            ctx.model = model
        if provider is not None:
            ctx.provider = provider


def note_cost(amount: float, currency: str) -> None:
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.cost = (amount, currency)


@contextlib.contextmanager
def upstream_wait() -> Iterator[None]:
    """Mark the enclosed time as spent waiting on a provider (a request, a stream, a download, a poll's sleep)."""
    ctx = _CURRENT.get()
    if ctx is None:
        yield
        return
    if ctx._open == 0:
        ctx._since = time.monotonic()
    ctx._open += 1
    try:
        yield
    finally:
        ctx._open -= 1
        if ctx._open == 0:
            ctx._waited_s += time.monotonic() - ctx._since
