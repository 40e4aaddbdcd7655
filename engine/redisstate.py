"""Shared state on Redis (`MEDIAGATE_REDIS_URL`): the job store, provider health and counters that every
instance sees, so any instance answers any request.

Layout (prefix `mg:`): `job:{id}` the job document (JSON), `jobs:created` a sorted set for listing,
`jobs:team:{team}` the same per team (what `GET /videos` lists), `jobs:unfinished` the set the schedulers scan, `lease:{id}` the owner of a running job (expires unless
renewed), `idem:{key}` idempotency keys, `delivery:{id}` + `deliveries:due` the webhook outbox,
`health:*` provider cooldowns, `count:*` fixed-window counters. Multi-key steps are Lua scripts or
WATCH/MULTI transactions, so they are atomic across instances. Every call that cannot reach Redis
raises StoreUnavailable (503 for a request that needs it; background loops retry).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from typing import Any, Awaitable, Callable, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from mediagate.health import Health
from mediagate.jobstore import FINISHED, LeaseLost, StoreUnavailable

log = logging.getLogger("mediagate")
P = "mg:"
SOCKET_TIMEOUT_S = 2.0            # a Redis call slower than this counts as Redis being unavailable
MUTATE_RETRIES = 50               # optimistic transactions retried when another instance wrote first
HEALTH_SYNC_INTERVAL_S = 0.5      # a cooldown recorded on one instance is seen by all within this (+ one call)
_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError,
         OSError)
T = TypeVar("T")


def connect(url: str) -> aioredis.Redis:
    return aioredis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
                             health_check_interval=5, decode_responses=True)


def _available(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except _DOWN as exc:
            raise StoreUnavailable("The gateway's shared store (Redis)") from exc
    return call


_CREATE = """
if ARGV[4] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing and redis.call('EXISTS', ARGV[5] .. existing) == 1 then return existing end
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
return ARGV[1]
"""
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 0 then return 0 end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_CLAIM_DELIVERIES = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""
_HIT = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {v, redis.call('PTTL', KEYS[1])}
"""


def _team_jobs(team: str) -> str:
    return f"{P}jobs:team:{team}"


