"""Video jobs and webhook deliveries that outlive a restart: the embedded SQLite store.

`JobStore` is the interface (a Redis store implements the same methods when several instances run,
DESIGN.md §5); `SqliteJobStore` keeps everything in one file with WAL, one connection guarded by a lock,
each call run in a worker thread so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol


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


class JobStore(Protocol):
    async def create(self, job: dict[str, Any]) -> dict[str, Any]: ...
    async def get(self, job_id: str) -> dict[str, Any] | None: ...
    async def by_idempotency_key(self, key: str) -> dict[str, Any] | None: ...
    async def update(self, job_id: str, **fields: Any) -> dict[str, Any] | None: ...
    async def mutate(self, job_id: str, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None: ...
    async def page(self, after: str | None, limit: int, descending: bool) -> tuple[list[dict[str, Any]], bool]: ...
    async def unfinished(self) -> list[dict[str, Any]]: ...
    async def delete(self, job_id: str) -> bool: ...
    async def add_delivery(self, delivery: dict[str, Any]) -> None: ...
    async def due_deliveries(self, now: float, limit: int) -> list[dict[str, Any]]: ...
    async def update_delivery(self, delivery_id: str, next_at: float, attempts: int, done: bool, doc: dict[str, Any]) -> None: ...


class SqliteJobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    async def _q(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._run, sql, args)

    async def create(self, job: dict[str, Any]) -> dict[str, Any]:
        """Insert, or return the job already holding this idempotency key (a race-free check)."""
        try:
            # ordered by creation to the nanosecond: a page never shuffles jobs made within one second
            await self._q("INSERT INTO jobs (id, created_at, status, idempotency_key, doc) VALUES (?, ?, ?, ?, ?)",
                          job["id"], time.time_ns(), job["status"], job.get("idempotency_key"), json.dumps(job))
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

    async def update(self, job_id: str, **fields: Any) -> dict[str, Any] | None:
        return await self.mutate(job_id, lambda doc: {**doc, **fields})

    async def mutate(self, job_id: str, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
        """Read, change with `fn` and write one job under the lock: concurrent writers cannot lose updates."""
        def apply() -> dict[str, Any] | None:
            with self._lock:
                rows = self._db.execute("SELECT doc FROM jobs WHERE id = ?", (job_id,)).fetchall()
                if not rows:
                    return None
                doc = fn(json.loads(rows[0][0]))
                self._db.execute("UPDATE jobs SET status = ?, doc = ? WHERE id = ?", (doc["status"], json.dumps(doc), job_id))
                return doc
        return await asyncio.to_thread(apply)

    async def page(self, after: str | None, limit: int, descending: bool) -> tuple[list[dict[str, Any]], bool]:
        order = "DESC" if descending else "ASC"
        cmp = "<" if descending else ">"
        if after:
            anchor = await self._q("SELECT created_at, id FROM jobs WHERE id = ?", after)
            if not anchor:
                return [], False
            rows = await self._q(f"SELECT doc FROM jobs WHERE deleted = 0 AND (created_at, id) {cmp} (?, ?) "
                                 f"ORDER BY created_at {order}, id {order} LIMIT ?", anchor[0][0], anchor[0][1], limit + 1)
        else:
            rows = await self._q(f"SELECT doc FROM jobs WHERE deleted = 0 ORDER BY created_at {order}, id {order} LIMIT ?", limit + 1)
        docs = [json.loads(r[0]) for r in rows]
        return docs[:limit], len(docs) > limit

    async def unfinished(self) -> list[dict[str, Any]]:
        rows = await self._q("SELECT doc FROM jobs WHERE status NOT IN ('completed', 'failed', 'cancelled') AND deleted = 0")
        return [json.loads(r[0]) for r in rows]

    async def delete(self, job_id: str) -> bool:
        # the idempotency key is released with the job: the same key may start a new one
        rows = await self._q("UPDATE jobs SET deleted = 1, idempotency_key = NULL WHERE id = ? AND deleted = 0 RETURNING id", job_id)
        return bool(rows)

    async def add_delivery(self, delivery: dict[str, Any]) -> None:
        await self._q("INSERT OR IGNORE INTO deliveries (id, job_id, next_at, doc) VALUES (?, ?, ?, ?)",
                      delivery["id"], delivery["job_id"], time.time(), json.dumps(delivery))

    async def due_deliveries(self, now: float, limit: int) -> list[dict[str, Any]]:
        rows = await self._q("SELECT doc, attempts FROM deliveries WHERE done = 0 AND next_at <= ? ORDER BY next_at LIMIT ?", now, limit)
        return [{**json.loads(r[0]), "attempts": r[1]} for r in rows]

    async def update_delivery(self, delivery_id: str, next_at: float, attempts: int, done: bool, doc: dict[str, Any]) -> None:
        await self._q("UPDATE deliveries SET next_at = ?, attempts = ?, done = ?, doc = ? WHERE id = ?",
                      next_at, attempts, int(done), json.dumps(doc), delivery_id)
