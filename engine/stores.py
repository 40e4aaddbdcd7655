"""The state stores, chosen once at start-up from the settings: embedded (SQLite files in the state
directory, in-process health) or shared (Redis at MEDIAGATE_REDIS_URL). Nothing outside the store modules
knows which backend runs (docs/SCALING.md, "What state lives where")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from mediagate.config import Settings
from mediagate.counters import Counters, SqliteCounters
from mediagate.health import Health
from mediagate.history import DAY_S, HistoryStore
from mediagate.history_sqlite import SqliteHistory
from mediagate.jobstore import JobStore, SqliteJobStore
from mediagate.keyfile import stored_secret
from mediagate.keys import KeyRing, SqliteKeyStore


@dataclass
class Stores:
    backend: str                 # "sqlite" or "redis", for /readyz and the start-up line
    jobs: JobStore
    counters: Counters
    health: Health
    keys: KeyRing
    history: HistoryStore
    closers: tuple[Any, ...] = ()

    async def close(self) -> None:
        for c in self.closers:
            await c.close()


def open_stores(settings: Settings) -> Stores:
    if settings.redis_url:
        from mediagate import redisstate
        client = redisstate.connect(settings.redis_url)
        jobs = redisstate.RedisJobStore(client)
        key_store = redisstate.RedisKeyStore(client)
        keys = KeyRing(key_store, _pepper(settings, key_store.pepper))
        from mediagate.history_redis import RedisHistory
        history = RedisHistory(client, settings.request_retention_days * DAY_S)
        return Stores("redis", jobs, redisstate.RedisCounters(client), redisstate.SharedHealth(client), keys, history, (jobs,))
    jobs_db = SqliteJobStore(settings.state_dir / "jobs.sqlite3")
    counters = SqliteCounters(settings.state_dir / "counters.sqlite3")
    key_db = SqliteKeyStore(settings.state_dir / "keys.sqlite3")
    history_db = SqliteHistory(settings.state_dir / "history.sqlite3")

    async def kept() -> str:
        return stored_secret(settings.state_dir / "key_hash_secret")
    return Stores("sqlite", jobs_db, counters, Health(), KeyRing(key_db, _pepper(settings, kept)), history_db,
                  (jobs_db, counters, key_db, history_db))


def _pepper(settings: Settings, otherwise: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[str]]:
    """MEDIAGATE_KEY_HASH_SECRET when set (kept out of the store), else the store's own (made once)."""
    async def from_env() -> str:
        return settings.key_hash_secret or ""
    return from_env if settings.key_hash_secret else otherwise
