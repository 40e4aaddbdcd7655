"""Media in an S3-compatible bucket (AWS S3, MinIO, R2, GCS's S3 API), shared by every instance.

`MEDIAGATE_MEDIA_URL=s3://bucket/prefix`; credentials and region from the standard `AWS_*` variables and
`AWS_ENDPOINT_URL` for stores other than AWS. Objects are named like local files (expiry + random token),
under `prefix/media/` (url responses) and `prefix/videos/`, so any instance can check, serve and sweep
any other's. Downloads stream from the bucket in chunks; nothing is held whole in memory to serve it.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from typing import Mapping
from urllib.parse import urlsplit

import obstore
from obstore.store import S3Store

from mediagate import imaging
from mediagate.errors import GatewayError
from mediagate.media import (CHUNK_BYTES, SWEEP_INTERVAL_S, MediaConfigError, MediaGone, Opened, Stored, check,
                             expiry_of, new_name, run_sweeper, signature)

PRESIGN_MAX_S = 7 * 24 * 3600      # SigV4 presigned URLs live at most seven days
DELETE_BATCH = 1000                # keys per bulk delete (the S3 API's own limit)
STORE_RETRY_AFTER_S = 5
log = logging.getLogger("mediagate")


def _unavailable() -> GatewayError:
    return GatewayError(503, "The media store is unavailable; try again shortly.", "server_error", "service_unavailable",
                        headers={"Retry-After": str(STORE_RETRY_AFTER_S)})


def _store(url: str, sub: str, env: Mapping[str, str]) -> S3Store:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise MediaConfigError(f"MEDIAGATE_MEDIA_URL must look like s3://bucket/prefix (got {url[:60]!r}).")
    prefix = "/".join(p for p in (parts.path.strip("/"), sub) if p)
    config: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL")
    if endpoint:
        config["endpoint"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    for var, name in (("AWS_ACCESS_KEY_ID", "access_key_id"), ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
                      ("AWS_SESSION_TOKEN", "token")):
        if env.get(var):
            config[name] = env[var]
    options = {"allow_http": True} if (endpoint or "").startswith("http://") else {}
    return S3Store(parts.netloc, prefix=prefix, config=config, client_options=options)  # type: ignore[arg-type]


class S3MediaStore:
    def __init__(self, url: str, sub: str, ttl_s: int, signing_key: bytes, presigned: bool,
                 env: Mapping[str, str] | None = None) -> None:
        if presigned and ttl_s > PRESIGN_MAX_S:
            raise MediaConfigError(f"MEDIAGATE_MEDIA_LINKS=presigned allows a TTL of at most {PRESIGN_MAX_S} s "
                                   f"(MEDIAGATE_MEDIA_TTL_SECONDS is {ttl_s}).")
        self.store = _store(url, sub, os.environ if env is None else env)
        self.ttl_s = ttl_s
        self.presigned = presigned
        self._key = signing_key

    def sign(self, name: str) -> str:
        return signature(self._key, name)

    async def put(self, data: bytes, ext: str) -> Stored:
        name, expires = new_name(self.ttl_s, ext)
        mime = imaging.MIME_BY_EXT.get(ext) or {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}.get(
            ext, "application/octet-stream")
        try:
            await obstore.put_async(self.store, name, data, attributes={"Content-Type": mime})
            link = (await obstore.sign_async(self.store, "GET", name, datetime.timedelta(seconds=self.ttl_s))
                    if self.presigned else None)
        except Exception as exc:
            log.warning("media store: writing %s failed: %s", name, type(exc).__name__)
            raise _unavailable() from None
        return Stored(name, expires, self.sign(name), link)

    async def _get(self, name: str, exp: int) -> Opened:
        try:
            result = await obstore.get_async(self.store, name)
        except FileNotFoundError:
            raise MediaGone("not_found") from None
        except Exception as exc:
            log.warning("media store: reading %s failed: %s", name, type(exc).__name__)
            raise _unavailable() from None
        return Opened(name, int(result.meta["size"]), exp, result.stream(min_chunk_size=CHUNK_BYTES))

    async def open(self, name: str, sig: str) -> Opened:
        try:
            exp = check(self._key, name, sig)
        except MediaGone as gone:
            if gone.reason == "expired":
                await self.remove(name)
            raise
        return await self._get(name, exp)

    async def open_own(self, name: str) -> Opened:
        exp = expiry_of(name)
        if exp is None:
            raise MediaGone("not_found")
        if exp <= time.time():
            raise MediaGone("expired")
        return await self._get(name, exp)

    async def remove(self, name: str) -> None:
        if expiry_of(name) is None:
            return
        try:
            await obstore.delete_async(self.store, name)   # deleting a missing key succeeds: idempotent
        except Exception as exc:  # left for the sweeper once it expires
            log.warning("media store: deleting %s failed: %s", name, type(exc).__name__)

    async def sweep(self) -> int:
        now = time.time()
        expired: list[str] = []
        async for batch in obstore.list(self.store, chunk_size=DELETE_BATCH):
            for meta in batch:
                name = meta["path"].rsplit("/", 1)[-1]
                exp = expiry_of(name)
                if exp is not None and exp <= now:
                    expired.append(meta["path"])
        for start in range(0, len(expired), DELETE_BATCH):
            await obstore.delete_async(self.store, expired[start:start + DELETE_BATCH])
        return len(expired)

    async def sweeper(self, interval_s: float = SWEEP_INTERVAL_S) -> None:
        await run_sweeper(self, interval_s)

    async def close(self) -> None:
        return None
