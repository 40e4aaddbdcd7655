"""Gateway keys: who may call, on which models and endpoints, how fast and for how much (DESIGN.md §5a).

A key is a random secret shown once; the store keeps only `HMAC-SHA256(pepper, secret)` and a short
prefix for display. A keyed fast hash, not scrypt: the secrets are 256 random bits, so a slow hash adds
nothing against guessing (there is nothing to brute-force), while it would cost tens of milliseconds of
CPU on every request and give anyone sending wrong keys a cheap way to burn the gateway's CPU. The keyed
hash also lets the store look a key up by its hash directly (an index, no scan, no timing on the secret);
the pepper keeps a copied store from being checked against candidate keys offline.

Each backend (SQLite in the state directory, Redis when scaled out: mediagate.redisstate.RedisKeyStore)
is the same KeyStore Protocol; `KeyRing` adds the one-second in-process cache, so a revocation is seen by
every instance within KEY_CACHE_S.
"""

from __future__ import annotations

import asyncio
import calendar
import fnmatch
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from mediagate.jobstore import StoreUnavailable, open_sqlite

KEY_CACHE_S = 1.0              # a verified (or revoked) key is trusted from memory at most this long
SECRET_PREFIX = "mg-"
DISPLAY_PREFIX_CHARS = 11      # "mg-" and 8 characters of the secret: enough to tell keys apart, not to guess one
SECRET_BYTES = 32
PERIODS = ("day", "month")
MAX_BUDGET_USD = 1e12         # a budget above this is a typo (and would overflow the micro-dollar counters)
LIMIT_FIELDS = ("rpm", "images_per_min", "video_seconds_per_min", "max_concurrent_jobs")


class KeyExists(Exception):
    """A key with this name exists already."""


class KeyStore(Protocol):
    async def create(self, doc: dict[str, Any]) -> None: ...
    async def get(self, ref: str) -> dict[str, Any] | None: ...          # by id or name
    async def by_hash(self, digest: str) -> dict[str, Any] | None: ...
    async def all(self) -> list[dict[str, Any]]: ...
    async def replace(self, doc: dict[str, Any]) -> None: ...            # same id; hash may change (rotate)
    async def any_keys(self) -> bool: ...
    async def close(self) -> None: ...


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def digest(pepper: str, secret: str) -> str:
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


