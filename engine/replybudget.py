"""Held replies: a gateway-wide budget on provider replies held between reading and delivery.

A big reply (a 4 MB base64 image) is read and parsed faster than it can be converted (a WebP encode takes
tens of ms of a worker thread), so without a bound every admitted request's reply would wait, parsed, in
memory: 200 at once were 440 MB. Here a request reserves a reply's declared size before reading it and
gives the whole reservation back once its outputs are delivered; while the budget is spent, the next big
reply waits unread in its socket (TCP pushes back on the provider), not in memory.

No deadlock between half-served requests: a request that already holds some of the budget (one batch of a
fan-out read) never waits for more, so every holder can finish; only a request holding nothing waits. A
single reply larger than the whole budget is read when nothing else is held.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from contextvars import ContextVar
from typing import AsyncIterator

DEFAULT_MAX_HELD_REPLY_BYTES = 128 * 1024 * 1024   # provider reply bytes held by all requests, read but not delivered


class ReplyBudget:
    """One per gateway process; `used` counts the bytes reserved by every holder."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_HELD_REPLY_BYTES) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.waiting: collections.deque[_Wait] = collections.deque()   # in arrival order

    def fits(self, n: int) -> bool:
        return self.used == 0 or self.used + n <= self.max_bytes

    def _wake(self) -> None:
        """Grant waiters in arrival order while they fit; a granted request's other waiting batches go with it."""
        while self.waiting:
            head = self.waiting[0]
            if head.fut.done():               # its task was cancelled while it waited
                self.waiting.popleft()
                continue
            if not self.fits(head.n):
                return
            self.waiting.popleft()
            head.grant()
            for other in [w for w in self.waiting if w.holder is head.holder]:
                self.waiting.remove(other)
                other.grant()


class _Wait:
    def __init__(self, holder: "Holder", n: int) -> None:
        self.holder, self.n = holder, n
        self.fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def grant(self) -> None:
        if not self.fut.done():
            self.holder.grow(self.n)      # reserved here, in order, so a later arrival cannot overtake it
            self.fut.set_result(None)


class Holder:
    """One request's reservation (all its fan-out batches together)."""

    def __init__(self, budget: ReplyBudget) -> None:
        self.budget, self.held = budget, 0

    async def take(self, n: int) -> None:
        """Reserve `n` bytes before a reply is read; waits only while this request holds nothing."""
        b = self.budget
        if self.held > 0 or (not b.waiting and b.fits(n)):
            self.grow(n)
            return
        wait = _Wait(self, n)
        b.waiting.append(wait)
        try:
            await wait.fut
        except BaseException:
            if wait.fut.done() and not wait.fut.cancelled():
                self.release_bytes(n)     # granted, but the task left before reading: give it back
            else:
                wait.fut.cancel()
                if wait in b.waiting:
                    b.waiting.remove(wait)
                b._wake()                 # it may have been the head that kept the others waiting
            raise

    def grow(self, n: int) -> None:
        """Count bytes without waiting: a reply that turned out bigger than declared."""
        if n > 0:
            self.budget.used += n
            self.held += n

    def release_bytes(self, n: int) -> None:
        n = min(n, self.held)
        self.budget.used -= n
        self.held -= n
        self.budget._wake()

    def release(self) -> None:
        if self.held:
            self.release_bytes(self.held)


_HOLDER: ContextVar[Holder | None] = ContextVar("mediagate_reply_holder", default=None)


@contextlib.asynccontextmanager
async def holding(budget: ReplyBudget | None) -> AsyncIterator[Holder | None]:
    """Replies read inside the block (by this task and the batches it spawns) count against `budget`
    until the block ends; outside any block (video polling, sweepers) nothing is counted."""
    if budget is None:
        yield None
        return
    holder = Holder(budget)
    token = _HOLDER.set(holder)
    try:
        yield holder
    finally:
        _HOLDER.reset(token)
        holder.release()


async def take(n: int) -> None:
    holder = _HOLDER.get()
    if holder is not None:
        await holder.take(n)


def grow(n: int) -> None:
    holder = _HOLDER.get()
    if holder is not None:
        holder.grow(n)