class RedisJobStore:
    """The JobStore Protocol (mediagate.jobstore) over Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._claim_deliveries = client.register_script(_CLAIM_DELIVERIES)

    async def close(self) -> None:
        await self.r.aclose()

    @_available
    async def ping(self) -> None:
        await self.r.ping()

    @_available
    async def counts(self) -> dict[str, Any]:
        """Unfinished jobs by state and the oldest one's creation time (epoch s), for the metrics scrape: reads
        only the unfinished set (what is running or waiting), never the whole history."""
        ids = sorted(await self.r.smembers(f"{P}jobs:unfinished"))
        if not ids:
            return {"states": {}, "oldest_created_at": None}
        raws = await self.r.mget([f"{P}job:{i}" for i in ids])
        scores = [s for s in await self.r.zmscore(f"{P}jobs:created", ids) if s is not None]
        states: dict[str, int] = {}
        for raw in raws:
            if raw:
                status = json.loads(raw).get("status", "queued")
                states[status] = states.get(status, 0) + 1
        return {"states": states, "oldest_created_at": min(scores) / 1e6 if scores else None}

    @_available
    async def create(self, job: dict[str, Any]) -> dict[str, Any]:
        key = job.get("idempotency_key") or ""
        winner = await self._create(keys=[f"{P}idem:{key}", f"{P}job:{job['id']}", f"{P}jobs:created", f"{P}jobs:unfinished",
                                          _team_jobs(job.get("team") or "default")],
                                    args=[job["id"], json.dumps(job), time.time_ns() // 1000, key, f"{P}job:"])
        if winner != job["id"]:
            existing = await self.get(winner)
            if existing is not None:
                return existing
        return job

    @_available
    async def get(self, job_id: str) -> dict[str, Any] | None:
        raw = await self.r.get(f"{P}job:{job_id}")
        return json.loads(raw) if raw else None

    @_available
    async def by_idempotency_key(self, key: str) -> dict[str, Any] | None:
        job_id = await self.r.get(f"{P}idem:{key}")
        return await self.get(job_id) if job_id else None

    async def update(self, job_id: str, owner: str | None = None, **fields: Any) -> dict[str, Any] | None:
        return await self.mutate(job_id, lambda doc: {**doc, **fields}, owner)

    @_available
    async def mutate(self, job_id: str, fn: Callable[[dict[str, Any]], dict[str, Any]],
                     owner: str | None = None) -> dict[str, Any] | None:
        """Optimistic read-modify-write: WATCH the job (and its lease), write only if neither changed."""
        key, lease = f"{P}job:{job_id}", f"{P}lease:{job_id}"
        for _ in range(MUTATE_RETRIES):
            async with self.r.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key, lease)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    if owner is not None and await pipe.get(lease) != owner:
                        raise LeaseLost(job_id)
                    doc = fn(json.loads(raw))
                    pipe.multi()
                    pipe.set(key, json.dumps(doc))
                    if doc["status"] in FINISHED:
                        pipe.srem(f"{P}jobs:unfinished", job_id)
                    await pipe.execute()
                    return doc
                except redis.exceptions.WatchError:
                    continue
        raise StoreUnavailable("The gateway's shared store (Redis, under contention)")

    @_available
    async def page(self, after: str | None, limit: int, descending: bool,
                   team: str | None = None) -> tuple[list[dict[str, Any]], bool]:
        """One page of jobs in creation order; `team`: from that team's own sorted set (None: every team's)."""
        zkey = _team_jobs(team) if team is not None else f"{P}jobs:created"
        start = 0
        if after:
            rank = await (self.r.zrevrank(zkey, after) if descending else self.r.zrank(zkey, after))
            if rank is None:
                return [], False
            start = rank + 1
        ids = await self.r.zrange(zkey, start, start + limit, desc=descending)
        raws = await self.r.mget([f"{P}job:{i}" for i in ids]) if ids else []
        docs = [json.loads(r) for r in raws if r]
        return docs[:limit], len(ids) > limit

    @_available
    async def claimable(self, now: float, limit: int) -> list[str]:
        ids = sorted(await self.r.smembers(f"{P}jobs:unfinished"))
        if not ids:
            return []
        held = await self.r.mget([f"{P}lease:{i}" for i in ids])
        return [i for i, h in zip(ids, held) if h is None][:limit]

    @_available
    async def claim(self, job_id: str, owner: str, ttl_s: float) -> bool:
        return bool(await self._claim(keys=[f"{P}lease:{job_id}", f"{P}job:{job_id}", f"{P}jobs:unfinished"],
                                      args=[owner, int(ttl_s * 1000), job_id]))

    @_available
    async def renew(self, job_id: str, owner: str, ttl_s: float) -> bool:
        return bool(await self._renew(keys=[f"{P}lease:{job_id}", f"{P}job:{job_id}"], args=[owner, int(ttl_s * 1000)]))

    @_available
    async def release(self, job_id: str, owner: str) -> None:
        await self._release(keys=[f"{P}lease:{job_id}"], args=[owner])

    @_available
    async def delete(self, job_id: str) -> bool:
        doc = await self.get(job_id)
        if doc is None:
            return False
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(f"{P}job:{job_id}", f"{P}lease:{job_id}")
            pipe.zrem(f"{P}jobs:created", job_id)
            pipe.zrem(_team_jobs(doc.get("team") or "default"), job_id)
            pipe.srem(f"{P}jobs:unfinished", job_id)
            if doc.get("idempotency_key"):  # released with the job: the same key may start a new one
                pipe.delete(f"{P}idem:{doc['idempotency_key']}")
            await pipe.execute()
        return True

    @_available
    async def add_delivery(self, delivery: dict[str, Any]) -> None:
        doc = json.dumps({**delivery, "attempts": 0, "done": False})
        if await self.r.set(f"{P}delivery:{delivery['id']}", doc, nx=True):
            await self.r.zadd(f"{P}deliveries:due", {delivery["id"]: time.time()}, nx=True)

    @_available
    async def claim_deliveries(self, now: float, lease_s: float, limit: int) -> list[dict[str, Any]]:
        ids = await self._claim_deliveries(keys=[f"{P}deliveries:due"], args=[now, now + lease_s, limit])
        if not ids:
            return []
        raws = await self.r.mget([f"{P}delivery:{i}" for i in ids])
        out = []
        for raw in raws:
            if raw:
                doc = json.loads(raw)
                doc.pop("done", None)
                out.append(doc)
        return out

    @_available
    async def update_delivery(self, delivery_id: str, next_at: float, attempts: int, done: bool, doc: dict[str, Any]) -> None:
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.set(f"{P}delivery:{delivery_id}", json.dumps({**doc, "attempts": attempts, "done": done}))
            if done:
                pipe.zrem(f"{P}deliveries:due", delivery_id)
            else:
                pipe.zadd(f"{P}deliveries:due", {delivery_id: next_at})
            await pipe.execute()


class RedisCounters:
    """Fixed-window counters shared by every instance (rate limits, usage): one atomic INCRBY per hit."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self._hit = client.register_script(_HIT)

    @_available
    async def hit(self, key: str, amount: int, window_s: float) -> tuple[int, float]:
        """Add `amount` to the window's count; (new count, seconds until the window resets)."""
        value, ttl_ms = await self._hit(keys=[f"{P}count:{key}"], args=[amount, int(window_s * 1000)])
        return int(value), max(0.0, int(ttl_ms) / 1000)

    @_available
    async def peek(self, key: str) -> int:
        return int(await self.r.get(f"{P}count:{key}") or 0)


