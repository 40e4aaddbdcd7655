"""The store contracts, on both backends: the embedded SQLite files and a real redis-server.

The same tests run against each, so the two implementations of each Protocol cannot drift apart.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import pytest

from mediagate import redisstate
from mediagate.config import Settings
from mediagate.jobstore import LeaseLost, StoreUnavailable
from mediagate.stores import Stores, open_stores

T = TypeVar("T")


@pytest.fixture(params=["sqlite", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    s = Settings(state_dir=tmp_path / "state", media_dir=tmp_path / "media")
    if request.param == "redis":
        s.redis_url = request.getfixturevalue("redis_url")
    return s


def run(settings: Settings, body: Callable[[Stores], Awaitable[T]]) -> T:
    async def go() -> T:
        stores = open_stores(settings)
        try:
            return await body(stores)
        finally:
            await stores.close()
    return asyncio.run(go())


def job(**extra: Any) -> dict[str, Any]:
    return {"id": "video_" + secrets.token_hex(8), "status": "queued", "model": "m", "progress": 0, **extra}


def test_create_get_update_delete(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        j = await s.jobs.create(job())
        assert (await s.jobs.get(j["id"]))["status"] == "queued"
        assert (await s.jobs.update(j["id"], status="in_progress", progress=5))["progress"] == 5
        assert await s.jobs.delete(j["id"]) is True
        assert await s.jobs.get(j["id"]) is None
        assert await s.jobs.delete(j["id"]) is False
        assert await s.jobs.update(j["id"], status="failed") is None
    run(settings, body)


def test_one_idempotency_key_makes_one_job_under_a_race(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        made = await asyncio.gather(*(s.jobs.create(job(idempotency_key="k1")) for _ in range(20)))
        assert len({m["id"] for m in made}) == 1
        assert (await s.jobs.by_idempotency_key("k1"))["id"] == made[0]["id"]
        await s.jobs.delete(made[0]["id"])  # the key is released with its job
        again = await s.jobs.create(job(idempotency_key="k1"))
        assert again["id"] != made[0]["id"]
    run(settings, body)


def test_leases_exclude_each_other_and_expire(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        j = await s.jobs.create(job())
        assert await s.jobs.claimable(time.time(), 10) == [j["id"]]
        assert await s.jobs.claim(j["id"], "A", 1.0)
        assert not await s.jobs.claim(j["id"], "B", 1.0)
        assert await s.jobs.claimable(time.time(), 10) == []
        assert await s.jobs.renew(j["id"], "A", 1.0)
        assert not await s.jobs.renew(j["id"], "B", 1.0)
        await asyncio.sleep(1.2)  # A stopped renewing: the lease runs out
        assert await s.jobs.claimable(time.time(), 10) == [j["id"]]
        assert not await s.jobs.renew(j["id"], "A", 1.0)
        assert await s.jobs.claim(j["id"], "B", 5.0)
        with pytest.raises(LeaseLost):  # A's late write is fenced off
            await s.jobs.update(j["id"], "A", status="in_progress")
        assert (await s.jobs.update(j["id"], "B", status="in_progress"))["status"] == "in_progress"
        await s.jobs.release(j["id"], "A")  # not A's to release
        assert not await s.jobs.claim(j["id"], "C", 1.0)
        await s.jobs.release(j["id"], "B")
        assert await s.jobs.claim(j["id"], "C", 1.0)
        await s.jobs.update(j["id"], "C", status="completed")
        assert await s.jobs.claimable(time.time(), 10) == []
        assert not await s.jobs.claim(j["id"], "D", 1.0)  # finished jobs are never claimed
    run(settings, body)


def test_concurrent_mutations_lose_no_update(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        j = await s.jobs.create(job(seen=[]))

        def add(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
            return lambda doc: {**doc, "seen": doc["seen"] + [i]}
        await asyncio.gather(*(s.jobs.mutate(j["id"], add(i)) for i in range(30)))
        assert sorted((await s.jobs.get(j["id"]))["seen"]) == list(range(30))
    run(settings, body)


def test_pages_are_ordered_and_complete(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        ids = [(await s.jobs.create(job()))["id"] for _ in range(7)]
        seen, after = [], None
        while True:
            page, more = await s.jobs.page(after, 3, True)
            seen += [p["id"] for p in page]
            if not more:
                break
            after = page[-1]["id"]
        assert seen == ids[::-1]
        page, more = await s.jobs.page(None, 10, False)
        assert [p["id"] for p in page] == ids and not more
    run(settings, body)


def test_a_claimed_delivery_is_sent_by_one_claimer(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        for i in range(5):
            await s.jobs.add_delivery({"id": f"evt_{i}", "job_id": "j", "url": "https://x", "event": {}})
        claims = await asyncio.gather(*(s.jobs.claim_deliveries(time.time(), 30, 50) for _ in range(4)))
        ids = [d["id"] for c in claims for d in c]
        assert sorted(ids) == [f"evt_{i}" for i in range(5)]  # each once, across all claimers
        assert all(d["attempts"] == 0 for c in claims for d in c)
        await s.jobs.update_delivery("evt_0", time.time() - 1, 1, False, {"id": "evt_0", "job_id": "j", "url": "https://x", "event": {}})
        await s.jobs.update_delivery("evt_1", time.time(), 1, True, {"id": "evt_1", "job_id": "j", "url": "https://x", "event": {}})
        again = await s.jobs.claim_deliveries(time.time(), 30, 50)
        assert [(d["id"], d["attempts"]) for d in again] == [("evt_0", 1)]
    run(settings, body)


def test_counters_are_atomic_and_windowed(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        results = await asyncio.gather(*(s.counters.hit("key-a", 1, 1.0) for _ in range(25)))
        assert sorted(v for v, _ in results) == list(range(1, 26))
        assert all(0 < reset <= 1.0 for _, reset in results)
        assert await s.counters.peek("key-a") == 25
        await asyncio.sleep(1.1)
        assert await s.counters.peek("key-a") == 0
        assert (await s.counters.hit("key-a", 3, 1.0))[0] == 3
    run(settings, body)


def _hit_many(settings: Settings, n: int, q: Any) -> None:
    async def body(s: Stores) -> list[int]:
        return [(await s.counters.hit("shared", 1, 60))[0] for _ in range(n)]
    q.put(run(settings, body))


def test_counters_are_atomic_across_processes(settings: Settings) -> None:
    """What `serve --workers N` (SQLite) and N instances (Redis) rely on for rate limits."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_hit_many, args=(settings, 40, q)) for _ in range(3)]
    for p in procs:
        p.start()
    values = sorted(v for _ in procs for v in q.get(timeout=60))
    for p in procs:
        p.join(30)
    assert values == list(range(1, 121))


