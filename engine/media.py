"""Temporary media behind signed, unguessable, expiring URLs: one Protocol, two stores chosen at start-up.

A name carries its expiry and 256 random bits; a gateway URL carries an HMAC of the name, so a URL can be
neither guessed nor extended, and any instance holding the same signing key serves any other's URLs.
Expiry is enforced when a file is served (410) and by a sweeper that deletes expired files. The embedded
default is a local directory with a disk cap (this module); `MEDIAGATE_MEDIA_URL=s3://bucket/prefix`
selects an S3-compatible bucket (`mediagate.media_s3`). No module outside these two knows which runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mediagate.keyfile import stored_secret
from typing import AsyncIterator, BinaryIO, Iterator, Protocol

from mediagate.config import Settings
from mediagate.errors import insufficient_storage

MEDIA_ROUTE = "/v1/media"
SWEEP_INTERVAL_S = 30.0
SWEEP_JITTER = 0.25           # each sweep waits interval × (1 ± this): instances sharing a bucket drift apart
TOKEN_BYTES = 32
CHUNK_BYTES = 256 * 1024      # one read from disk or the bucket while serving a file
INLINE_WRITE_BYTES = 256 * 1024   # smaller writes run on the loop; larger ones in a thread
STALE_TMP_S = 3600.0          # a .tmp file older than this is a failed write
USAGE_RESCAN_S = 1.0          # the disk cap re-counts the directories at most this often (other workers write too)
SIGNING_KEY_FILE = "media_signing_key"
log = logging.getLogger("mediagate")
_NAME = re.compile(r"^(?P<exp>[0-9]{10,12})-(?P<token>[A-Za-z0-9_-]{40,64})\.(?P<ext>[a-z0-9]{2,5})$")


@dataclass(frozen=True)
class Stored:
    name: str
    expires_at: int
    sig: str
    link: str | None = None       # an absolute URL the store made itself (S3 presigned), instead of the gateway's

    def path_and_query(self) -> str:
        return f"{MEDIA_ROUTE}/{self.name}?sig={self.sig}"

    def url(self, base_url: str) -> str:
        """What a client is given: the store's own link, or the gateway's signed URL under `base_url`."""
        return self.link or base_url + self.path_and_query()


@dataclass
class Opened:
    """A stored file ready to be served: its size, its expiry and its bytes as a stream of chunks."""

    name: str
    size: int
    expires_at: int
    chunks: AsyncIterator[bytes]

    @property
    def ext(self) -> str:
        return self.name.rsplit(".", 1)[-1]


class MediaGone(Exception):
    """No file to serve: `reason` is "not_found" (unknown name, bad signature, deleted) or "expired"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MediaStore(Protocol):
    ttl_s: int

    def sign(self, name: str) -> str: ...

    async def put(self, data: bytes, ext: str) -> Stored:
        """Write once; raise GatewayError 507 when the store has no room."""

    async def open(self, name: str, sig: str) -> Opened:
        """A caller's signed URL: checked (signature, expiry) and opened, or MediaGone."""

    async def open_own(self, name: str) -> Opened:
        """A file the gateway itself recorded (a video's output): expiry checked, no signature."""

    async def remove(self, name: str) -> None:
        """Delete one file; deleting a missing one is not an error (every instance may try)."""

    async def sweep(self) -> int:
        """Delete every expired file; returns how many."""

    async def sweeper(self, interval_s: float = SWEEP_INTERVAL_S) -> None: ...

    async def close(self) -> None: ...


def new_name(ttl_s: int, ext: str) -> tuple[str, int]:
    expires = int(time.time()) + ttl_s
    return f"{expires}-{secrets.token_urlsafe(TOKEN_BYTES)}.{ext}", expires


def expiry_of(name: str) -> int | None:
    """The expiry a well-formed name carries; None for anything else (never a path outside the store)."""
    m = _NAME.match(name)
    return int(m.group("exp")) if m else None


def signature(key: bytes, name: str) -> str:
    return hmac.new(key, name.encode(), hashlib.sha256).hexdigest()


def team_bound(name: str, team: str) -> str:
    """What a team-bound URL's signature covers (MEDIAGATE_MEDIA_ACCESS=team): the name and the minting team,
    so the same URL checked for another team's key fails like a forged one."""
    return f"{name}\n{team}"


def for_team(stored: Stored, store: "MediaStore", team: str) -> Stored:
    """`stored` with its signature bound to `team` (a presigned link cannot be: refused at start-up)."""
    return Stored(stored.name, stored.expires_at, store.sign(team_bound(stored.name, team)), stored.link)


