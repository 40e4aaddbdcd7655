"""The HistoryStore contract and the job stores' team pages, on both backends (SQLite and a real
redis-server), so the two implementations cannot drift apart."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from mediagate import history, history_redis, videos
from mediagate.config import Settings
from mediagate.stores import Stores
from tests.test_stores import run, settings  # noqa: F401  (settings: the sqlite / redis store fixture)


def record(team: str, created: float, **extra: Any) -> dict[str, Any]:
    return {"id": "req_" + secrets.token_hex(8), "created_at": created, "team": team, "key": "k", "status": "succeeded",
            "model": "m", "provider": "p", "cost_micros": 1000, "cost_currency": "USD", "images": 1, **extra}


def test_pages_filter_by_team_status_key_and_time(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        now = time.time()
        mine = [record("a", now - 100 + i, status="failed" if i % 3 == 0 else "succeeded") for i in range(9)]
        mine.append(record("a", mine[4]["created_at"]))     # a tie on time with another record: kept in order
        others = [record("b", now - 50 + i) for i in range(4)]
        await s.history.add(mine + others)
        seen, cursor = [], None
        for _ in range(20):
            page, cursor = await s.history.page("a", None, None, 0.0, now + 1, cursor, 3)
            seen += [r["id"] for r in page]
            if cursor is None:
                break
        newest_first = sorted(mine, key=lambda r: (r["created_at"], r["id"]), reverse=True)
        assert seen == [r["id"] for r in newest_first]
        failed, _ = await s.history.page("a", None, "failed", 0.0, now + 1, None, 100)
        assert {r["id"] for r in failed} == {r["id"] for r in mine if r["status"] == "failed"}
        window, _ = await s.history.page("a", None, None, now - 98, now - 95, None, 100)
        assert [r["created_at"] for r in window] == [now - 96, now - 96, now - 97, now - 98]   # start in, end out
        assert (await s.history.page("a", "nobody", None, 0.0, now + 1, None, 10))[0] == []
        assert len((await s.history.page(None, None, None, 0.0, now + 1, None, 100))[0]) == 14   # the admin view
        assert await s.history.get(others[0]["id"], "a") is None                 # another team's record
        assert (await s.history.page("a", None, None, 0.0, now + 1, others[0]["id"], 10))[0] == []
        assert await s.history.drop_payloads(others[0]["id"], "a") is False
    run(settings, body)


def test_finish_and_usage(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        now = time.time()
        rec = record("a", now, status="pending", cost_micros=None, images=0, payloads={"request": {"prompt": "p"}})
        await s.history.add([rec, record("a", now), record("b", now, key="other")])
        delta = {"day": history.day_of(now), "team": "a", "key": "k", "model": "m", "provider": "p",
                 "values": {"video_ms": 4000, "cost_micros:USD": 400_000}}
        assert await s.history.finish(rec["id"], {"status": "succeeded", "cost_micros": 400_000, "video_seconds": 4.0}, delta)
        assert not await s.history.finish("req_missing", {"status": "failed"}, delta)
        got = await s.history.get(rec["id"], "a")
        assert got is not None and got["status"] == "succeeded" and got["cost_micros"] == 400_000
        assert await s.history.drop_payloads(rec["id"], "a") and (await s.history.get(rec["id"], None))["payloads"] is None
        rows = await s.history.usage("a", None, history.day_of(now - 86400), history.day_of(now))
        sums: dict[str, int] = {}
        for row in rows:
            assert row["team"] == "a"
            sums[row["metric"]] = sums.get(row["metric"], 0) + row["value"]
        assert sums == {"requests": 2, "images": 1, "video_ms": 4000, "cost_micros:USD": 401_000}
        assert {r["key"] for r in await s.history.usage(None, "other", history.day_of(now), history.day_of(now))} == {"other"}
        await s.history.sweep(now + 1, history.day_of(now - 400 * 86400))
        assert (await s.history.page("a", None, None, 0.0, now + 10, None, 10))[0] == []
        assert await s.history.usage("a", None, history.day_of(now), history.day_of(now))   # usage outlives records
    run(settings, body)


def test_job_pages_per_team(settings: Settings) -> None:
    async def body(s: Stores) -> None:
        made = {}
        for team in ("a", "b", "a", "b", "a"):
            doc = {"id": "video_" + secrets.token_hex(8), "status": "queued", "model": "m", "progress": 0, "team": team,
                   "idempotency_key": videos.idempotency_scope(team, "same") if team == "b" and "b" not in made else None}
            made.setdefault(team, []).append((await s.jobs.create(doc))["id"])
        page, more = await s.jobs.page(None, 10, True, "a")
        assert [j["id"] for j in page] == made["a"][::-1] and not more
        page, more = await s.jobs.page(made["a"][-1], 1, True, "a")
        assert [j["id"] for j in page] == [made["a"][1]] and more
        assert (await s.jobs.page(made["b"][0], 10, True, "a"))[0] == []          # another team's cursor
        assert (await s.jobs.by_idempotency_key(videos.idempotency_scope("b", "same")))["id"] == made["b"][0]
        assert await s.jobs.by_idempotency_key(videos.idempotency_scope("a", "same")) is None
        await s.jobs.delete(made["a"][0])
        assert len((await s.jobs.page(None, 10, True, "a"))[0]) == 2
    run(settings, body)


def test_redis_page_stops_after_its_scan_bound(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter that matches nothing answers a short page with a cursor instead of scanning every record."""
    monkeypatch.setattr(history_redis, "SCAN_MAX", 10)
    monkeypatch.setattr(history_redis, "SCAN_CHUNK", 4)
    s = Settings(redis_url=redis_url)

    async def body(stores: Stores) -> None:
        now = time.time()
        await stores.history.add([record("a", now - i) for i in range(30)])
        page, cursor = await stores.history.page("a", None, "failed", 0.0, now + 1, None, 5)
        assert page == [] and cursor is not None
        pages = 1
        while cursor is not None:
            page, cursor = await stores.history.page("a", None, "failed", 0.0, now + 1, cursor, 5)
            pages += 1
            assert pages < 10
        assert pages == 3
    run(s, body)