def test_cooldown_on_one_instance_is_seen_by_another_within_a_second(redis_url: str) -> None:
    async def body() -> float:
        a = redisstate.SharedHealth(redisstate.connect(redis_url), failures=2, cooldown_s=30)
        b = redisstate.SharedHealth(redisstate.connect(redis_url), failures=2, cooldown_s=30)
        tasks = [asyncio.create_task(a.sync()), asyncio.create_task(b.sync())]
        try:
            a.record("acme", ok=False)
            a.record("acme", ok=False)
            assert a.cooling("acme")
            started = time.monotonic()
            while not b.cooling("acme"):
                assert time.monotonic() - started < 1.0, "not seen within 1 s"
                await asyncio.sleep(0.02)
            seen = time.monotonic() - started
            b.record("acme", ok=True)  # a success anywhere ends the cooldown everywhere
            while a.cooling("acme"):
                assert time.monotonic() - started < 3.0
                await asyncio.sleep(0.02)
            return seen
        finally:
            for t in tasks:
                t.cancel()
            await a.r.aclose()
            await b.r.aclose()
    assert asyncio.run(body()) < 1.0


def test_redis_down_is_a_503_shaped_error_not_a_crash(tmp_path: Path) -> None:
    from tests.servers import free_port
    s = Settings(state_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")

    async def body(st: Stores) -> None:
        with pytest.raises(StoreUnavailable) as err:
            await st.jobs.create(job())
        assert err.value.status == 503 and err.value.code == "service_unavailable"
        assert err.value.headers["Retry-After"].isdigit()
        with pytest.raises(StoreUnavailable):
            await st.counters.hit("k", 1, 1)
    run(s, body)