def parse_expiry(value: str | None) -> float | None:
    """ISO 8601 to a UNIX time; a value without a zone is UTC."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expires: '{value[:40]}' is not an ISO 8601 date or time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def new_doc(name: str, *, team: str | None = None, models: list[str] | None = None, endpoints: list[str] | None = None,
            rpm: int | None = None, images_per_min: int | None = None, video_seconds_per_min: int | None = None,
            max_concurrent_jobs: int | None = None, budget: float | None = None, budget_period: str | None = None,
            expires: str | None = None, store_payloads: bool = False) -> tuple[dict[str, Any], str]:
    """A validated key document and its secret (ValueError names the bad field)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ValueError("name: 1 to 100 characters")
    limits = {"rpm": rpm, "images_per_min": images_per_min, "video_seconds_per_min": video_seconds_per_min,
              "max_concurrent_jobs": max_concurrent_jobs}
    for field_name, v in limits.items():
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"{field_name}: a whole number >= 1")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 <= budget <= MAX_BUDGET_USD:
            raise ValueError(f"budget: a number of USD from 0 to {MAX_BUDGET_USD:g}")
        budget_period = budget_period or "month"
        if budget_period not in PERIODS:
            raise ValueError(f"budget_period: one of {', '.join(PERIODS)}")
    elif budget_period is not None:
        raise ValueError("budget_period: given without a budget")
    for field_name, globs in (("models", models), ("endpoints", endpoints)):
        if globs is not None and (not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs)):
            raise ValueError(f"{field_name}: a list of non-empty patterns")
    if team is not None and (not isinstance(team, str) or not team or len(team) > 100):
        raise ValueError("team: 1 to 100 characters")
    if not isinstance(store_payloads, bool):
        raise ValueError("store_payloads: true or false")
    secret = new_secret()
    doc = {"id": "key_" + secrets.token_hex(8), "name": name.strip(), "team": team or "default", "prefix": secret[:DISPLAY_PREFIX_CHARS],
           "models": models or [], "endpoints": endpoints or [], "limits": {k: v for k, v in limits.items() if v is not None},
           "budget_micros": None if budget is None else round(budget * 1_000_000), "budget_period": budget_period,
           "expires_at": parse_expiry(expires), "created_at": int(time.time()), "revoked_at": None,
           "store_payloads": store_payloads}   # its requests' prompts and outputs kept in the request history
    return doc, secret


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A key as the admin API and the CLI show it: never the hash."""
    out = {k: v for k, v in doc.items() if k != "hash"}
    out["object"] = "api_key"
    out["budget"] = None if doc.get("budget_micros") is None else doc["budget_micros"] / 1_000_000
    out.pop("budget_micros", None)
    return out


def allowed(globs: list[str], value: str) -> bool:
    return not globs or any(fnmatch.fnmatchcase(value, g) for g in globs)


def usable(doc: dict[str, Any], now: float) -> bool:
    return doc.get("revoked_at") is None and (doc.get("expires_at") is None or doc["expires_at"] > now)


def period(doc: dict[str, Any], now: float) -> tuple[str, float]:
    """The budget period this moment falls in (UTC): its id and the seconds until it ends."""
    t = time.gmtime(now)
    if doc.get("budget_period") == "day":
        start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
        return time.strftime("%Y-%m-%d", t), start + 86400 - now
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return time.strftime("%Y-%m", t), calendar.timegm((year, month, 1, 0, 0, 0)) - now


class SqliteKeyStore:
    """Keys in `keys.sqlite3` in the state directory, shared by `serve --workers` processes and the CLI."""

    def __init__(self, path: Path) -> None:
        self._db = open_sqlite(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                         "hash TEXT NOT NULL UNIQUE, doc TEXT NOT NULL)")
        self._lock = threading.Lock()

    async def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        return await asyncio.to_thread(run)

    async def create(self, doc: dict[str, Any]) -> None:
        try:
            await self._run("INSERT INTO keys (id, name, hash, doc) VALUES (?, ?, ?, ?)",
                            (doc["id"], doc["name"], doc["hash"], json.dumps(doc)))
        except sqlite3.IntegrityError:
            raise KeyExists(doc["name"]) from None

    async def get(self, ref: str) -> dict[str, Any] | None:
        rows = await self._run("SELECT doc FROM keys WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1", (ref, ref, ref))
        return json.loads(rows[0][0]) if rows else None

    async def by_hash(self, digest_: str) -> dict[str, Any] | None:
        rows = await self._run("SELECT doc FROM keys WHERE hash = ?", (digest_,))
        return json.loads(rows[0][0]) if rows else None

    async def all(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in await self._run("SELECT doc FROM keys ORDER BY rowid")]

    async def replace(self, doc: dict[str, Any]) -> None:
        await self._run("UPDATE keys SET hash = ?, doc = ? WHERE id = ?", (doc["hash"], json.dumps(doc), doc["id"]))

    async def any_keys(self) -> bool:
        return bool(await self._run("SELECT 1 FROM keys LIMIT 1"))

    async def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class _Cached:
    doc: dict[str, Any] | None
    at: float


class KeyRing:
    """The key store with the hash pepper and a cache of at most KEY_CACHE_S per entry."""

    def __init__(self, store: KeyStore, pepper: Callable[[], Awaitable[str]]) -> None:
        self.store = store
        self._pepper_source = pepper
        self._pepper: str | None = None
        self._cache: dict[str, _Cached] = {}
        self._any: _Cached | None = None

    async def digest(self, secret: str) -> str:
        if self._pepper is None:
            self._pepper = await self._pepper_source()
        return digest(self._pepper, secret)

    async def any_keys(self) -> bool:
        now = time.monotonic()
        if self._any is None or now - self._any.at > KEY_CACHE_S:
            try:
                self._any = _Cached({"any": await self.store.any_keys()}, now)
            except StoreUnavailable:
                # the last answer stands while the store is down (no keys: image and chat keep working);
                # never known, or keys exist: the request needs the store (503)
                if self._any is None or self._any.doc is None or self._any.doc["any"]:
                    raise
        return bool(self._any.doc and self._any.doc["any"])

    async def verify(self, secret: str) -> dict[str, Any] | None:
        """The usable key with this secret, or None (unknown, revoked, expired)."""
        if not secret.startswith(SECRET_PREFIX):
            return None
        h = await self.digest(secret)
        now = time.monotonic()
        hit = self._cache.get(h)
        if hit is None or now - hit.at > KEY_CACHE_S:
            doc = await self.store.by_hash(h)
            # the store found it by this hash; compare once more in constant time, so no lookup path decides alone
            if doc is not None and not hmac.compare_digest(doc["hash"], h):
                doc = None
            if len(self._cache) > 10_000:
                self._cache.clear()
            hit = self._cache[h] = _Cached(doc, now)
        return hit.doc if hit.doc is not None and usable(hit.doc, time.time()) else None

    async def create(self, **fields: Any) -> tuple[dict[str, Any], str]:
        doc, secret = new_doc(**fields)
        doc["hash"] = await self.digest(secret)
        await self.store.create(doc)
        self._any = None
        return doc, secret

    async def revoke(self, ref: str) -> dict[str, Any] | None:
        doc = await self.store.get(ref)
        if doc is None:
            return None
        if doc.get("revoked_at") is None:
            doc["revoked_at"] = int(time.time())
            await self.store.replace(doc)
        self._cache.clear()   # at once on this instance; the others within KEY_CACHE_S
        return doc

    async def rotate(self, ref: str) -> tuple[dict[str, Any], str] | None:
        """A new secret for the same key (limits, budget and spend kept); the old secret stops working."""
        doc = await self.store.get(ref)
        if doc is None:
            return None
        secret = new_secret()
        doc.update(hash=await self.digest(secret), prefix=secret[:DISPLAY_PREFIX_CHARS], rotated_at=int(time.time()))
        await self.store.replace(doc)
        self._cache.clear()
        return doc, secret
