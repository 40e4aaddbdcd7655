"""Temporary media behind signed, unguessable, expiring URLs (embedded default: a local directory).

The file name carries its expiry and 256 random bits; the URL carries an HMAC of the name, so a URL can
be neither guessed nor extended. Expired files are refused at once and deleted by the sweeper.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

MEDIA_ROUTE = "/v1/media"
SWEEP_INTERVAL_S = 30.0
TOKEN_BYTES = 32
STALE_TMP_S = 3600.0          # a .tmp file older than this is a failed write
log = logging.getLogger("mediagate")
_NAME = re.compile(r"^(?P<exp>[0-9]{10,12})-(?P<token>[A-Za-z0-9_-]{40,64})\.(?P<ext>[a-z0-9]{2,5})$")


@dataclass(frozen=True)
class Stored:
    name: str
    expires_at: int
    sig: str

    def path_and_query(self) -> str:
        return f"{MEDIA_ROUTE}/{self.name}?sig={self.sig}"


class MediaStore:
    def __init__(self, directory: Path, ttl_s: int, signing_key: bytes) -> None:
        self.directory = Path(directory)
        self.ttl_s = ttl_s
        self._key = signing_key
        self.directory.mkdir(parents=True, exist_ok=True)

    def _sign(self, name: str) -> str:
        return hmac.new(self._key, name.encode(), hashlib.sha256).hexdigest()

    def put(self, data: bytes, ext: str) -> Stored:
        """Write once (blocking; small files are fine inline, callers may offload)."""
        expires = int(time.time()) + self.ttl_s
        name = f"{expires}-{secrets.token_urlsafe(TOKEN_BYTES)}.{ext}"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.directory / name)
        return Stored(name, expires, self._sign(name))

    def remove(self, name: str) -> None:
        if _NAME.match(name):
            (self.directory / name).unlink(missing_ok=True)

    def path_of(self, name: str) -> Path | None:
        """A stored file by name, for the gateway's own use (no signature: callers never see this)."""
        m = _NAME.match(name)
        if not m or int(m.group("exp")) <= time.time():
            return None
        path = self.directory / name
        return path if path.is_file() else None

    @staticmethod
    def expires_at(name: str) -> int:
        m = _NAME.match(name)
        return int(m.group("exp")) if m else 0

    def open(self, name: str, sig: str) -> tuple[Path | None, str]:
        """(path, "ok") or (None, reason) where reason is "not_found" or "expired"."""
        m = _NAME.match(name)
        if not m or not sig or not hmac.compare_digest(self._sign(name).encode(), sig.encode("utf-8", "replace")):
            return None, "not_found"
        path = self.directory / name
        if int(m.group("exp")) <= time.time():
            path.unlink(missing_ok=True)
            return None, "expired"
        return (path, "ok") if path.is_file() else (None, "not_found")

    def sweep(self) -> int:
        """Delete every expired file, and temporary files a failed write left behind; returns how many."""
        now = time.time()
        removed = 0
        for entry in os.scandir(self.directory):
            m = _NAME.match(entry.name)
            stale_tmp = entry.name.endswith(".tmp") and entry.stat().st_mtime < now - STALE_TMP_S
            if (m and int(m.group("exp")) <= now) or stale_tmp:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed

    async def sweeper(self, interval_s: float = SWEEP_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.sweep)
            except OSError:
                log.exception("media sweep failed; retrying at the next interval")
