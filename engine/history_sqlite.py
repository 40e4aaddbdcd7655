"""The HistoryStore Protocol (mediagate.history) embedded: `history.sqlite3` in the state directory, shared by
`serve --workers` processes (WAL; every write one `BEGIN IMMEDIATE` transaction, in a worker thread).

`requests` holds one row per record (its JSON, with the columns pages filter on: time, team, key, status);
`usage` one row per UTC day, team, key, model, provider and metric, added to with an upsert.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from mediagate.history import usage_delta
from mediagate.jobstore import open_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (id TEXT PRIMARY KEY, created REAL NOT NULL, team TEXT NOT NULL,
    key TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS requests_team ON requests (team, created, id);
CREATE INDEX IF NOT EXISTS requests_created ON requests (created, id);
CREATE TABLE IF NOT EXISTS usage (day TEXT NOT NULL, team TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL,
    provider TEXT NOT NULL, metric TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (day, team, key, model, provider, metric));
"""
_ADD_USAGE = ("INSERT INTO usage (day, team, key, model, provider, metric, value) VALUES (?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT (day, team, key, model, provider, metric) DO UPDATE SET value = value + excluded.value")


def _doc(record: dict[str, Any]) -> str:
    """A record's stored JSON: orjson (a tenth of json.dumps' time, in the writer thread that holds the GIL
    meanwhile); what it refuses (a caller's integer past 64 bits in stored payloads) the standard library's way."""
    try:
        return orjson.dumps(record).decode()
    except TypeError:
        return json.dumps(record)


def _usage_rows(delta: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(delta["day"], delta["team"], delta["key"], delta["model"], delta["provider"], m, v)
            for m, v in delta["values"].items() if v]


def _summed(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One usage row per (day, team, key, model, provider, metric) of a batch, its values added: a batch of
    records from one key and model is a few upserts instead of two or three per record."""
    sums: dict[tuple[Any, ...], int] = {}
    for *group, value in rows:
        sums[tuple(group)] = sums.get(tuple(group), 0) + value
    return [(*group, value) for group, value in sums.items() if value]


class SqliteHistory:

    def __init__(self, path: Path) -> None:
        self._db = open_sqlite(path)
        # WAL's NORMAL: a commit is durable once the OS has it (a process crash loses nothing), only a power cut
        # may lose the last ones — as the records still in the recorder's memory queue would be; FULL's fsync per
        # commit was most of a batch's cost
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    async def _call(self, fn: Any) -> Any:
        def run() -> Any:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return out
        return await asyncio.to_thread(run)

    async def add(self, records: list[dict[str, Any]]) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR IGNORE INTO requests (id, created, team, key, status, doc) VALUES (?, ?, ?, ?, ?, ?)",
                           [(r["id"], r["created_at"], r["team"], r.get("key") or "", r["status"], _doc(r)) for r in records])
            db.executemany(_ADD_USAGE, _summed([row for r in records for row in _usage_rows(usage_delta(r))]))
        await self._call(write)

    async def finish(self, record_id: str, fields: dict[str, Any], delta: dict[str, Any]) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            rows = db.execute("SELECT doc FROM requests WHERE id = ?", (record_id,)).fetchall()
            if not rows:
                return False
            doc = {**json.loads(rows[0][0]), **fields}
            db.execute("UPDATE requests SET status = ?, doc = ? WHERE id = ?", (doc["status"], json.dumps(doc), record_id))
            db.executemany(_ADD_USAGE, _usage_rows({**delta, "provider": doc.get("provider") or delta["provider"]}))
            return True
        return bool(await self._call(write))

    async def get(self, record_id: str, team: str | None) -> dict[str, Any] | None:
        rows = await self._call(lambda db: db.execute("SELECT doc, team FROM requests WHERE id = ?", (record_id,)).fetchall())
        if not rows or (team is not None and rows[0][1] != team):
            return None
        return dict(json.loads(rows[0][0]))

    async def page(self, team: str | None, key: str | None, status: str | None, start: float, end: float,
                   after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        where, args = ["created >= ?", "created < ?"], [start, end]
        for column, value in (("team", team), ("key", key), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)

        def read(db: sqlite3.Connection) -> list[Any]:
            if after:
                anchor = db.execute("SELECT created, id FROM requests WHERE id = ? AND (? IS NULL OR team = ?)",
                                    (after, team, team)).fetchall()
                if not anchor:   # unknown, swept, or another team's: a cursor names nothing here
                    return []
                where.append("(created, id) < (?, ?)")
                args.extend(anchor[0])
            return db.execute(f"SELECT doc FROM requests WHERE {' AND '.join(where)} ORDER BY created DESC, id DESC "
                              "LIMIT ?", (*args, limit + 1)).fetchall()
        docs = [json.loads(r[0]) for r in await self._call(read)]
        return docs[:limit], docs[limit - 1]["id"] if len(docs) > limit else None

    async def drop_payloads(self, record_id: str, team: str | None) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            rows = db.execute("SELECT doc, team FROM requests WHERE id = ?", (record_id,)).fetchall()
            if not rows or (team is not None and rows[0][1] != team):
                return False
            doc = json.loads(rows[0][0])
            doc["payloads"] = None
            db.execute("UPDATE requests SET doc = ? WHERE id = ?", (json.dumps(doc), record_id))
            return True
        return bool(await self._call(write))

    async def usage(self, team: str | None, key: str | None, first_day: str, last_day: str) -> list[dict[str, Any]]:
        where, args = ["day >= ?", "day <= ?"], [first_day, last_day]
        for column, value in (("team", team), ("key", key)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        rows = await self._call(lambda db: db.execute(
            f"SELECT day, team, key, model, provider, metric, value FROM usage WHERE {' AND '.join(where)}", args).fetchall())
        names = ("day", "team", "key", "model", "provider", "metric", "value")
        return [dict(zip(names, r)) for r in rows]

    async def sweep(self, records_before: float, usage_before_day: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM requests WHERE created < ?", (records_before,))
            db.execute("DELETE FROM usage WHERE day < ?", (usage_before_day,))
        await self._call(write)

    async def close(self) -> None:
        with self._lock:
            self._db.close()
