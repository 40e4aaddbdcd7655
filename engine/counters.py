"""Fixed-window counters (rate limits, usage): the Counters interface and its embedded SQLite store.

One atomic add-and-read per hit, correct across `serve --workers N` processes sharing the file; the Redis
implementation (mediagate.redisstate.RedisCounters) is the same interface for several instances.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Protocol

from mediagate.jobstore import open_sqlite

EXPIRED_ROWS_PER_SWEEP = 1000


class Counters(Protocol):
    async def hit(self, key: str, amount: int, window_s: float) -> tuple[int, float]: ...
    async def peek(self, key: str) -> int: ...


class SqliteCounters:
    def __init__(self, path: Path) -> None:
        self._db = open_sqlite(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, "
                         "reset_at REAL NOT NULL)")
        self._lock = threading.Lock()

    def _hit(self, key: str, amount: int, window_s: float) -> tuple[int, float]:
        now = time.time()
        reset = now + window_s   # a window starts at its first hit, as on Redis
        with self._lock:
            row = self._db.execute(
                "INSERT INTO counters (key, value, reset_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "value = CASE WHEN reset_at <= ? THEN excluded.value ELSE value + excluded.value END, "
                "reset_at = CASE WHEN reset_at <= ? THEN excluded.reset_at ELSE reset_at END "
                "RETURNING value, reset_at", (key, amount, reset, now, now)).fetchone()
            if int(now) % 60 == 0:
                self._db.execute("DELETE FROM counters WHERE rowid IN (SELECT rowid FROM counters WHERE reset_at <= ? "
                                 "LIMIT ?)", (now, EXPIRED_ROWS_PER_SWEEP))
        return int(row[0]), max(0.0, float(row[1]) - now)

    async def hit(self, key: str, amount: int, window_s: float) -> tuple[int, float]:
        """Add `amount` to the window's count; (new count, seconds until the window resets)."""
        return await asyncio.to_thread(self._hit, key, amount, window_s)

    def _read(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE key = ? AND reset_at > ?", (key, time.time())).fetchone()
        return int(row[0]) if row else 0

    async def peek(self, key: str) -> int:
        """The window's count. Read on the loop when no hit holds the connection: a WAL read of one row by its
        key never waits for a writer and costs a few microseconds, a trip to a worker thread ten times that
        (this runs on every authenticated request: the wrong-key throttle)."""
        if self._lock.acquire(blocking=False):
            try:
                return self._read(key)
            finally:
                self._lock.release()

        def read() -> int:
            with self._lock:
                return self._read(key)
        return await asyncio.to_thread(read)

    async def close(self) -> None:
        with self._lock:
            self._db.close()
