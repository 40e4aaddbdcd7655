"""Video jobs and webhook deliveries that outlive a process: the JobStore interface and its embedded
SQLite implementation.

Any number of processes may share one store (`serve --workers N` on the SQLite file, or instances on
Redis, see mediagate.jobstore_redis). Two rules keep them from stepping on each other:
- a job is run by the one process holding its **lease** (owner, expiry), renewed while it runs; a lease
  that is not renewed expires and any process may claim the job;
- a webhook delivery is **claimed** (its next try moved past the claim's end) before it is sent.

SQLite: one file in WAL mode, one connection per process guarded by a lock, every call in a worker
thread so the event loop never waits on the disk; read-modify-write steps run in `BEGIN IMMEDIATE`
transactions so they are atomic across processes too.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from mediagate.errors import GatewayError

BUSY_TIMEOUT_MS = 10_000          # how long a writer waits for another process's transaction
FINISHED = ("completed", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    deleted INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (done, next_at);
"""
# columns added after the first release: a store written before them gets them at open
_ADDED_COLUMNS = (("lease_owner", "TEXT"), ("lease_until", "REAL NOT NULL DEFAULT 0"),
                  ("team", "TEXT NOT NULL DEFAULT 'default'"))


def open_sqlite(path: Path) -> sqlite3.Connection:
    """One embedded store's connection: autocommit (transactions are explicit), WAL so readers never wait for a
    writer, and a busy timeout so `serve --workers` processes queue for the write lock instead of failing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode=WAL")
    return db


class StoreUnavailable(GatewayError):
    """The shared store cannot be reached: 503 for requests that need it, retried by background loops."""

    def __init__(self, what: str = "The gateway's job store", retry_after_s: int = 2) -> None:
        super().__init__(503, f"{what} is unavailable right now; retry shortly.", "server_error",
                         "service_unavailable", None, {"Retry-After": str(retry_after_s)})


class LeaseLost(Exception):
    """This process no longer holds the job's lease: another one runs it now, so this one must stop."""


