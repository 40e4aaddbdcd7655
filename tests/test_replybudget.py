"""The held-reply budget (engine/replybudget.py): provider replies read but not yet delivered are bounded
gateway-wide, waiters go in arrival order, and a request already holding part never waits (no deadlock
between fan-out batches)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediagate import imaging, replybudget
from mediagate.config import Settings
from mediagate.replybudget import Holder, ReplyBudget
from tests.servers import GatewayThread

pytestmark = pytest.mark.filterwarnings("error")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_at_the_limit_goes_at_once_and_limit_plus_one_waits() -> None:
    async def go() -> None:
        b = ReplyBudget(100)
        a, c = Holder(b), Holder(b)
        await a.take(60)
        await c.take(40)                      # 60 + 40 = the limit: no wait
        assert b.used == 100
        late = Holder(b)
        waiting = asyncio.ensure_future(late.take(1))   # limit + 1
        await asyncio.sleep(0.01)
        assert not waiting.done() and late.held == 0
        c.release()
        await asyncio.wait_for(waiting, 1)
        assert late.held == 1 and b.used == 61
        a.release(), late.release()
        assert b.used == 0 and not b.waiting
    run(go())


def test_one_reply_bigger_than_the_budget_is_read_when_nothing_else_is_held() -> None:
    async def go() -> None:
        b = ReplyBudget(10)
        big = Holder(b)
        await big.take(1000)
        assert b.used == 1000
        other = Holder(b)
        waiting = asyncio.ensure_future(other.take(1))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        big.release()
        await asyncio.wait_for(waiting, 1)
    run(go())


def test_a_request_holding_part_never_waits_for_more() -> None:
    async def go() -> None:
        b = ReplyBudget(100)
        first = Holder(b)
        await first.take(100)
        stranger = Holder(b)
        queued = asyncio.ensure_future(stranger.take(50))
        await asyncio.sleep(0.01)
        await asyncio.wait_for(first.take(500), 0.1)    # its second batch: over the budget, not waiting
        assert first.held == 600 and not queued.done()
        first.release()
        await asyncio.wait_for(queued, 1)
    run(go())


def test_batches_of_one_waiting_request_are_granted_together() -> None:
    async def go() -> None:
        b = ReplyBudget(100)
        blocker = Holder(b)
        await blocker.take(100)
        req, other = Holder(b), Holder(b)
        one = asyncio.ensure_future(req.take(80))
        mid = asyncio.ensure_future(other.take(80))
        two = asyncio.ensure_future(req.take(80))       # arrived after `other`, goes with its own request
        await asyncio.sleep(0.01)
        blocker.release()
        await asyncio.wait_for(asyncio.gather(one, two), 1)
        assert req.held == 160 and not mid.done()
        req.release()
        await asyncio.wait_for(mid, 1)
    run(go())


def test_waiters_go_in_arrival_order_and_a_cancelled_one_passes_its_turn() -> None:
    async def go() -> None:
        b = ReplyBudget(10)
        blocker = Holder(b)
        await blocker.take(10)
        order: list[str] = []
        holders = {name: Holder(b) for name in "abc"}

        async def take(name: str) -> None:
            await holders[name].take(10)
            order.append(name)
        tasks = {name: asyncio.ensure_future(take(name)) for name in "abc"}
        await asyncio.sleep(0.01)
        tasks["a"].cancel()
        await asyncio.sleep(0.01)
        blocker.release()
        await asyncio.wait_for(tasks["b"], 1)
        assert order == ["b"] and not tasks["c"].done()
        holders["b"].release()
        await asyncio.wait_for(tasks["c"], 1)
        assert order == ["b", "c"] and b.used == 10
    run(go())


def test_outside_a_request_nothing_is_counted() -> None:
    async def go() -> None:
        await replybudget.take(10 ** 12)    # no holder: a no-op (video polling, sweepers)
        b = ReplyBudget(10)
        async with replybudget.holding(b) as h:
            await replybudget.take(7)
            replybudget.grow(5)
            assert h is not None and h.held == 12 == b.used
        assert b.used == 0
    run(go())


def test_setting_is_read_and_checked() -> None:
    assert Settings.from_env({"MEDIAGATE_MAX_HELD_REPLY_BYTES": "1"}).max_held_reply_bytes == 1
    assert Settings.from_env({}).max_held_reply_bytes == replybudget.DEFAULT_MAX_HELD_REPLY_BYTES
    for bad in ("0", "-5"):
        with pytest.raises(ValueError, match="MEDIAGATE_MAX_HELD_REPLY_BYTES"):
            Settings.from_env({"MEDIAGATE_MAX_HELD_REPLY_BYTES": bad})


def test_fanned_out_big_replies_under_a_one_byte_budget_all_finish(sim: Any, tmp_path: Path) -> None:
    """Every 3 MB reply needs the whole budget: requests go one at a time, each one's four batches
    together (a request holding part never waits), and none is stuck or refused."""
    with GatewayThread(sim.base_url, tmp_path, max_held_reply_bytes=1) as gw:
        async def go() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as c:
                body = {"model": "gemini-3-pro-image", "prompt": "held [sim:noise]", "n": 4, "response_format": "b64_json"}
                return await asyncio.gather(*(c.post(gw.base_url + "/v1/images/generations", json=body) for _ in range(3)))
        replies = asyncio.run(asyncio.wait_for(go(), 90))
        assert [r.status_code for r in replies] == [200] * 3, [r.text[:200] for r in replies]
        for r in replies:
            items = r.json()["data"]
            assert len(items) == 4
            assert all(len(base64.b64decode(i["b64_json"])) > 1024 * 1024 for i in items)
            assert imaging.identify(base64.b64decode(items[0]["b64_json"])).format == "png"
        assert gw.app.state.runtime.reply_budget.used == 0