def check(key: bytes, name: str, sig: str) -> int:
    """The name's expiry if `sig` signs it and it has not passed; MediaGone otherwise."""
    exp = expiry_of(name)
    if exp is None or not sig or not hmac.compare_digest(signature(key, name).encode(), sig.encode("utf-8", "replace")):
        raise MediaGone("not_found")
    if exp <= time.time():
        raise MediaGone("expired")
    return exp


async def run_sweeper(store: MediaStore, interval_s: float) -> None:
    """Sweep forever with jitter; deletes are idempotent, so every instance may run this at once."""
    while True:
        await asyncio.sleep(interval_s * random.uniform(1 - SWEEP_JITTER, 1 + SWEEP_JITTER))
        try:
            await store.sweep()
        except Exception:  # a failed sweep (disk, bucket unreachable) is retried at the next interval
            log.exception("media sweep failed; retrying at the next interval")


class DiskBudget:
    """One byte cap over the local stores of a process (url media and videos share the disk).

    Usage is re-counted from the directories when stale, so files other worker processes wrote are seen
    within USAGE_RESCAN_S. When a write would cross the cap, expired files go first (oldest expiry first);
    if that is not enough the write is refused with 507 — served URLs that have not expired are never cut.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.directories: list[Path] = []
        self._lock = threading.Lock()
        self._used = 0
        self._counted_at = 0.0

    def _files(self) -> Iterator[os.DirEntry[str]]:
        for directory in self.directories:
            try:
                with os.scandir(directory) as entries:
                    yield from (e for e in entries if e.is_file(follow_symlinks=False))
            except FileNotFoundError:  # a directory removed under us holds nothing
                continue

    def _count(self) -> None:
        used = 0
        for entry in self._files():
            with contextlib.suppress(FileNotFoundError):
                used += entry.stat().st_size
        self._used, self._counted_at = used, time.monotonic()

    def _evict_expired(self, need: int) -> None:
        now = time.time()
        expired = []
        for entry in self._files():
            exp = expiry_of(entry.name)
            if exp is not None and exp <= now:
                expired.append((exp, entry.path))
        for _, path in sorted(expired):
            if self._used + need <= self.max_bytes:
                break
            try:
                size = os.stat(path).st_size
                os.unlink(path)
            except FileNotFoundError:  # another worker or the sweeper got it first
                continue
            self._used -= size

    def reserve(self, nbytes: int) -> None:
        """Count `nbytes` about to be written, or raise 507 (blocking: call from a thread for big files)."""
        with self._lock:
            if nbytes > self.max_bytes:
                raise insufficient_storage()
            if time.monotonic() - self._counted_at > USAGE_RESCAN_S or self._used + nbytes > self.max_bytes:
                self._count()
            if self._used + nbytes > self.max_bytes:
                self._evict_expired(nbytes)
            if self._used + nbytes > self.max_bytes:
                raise insufficient_storage()
            self._used += nbytes

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._used = max(0, self._used - nbytes)


class LocalMediaStore:
    """The embedded default: a directory, written via a temp file and a rename, capped by a DiskBudget."""

    def __init__(self, directory: Path, ttl_s: int, signing_key: bytes, budget: DiskBudget | None = None) -> None:
        self.directory = Path(directory)
        self.ttl_s = ttl_s
        self._key = signing_key
        self.directory.mkdir(parents=True, exist_ok=True)
        self.budget = budget
        if budget is not None:
            budget.directories.append(self.directory)

    def sign(self, name: str) -> str:
        return signature(self._key, name)

    def _write(self, data: bytes, ext: str) -> Stored:
        name, expires = new_name(self.ttl_s, ext)
        if self.budget is not None:
            self.budget.reserve(len(data))
        tmp = self.directory / f".{name}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.directory / name)
        except OSError:
            tmp.unlink(missing_ok=True)
            if self.budget is not None:
                self.budget.release(len(data))
            log.exception("media write failed")
            raise insufficient_storage() from None
        return Stored(name, expires, self.sign(name))

    async def put(self, data: bytes, ext: str) -> Stored:
        if len(data) <= INLINE_WRITE_BYTES:
            return self._write(data, ext)
        return await asyncio.to_thread(self._write, data, ext)

    def _open(self, name: str) -> Opened:
        exp = expiry_of(name)
        if exp is None:
            raise MediaGone("not_found")
        path = self.directory / name
        if exp <= time.time():
            path.unlink(missing_ok=True)
            raise MediaGone("expired")
        try:
            handle = open(path, "rb")  # an open file survives the sweeper unlinking it mid-download
        except OSError:
            raise MediaGone("not_found") from None
        return Opened(name, os.fstat(handle.fileno()).st_size, exp, _file_chunks(handle))

    async def open(self, name: str, sig: str) -> Opened:
        try:
            check(self._key, name, sig)
        except MediaGone as gone:
            if gone.reason == "expired":
                await self.remove(name)
            raise
        return await asyncio.to_thread(self._open, name)

    async def open_own(self, name: str) -> Opened:
        return await asyncio.to_thread(self._open, name)

    async def remove(self, name: str) -> None:
        if expiry_of(name) is not None:
            await asyncio.to_thread((self.directory / name).unlink, True)

    def _sweep(self) -> int:
        now = time.time()
        removed = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                exp = expiry_of(entry.name)
                try:
                    stale_tmp = entry.name.endswith(".tmp") and entry.stat().st_mtime < now - STALE_TMP_S
                except FileNotFoundError:
                    continue
                if (exp is not None and exp <= now) or stale_tmp:
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed

    async def sweep(self) -> int:
        return await asyncio.to_thread(self._sweep)

    async def sweeper(self, interval_s: float = SWEEP_INTERVAL_S) -> None:
        await run_sweeper(self, interval_s)

    async def close(self) -> None:
        return None


async def _file_chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    """Read in chunks in a thread (the loop never waits on the disk); the handle closes when done or dropped."""
    try:
        while block := await asyncio.to_thread(handle.read, CHUNK_BYTES):
            yield block
    finally:
        handle.close()


def signing_key(explicit: bytes | None, state_dir: Path, shared_media: bool) -> bytes:
    """The media signing key: the operator's, or (embedded only) one made once and kept in the state dir.

    Shared media needs every instance to hold the same key, which a key made per instance can't be.
    """
    if explicit:
        return explicit
    if shared_media:
        raise MediaConfigError(
            "MEDIAGATE_MEDIA_URL points at a shared bucket, so every instance must sign media URLs with the same "
            "key: set MEDIAGATE_SIGNING_KEY (the same secret on every instance) and start again.")
    return stored_key(state_dir / SIGNING_KEY_FILE)


def stored_key(path: Path) -> bytes:
    """The media signing key made once and kept (see mediagate.keyfile)."""
    return stored_secret(path).encode()


class MediaConfigError(SystemExit):
    """A start-up refusal: ends the process with its message (and no traceback) unless a caller catches it."""

    def __init__(self, message: str) -> None:
        super().__init__(f"mediagate: {message}")
        self.message = message


def open_media(settings: Settings, video_ttl_s: int) -> tuple[MediaStore, MediaStore]:
    """(url media, video content) for these settings: the local directory, or the bucket in MEDIAGATE_MEDIA_URL."""
    url = settings.media_url
    if settings.media_links not in ("gateway", "presigned"):
        raise MediaConfigError("MEDIAGATE_MEDIA_LINKS must be gateway or presigned.")
    if settings.media_access not in ("url", "team"):
        raise MediaConfigError("MEDIAGATE_MEDIA_ACCESS must be url or team.")
    if settings.media_access == "team" and settings.media_links == "presigned":
        raise MediaConfigError("MEDIAGATE_MEDIA_ACCESS=team needs gateway links: a presigned bucket URL cannot ask for a "
                               "key (set MEDIAGATE_MEDIA_LINKS=gateway).")
    if url:
        if not url.startswith("s3://"):
            raise MediaConfigError(f"MEDIAGATE_MEDIA_URL must be an s3://bucket/prefix URL (got {url[:60]!r}).")
        key = signing_key(settings.signing_key, settings.state_dir, shared_media=True)
        from mediagate.media_s3 import S3MediaStore
        presigned = settings.media_links == "presigned"
        return (S3MediaStore(url, "media", settings.media_ttl_s, key, presigned),
                S3MediaStore(url, "videos", video_ttl_s, key, False))
    if settings.media_links == "presigned":
        raise MediaConfigError("MEDIAGATE_MEDIA_LINKS=presigned needs an object store (MEDIAGATE_MEDIA_URL=s3://...).")
    key = signing_key(settings.signing_key, settings.state_dir, shared_media=False)
    budget = DiskBudget(settings.media_max_bytes)
    return (LocalMediaStore(settings.media_dir, settings.media_ttl_s, key, budget),
            LocalMediaStore(settings.media_dir / "videos", video_ttl_s, key, budget))