class JobStore(Protocol):
    async def create(self, job: dict[str, Any]) -> dict[str, Any]: ...
    async def get(self, job_id: str) -> dict[str, Any] | None: ...
    async def by_idempotency_key(self, key: str) -> dict[str, Any] | None: ...
    async def update(self, job_id: str, owner: str | None = None, **fields: Any) -> dict[str, Any] | None: ...
    async def mutate(self, job_id: str, fn: Callable[[dict[str, Any]], dict[str, Any]],
                     owner: str | None = None) -> dict[str, Any] | None: ...
    async def page(self, after: str | None, limit: int, descending: bool,
                   team: str | None = None) -> tuple[list[dict[str, Any]], bool]: ...
    async def claimable(self, now: float, limit: int) -> list[str]: ...
    async def claim(self, job_id: str, owner: str, ttl_s: float) -> bool: ...
    async def renew(self, job_id: str, owner: str, ttl_s: float) -> bool: ...
    async def release(self, job_id: str, owner: str) -> None: ...
    async def delete(self, job_id: str) -> bool: ...
    async def add_delivery(self, delivery: dict[str, Any]) -> None: ...
    async def claim_deliveries(self, now: float, lease_s: float, limit: int) -> list[dict[str, Any]]: ...
    async def update_delivery(self, delivery_id: str, next_at: float, attempts: int, done: bool, doc: dict[str, Any]) -> None: ...
    async def ping(self) -> None: ...
    async def counts(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...


class SqliteJobStore:
    def __init__(self, path: Path) -> None:
        self._db = open_sqlite(path)
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._tx():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
            for name, kind in _ADDED_COLUMNS:
                if name not in have:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_team_created ON jobs (team, created_at, id)")
        self._lock = threading.Lock()

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> "SqliteJobStore._Tx":
        return SqliteJobStore._Tx(self._db)

    async def close(self) -> None:
        with self._lock:
            self._db.close()

    async def ping(self) -> None:
        await self._q("SELECT 1")

    async def counts(self) -> dict[str, Any]:
        """Unfinished jobs by state and the oldest one's creation time (epoch s), for the metrics scrape:
        one grouped query over the status index."""
        rows = await self._q("SELECT status, COUNT(*), MIN(created_at) FROM jobs WHERE status NOT IN (?, ?, ?) "
                             "AND deleted = 0 GROUP BY status", *FINISHED)
        firsts = [r[2] for r in rows if r[2] is not None]
        return {"states": {r[0]: r[1] for r in rows}, "oldest_created_at": min(firsts) / 1e9 if firsts else None}

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    async def _q(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._run, sql, args)

    async def create(self, job: dict[str, Any]) -> dict[str, Any]:
        """Insert, or return the job already holding this idempotency key (a race-free check)."""
        try:
            # ordered by creation to the nanosecond: a page never shuffles jobs made within one second
            await self._q("INSERT INTO jobs (id, created_at, status, idempotency_key, team, doc) VALUES (?, ?, ?, ?, ?, ?)",
                          job["id"], time.time_ns(), job["status"], job.get("idempotency_key"), job.get("team") or "default",
                          json.dumps(job))
        except sqlite3.IntegrityError:
            existing = await self.by_idempotency_key(job["idempotency_key"])
            if existing is None:
                raise
            return existing
        return job

    async def get(self, job_id: str) -> dict[str, Any] | None:
        rows = await self._q("SELECT doc FROM jobs WHERE id = ? AND deleted = 0", job_id)
        return json.loads(rows[0][0]) if rows else None

    async def by_idempotency_key(self, key: str) -> dict[str, Any] | None:
        rows = await self._q("SELECT doc FROM jobs WHERE idempotency_key = ? AND deleted = 0", key)
        return json.loads(rows[0][0]) if rows else None

    async def update(self, job_id: str, owner: str | None = None, **fields: Any) -> dict[str, Any] | None:
        return await self.mutate(job_id, lambda doc: {**doc, **fields}, owner)

    async def mutate(self, job_id: str, fn: Callable[[dict[str, Any]], dict[str, Any]],
                     owner: str | None = None) -> dict[str, Any] | None:
        """Read, change with `fn` and write one job atomically (across threads and processes). With `owner`,
        only while that owner holds the job's lease: LeaseLost otherwise, and nothing is written."""
        def apply() -> dict[str, Any] | None:
            with self._lock, self._tx() as db:
                rows = db.execute("SELECT doc, lease_owner, lease_until FROM jobs WHERE id = ? AND deleted = 0",
                                  (job_id,)).fetchall()
                if not rows:
                    return None
                if owner is not None and (rows[0][1] != owner or rows[0][2] < time.time()):
                    raise LeaseLost(job_id)
                doc = fn(json.loads(rows[0][0]))
                db.execute("UPDATE jobs SET status = ?, doc = ? WHERE id = ?", (doc["status"], json.dumps(doc), job_id))
                return doc
        return await asyncio.to_thread(apply)

    async def page(self, after: str | None, limit: int, descending: bool,
                   team: str | None = None) -> tuple[list[dict[str, Any]], bool]:
        """One page of jobs in creation order; `team`: that team's only (None: every team's)."""
        order = "DESC" if descending else "ASC"
        cmp = "<" if descending else ">"
        mine, args = ("team = ? AND ", (team,)) if team is not None else ("", ())
        if after:
            anchor = await self._q(f"SELECT created_at, id FROM jobs WHERE {mine}id = ?", *args, after)
            if not anchor:
                return [], False
            rows = await self._q(f"SELECT doc FROM jobs WHERE {mine}deleted = 0 AND (created_at, id) {cmp} (?, ?) "
                                 f"ORDER BY created_at {order}, id {order} LIMIT ?", *args, anchor[0][0], anchor[0][1], limit + 1)
        else:
            rows = await self._q(f"SELECT doc FROM jobs WHERE {mine}deleted = 0 ORDER BY created_at {order}, id {order} "
                                 "LIMIT ?", *args, limit + 1)
        docs = [json.loads(r[0]) for r in rows]
        return docs[:limit], len(docs) > limit

    async def claimable(self, now: float, limit: int) -> list[str]:
        """Unfinished jobs nobody holds a live lease on, oldest first."""
        rows = await self._q("SELECT id FROM jobs WHERE status NOT IN (?, ?, ?) AND deleted = 0 AND lease_until < ? "
                             "ORDER BY created_at LIMIT ?", *FINISHED, now, limit)
        return [r[0] for r in rows]

    async def claim(self, job_id: str, owner: str, ttl_s: float) -> bool:
        now = time.time()
        rows = await self._q("UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id = ? AND deleted = 0 "
                             "AND status NOT IN (?, ?, ?) AND (lease_until < ? OR lease_owner = ?) RETURNING id",
                             owner, now + ttl_s, job_id, *FINISHED, now, owner)
        return bool(rows)

    async def renew(self, job_id: str, owner: str, ttl_s: float) -> bool:
        now = time.time()
        rows = await self._q("UPDATE jobs SET lease_until = ? WHERE id = ? AND deleted = 0 AND lease_owner = ? "
                             "AND lease_until >= ? RETURNING id", now + ttl_s, job_id, owner, now)
        return bool(rows)

    async def release(self, job_id: str, owner: str) -> None:
        await self._q("UPDATE jobs SET lease_owner = NULL, lease_until = 0 WHERE id = ? AND lease_owner = ?", job_id, owner)

    async def delete(self, job_id: str) -> bool:
        # the idempotency key is released with the job: the same key may start a new one
        rows = await self._q("UPDATE jobs SET deleted = 1, idempotency_key = NULL WHERE id = ? AND deleted = 0 RETURNING id", job_id)
        return bool(rows)

    async def add_delivery(self, delivery: dict[str, Any]) -> None:
        await self._q("INSERT OR IGNORE INTO deliveries (id, job_id, next_at, doc) VALUES (?, ?, ?, ?)",
                      delivery["id"], delivery["job_id"], time.time(), json.dumps(delivery))

    async def claim_deliveries(self, now: float, lease_s: float, limit: int) -> list[dict[str, Any]]:
        """Due deliveries, each moved `lease_s` into the future in the same transaction: no other process
        sends them meanwhile, and one whose sender died is due again when the claim runs out."""
        def claim() -> list[dict[str, Any]]:
            with self._lock, self._tx() as db:
                rows = db.execute("SELECT id, doc, attempts FROM deliveries WHERE done = 0 AND next_at <= ? "
                                  "ORDER BY next_at LIMIT ?", (now, limit)).fetchall()
                db.executemany("UPDATE deliveries SET next_at = ? WHERE id = ?", [(now + lease_s, r[0]) for r in rows])
            return [{**json.loads(r[1]), "attempts": r[2]} for r in rows]
        return await asyncio.to_thread(claim)

    async def update_delivery(self, delivery_id: str, next_at: float, attempts: int, done: bool, doc: dict[str, Any]) -> None:
        await self._q("UPDATE deliveries SET next_at = ?, attempts = ?, done = ?, doc = ? WHERE id = ?",
                      next_at, attempts, int(done), json.dumps(doc), delivery_id)
