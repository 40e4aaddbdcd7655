"""The state stores, chosen once at start-up from the settings: embedded (SQLite files in the state
directory, in-process health) or shared (Redis at MEDIAGATE_REDIS_URL). Nothing outside the store modules
knows which backend runs (docs/SCALING.md, "What state lives where")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mediagate.config import Settings
from mediagate.counters import Counters, SqliteCounters
from mediagate.health import Health
from mediagate.jobstore import JobStore, SqliteJobStore


@dataclass
class Stores:
    backend: str                 # "sqlite" or "redis", for /readyz and the start-up line
    jobs: JobStore
    counters: Counters
    health: Health
    closers: tuple[Any, ...] = ()

    async def close(self) -> None:
        for c in self.closers:
            await c.close()


def open_stores(settings: Settings) -> Stores:
    if settings.redis_url:
        from mediagate import redisstate
        client = redisstate.connect(settings.redis_url)
        jobs = redisstate.RedisJobStore(client)
        return Stores("redis", jobs, redisstate.RedisCounters(client), redisstate.SharedHealth(client), (jobs,))
    jobs_db = SqliteJobStore(settings.state_dir / "jobs.sqlite3")
    counters = SqliteCounters(settings.state_dir / "counters.sqlite3")
    return Stores("sqlite", jobs_db, counters, Health(), (jobs_db, counters))