class SharedHealth(Health):
    """Provider health seen by every instance: each records locally at once (so this request's routing is
    right) and writes through to Redis; a sync loop reads everyone's cooldowns every HEALTH_SYNC_INTERVAL_S.
    With Redis down it degrades to per-instance health, never to an error."""

    def __init__(self, client: aioredis.Redis, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.r = client
        self._writes: asyncio.Queue[tuple[str, bool]] = asyncio.Queue(maxsize=10_000)
        self._down_logged = False

    def record(self, provider_id: str, ok: bool) -> None:
        super().record(provider_id, ok)
        try:
            self._writes.put_nowait((provider_id, ok))
        except asyncio.QueueFull:  # Redis unreachable for long: local health still works
            pass

    async def _write(self, provider_id: str, ok: bool) -> None:
        if ok:
            await self.r.hdel(f"{P}health:until", provider_id)
            await self.r.hdel(f"{P}health:streak", provider_id)
            return
        streak = await self.r.hincrby(f"{P}health:streak", provider_id, 1)
        if streak >= self.failures:
            await self.r.hset(f"{P}health:until", provider_id, str(time.time() + self.cooldown_s))

    async def _pull(self) -> None:
        until, streak = await asyncio.gather(self.r.hgetall(f"{P}health:until"), self.r.hgetall(f"{P}health:streak"))
        now_wall, now_mono = time.time(), time.monotonic()
        shared = {p: now_mono + float(t) - now_wall for p, t in until.items() if float(t) > now_wall}
        self._until = shared
        self._streak = {p: int(s) for p, s in streak.items()}

    async def sync(self) -> None:
        """Run for the life of the process."""
        while True:
            try:
                while not self._writes.empty():
                    await self._write(*self._writes.get_nowait())
                await self._pull()
                if self._down_logged:
                    log.warning("provider health: Redis is reachable again")
                    self._down_logged = False
            except _DOWN:
                if not self._down_logged:
                    log.warning("provider health: Redis unreachable; using this instance's own health until it returns")
                    self._down_logged = True
            await asyncio.sleep(HEALTH_SYNC_INTERVAL_S)


_KEY_CREATE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') == false then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return 1
"""
_KEY_REPLACE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local old = cjson.decode(raw)['hash']
if old ~= ARGV[2] then redis.call('DEL', ARGV[3] .. old) end
redis.call('SET', ARGV[3] .. ARGV[2], ARGV[4])
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class RedisKeyStore:
    """The KeyStore Protocol (mediagate.keys) over Redis: `key:{id}` the document, `keyname:{name}` and
    `keyhash:{hash}` its id, `keys` a sorted set by creation. Create and rotate are Lua scripts (atomic)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self._create = client.register_script(_KEY_CREATE)
        self._replace = client.register_script(_KEY_REPLACE)

    @_available
    async def create(self, doc: dict[str, Any]) -> None:
        from mediagate.keys import KeyExists
        made = await self._create(keys=[f"{P}keyname:{doc['name']}", f"{P}keyhash:{doc['hash']}", f"{P}key:{doc['id']}", f"{P}keys"],
                                  args=[doc["id"], json.dumps(doc), time.time_ns() // 1000])
        if not made:
            raise KeyExists(doc["name"])

    @_available
    async def get(self, ref: str) -> dict[str, Any] | None:
        raw = await self.r.get(f"{P}key:{ref}")
        if raw is None:
            key_id = await self.r.get(f"{P}keyname:{ref}")
            raw = await self.r.get(f"{P}key:{key_id}") if key_id else None
        return json.loads(raw) if raw else None

    @_available
    async def by_hash(self, digest: str) -> dict[str, Any] | None:
        key_id = await self.r.get(f"{P}keyhash:{digest}")
        raw = await self.r.get(f"{P}key:{key_id}") if key_id else None
        return json.loads(raw) if raw else None

    @_available
    async def all(self) -> list[dict[str, Any]]:
        ids = await self.r.zrange(f"{P}keys", 0, -1)
        raws = await self.r.mget([f"{P}key:{i}" for i in ids]) if ids else []
        return [json.loads(r) for r in raws if r]

    @_available
    async def replace(self, doc: dict[str, Any]) -> None:
        await self._replace(keys=[f"{P}key:{doc['id']}"], args=[json.dumps(doc), doc["hash"], f"{P}keyhash:", doc["id"]])

    @_available
    async def any_keys(self) -> bool:
        return bool(await self.r.zcard(f"{P}keys"))

    @_available
    async def pepper(self) -> str:
        """The key-hash pepper shared by every instance when MEDIAGATE_KEY_HASH_SECRET is not set: made once."""
        import secrets as _secrets
        await self.r.set(f"{P}keys:pepper", _secrets.token_hex(32), nx=True)
        return str(await self.r.get(f"{P}keys:pepper"))

    async def close(self) -> None:
        pass  # the client is the job store's and is closed with it
