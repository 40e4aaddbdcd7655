"""The HistoryStore Protocol (mediagate.history) on Redis, shared by every instance.

Layout (prefix `mg:`): `req:{id}` a record (JSON, expiring after the retention), `reqs:all` and
`reqs:team:{team}` sorted sets by time (trimmed by the sweeper), `reqs:teams` the teams seen, and
`usage:{day}` one hash per UTC day whose fields are `[team, key, model, provider, metric]` (JSON) with
integer values, added with HINCRBY (atomic across instances) and expiring after USAGE_KEEP_DAYS.
A record's changes (a video's finish, payloads deleted) are WATCH/MULTI transactions.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Callable

import redis.asyncio as aioredis
import redis.exceptions

from mediagate.history import DAY_S, USAGE_KEEP_DAYS, usage_delta
from mediagate.jobstore import StoreUnavailable
from mediagate.redisstate import MUTATE_RETRIES, P, _available

SCAN_CHUNK = 200          # records read per round trip while filtering a page
SCAN_MAX = 5000           # records looked at for one page; past this the page is short and its cursor goes on
MAX_USAGE_DAYS = 400      # days read for one usage answer (one hash each)


def _team_set(team: str) -> str:
    return f"{P}reqs:team:{team}"


class RedisHistory:
    def __init__(self, client: aioredis.Redis, retention_s: float) -> None:
        self.r = client
        self.retention_ms = int(retention_s * 1000)

    def _usage(self, pipe: Any, delta: dict[str, Any]) -> None:
        key = f"{P}usage:{delta['day']}"
        for metric, value in delta["values"].items():
            if value:
                field = json.dumps([delta["team"], delta["key"], delta["model"], delta["provider"], metric])
                pipe.hincrby(key, field, value)
        pipe.expire(key, USAGE_KEEP_DAYS * DAY_S)

    @_available
    async def add(self, records: list[dict[str, Any]]) -> None:
        async with self.r.pipeline(transaction=True) as pipe:
            for rec in records:
                pipe.set(f"{P}req:{rec['id']}", json.dumps(rec), px=self.retention_ms)
                pipe.zadd(f"{P}reqs:all", {rec["id"]: rec["created_at"]})
                pipe.zadd(_team_set(rec["team"]), {rec["id"]: rec["created_at"]})
                pipe.sadd(f"{P}reqs:teams", rec["team"])
                self._usage(pipe, usage_delta(rec))
            await pipe.execute()

    async def _change(self, record_id: str, team: str | None, fn: Callable[[dict[str, Any]], dict[str, Any]],
                      then: Callable[[Any, dict[str, Any]], None] = lambda pipe, doc: None) -> bool:
        key = f"{P}req:{record_id}"
        for _ in range(MUTATE_RETRIES):
            async with self.r.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return False
                    doc = json.loads(raw)
                    if team is not None and doc.get("team") != team:
                        return False
                    doc = fn(doc)
                    pipe.multi()
                    pipe.set(key, json.dumps(doc), keepttl=True)
                    then(pipe, doc)
                    await pipe.execute()
                    return True
                except redis.exceptions.WatchError:
                    continue
        raise StoreUnavailable("The gateway's shared store (Redis, under contention)")

    @_available
    async def finish(self, record_id: str, fields: dict[str, Any], delta: dict[str, Any]) -> bool:
        def usage(pipe: Any, doc: dict[str, Any]) -> None:
            self._usage(pipe, {**delta, "provider": doc.get("provider") or delta["provider"]})
        return await self._change(record_id, None, lambda doc: {**doc, **fields}, usage)

    @_available
    async def get(self, record_id: str, team: str | None) -> dict[str, Any] | None:
        raw = await self.r.get(f"{P}req:{record_id}")
        doc = json.loads(raw) if raw else None
        return doc if doc is not None and (team is None or doc.get("team") == team) else None

    @_available
    async def page(self, team: str | None, key: str | None, status: str | None, start: float, end: float,
                   after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        zkey = _team_set(team) if team is not None else f"{P}reqs:all"
        high: Any = f"({end}"
        skip_to = None
        if after:
            score = await self.r.zscore(zkey, after)
            if score is None:
                return [], None
            high, skip_to = score, after   # ties with the anchor come before it in this order: skipped below
        found: list[dict[str, Any]] = []
        scanned, offset, last = 0, 0, None
        while scanned < SCAN_MAX:
            ids = await self.r.zrevrangebyscore(zkey, high, start, start=offset, num=SCAN_CHUNK)
            offset += len(ids)
            ended = len(ids) < SCAN_CHUNK
            if skip_to is not None:
                if skip_to not in ids:
                    if ended:
                        return [], None
                    continue
                ids, skip_to = ids[ids.index(skip_to) + 1:], None
            raws = await self.r.mget([f"{P}req:{i}" for i in ids]) if ids else []
            for record_id, raw in zip(ids, raws):
                scanned, last = scanned + 1, record_id
                doc = json.loads(raw) if raw else None
                if doc is None or (key is not None and doc.get("key") != key) or (status is not None and doc.get("status") != status):
                    continue
                found.append(doc)
                if len(found) > limit:
                    return found[:limit], found[limit - 1]["id"]
            if ended:
                return found, None
        return found, last   # looked at SCAN_MAX records: a short page, and the cursor goes on from there

    @_available
    async def drop_payloads(self, record_id: str, team: str | None) -> bool:
        return await self._change(record_id, team, lambda doc: {**doc, "payloads": None})

    @_available
    async def usage(self, team: str | None, key: str | None, first_day: str, last_day: str) -> list[dict[str, Any]]:
        first = datetime.date.fromisoformat(first_day)
        days = [d for d in ((first + datetime.timedelta(days=i)).isoformat() for i in range(MAX_USAGE_DAYS)) if d <= last_day]
        async with self.r.pipeline(transaction=False) as pipe:
            for d in days:
                pipe.hgetall(f"{P}usage:{d}")
            hashes = await pipe.execute()
        rows = []
        for d, fields in zip(days, hashes):
            for field, value in fields.items():
                t, k, model, provider, metric = json.loads(field)
                if (team is None or t == team) and (key is None or k == key):
                    rows.append({"day": d, "team": t, "key": k, "model": model, "provider": provider,
                                 "metric": metric, "value": int(value)})
        return rows

    @_available
    async def sweep(self, records_before: float, usage_before_day: str) -> None:
        teams = await self.r.smembers(f"{P}reqs:teams")
        async with self.r.pipeline(transaction=False) as pipe:
            for zkey in (f"{P}reqs:all", *(_team_set(t) for t in teams)):
                pipe.zremrangebyscore(zkey, "-inf", f"({records_before}")
            await pipe.execute()

    async def close(self) -> None:
        pass  # the client is the job store's and is closed with it
