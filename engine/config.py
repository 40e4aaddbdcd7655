"""Settings from the environment, read once at start-up (secrets stay in the environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import platformdirs

from mediagate.admission import DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_INFLIGHT_UPLOAD_BYTES
from mediagate.replybudget import DEFAULT_MAX_HELD_REPLY_BYTES
from mediagate.imaging import AVIF_MAX_SIDE_LIMIT_PX, AVIF_MAX_SIDE_PX

DEFAULT_PORT = 8400
MAX_JSON_BODY_BYTES = 4 * 1024 * 1024      # a JSON request larger than this is a 413
DEFAULT_MEDIA_TTL_S = 3600                 # signed media URLs live 60 minutes
DEFAULT_MEDIA_MAX_BYTES = 2 * 1024 ** 3    # the local media directory (url media + videos) holds at most 2 GiB
DEFAULT_REQUEST_TIMEOUT_S = 600.0          # whole request, all routes and fan-out included
DEFAULT_JOB_LEASE_S = 10.0                 # a dead instance's video jobs are taken over within this
MAX_JOB_LEASE_S = 15.0
DEFAULT_REQUEST_RETENTION_DAYS = 30       # request history records are kept this long (usage sums longer)
MAX_REQUEST_RETENTION_DAYS = 3650
BODY_IDLE_TIMEOUT_S = 30.0                 # a request body that stops arriving this long ends the request (408)


def default_state_dir() -> Path:
    """Per-user data directory (XDG on Linux, ~/Library on macOS), never the current directory."""
    return Path(platformdirs.user_data_dir("mediagate", appauthor=False))


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_keys: frozenset[str] = frozenset()      # empty: no gateway key required
    media_dir: Path = field(default_factory=lambda: default_state_dir() / "media")
    media_ttl_s: int = DEFAULT_MEDIA_TTL_S
    signing_key: bytes | None = None           # media URL HMAC key; default: made once and kept in state_dir
    media_url: str | None = None               # s3://bucket/prefix: media in a shared bucket instead of media_dir
    media_links: str = "gateway"               # gateway: signed gateway URLs; presigned: the bucket's own URLs
    media_access: str = "url"                  # url: a signed URL is its own credential; team: it also needs the team's key
    media_max_bytes: int = DEFAULT_MEDIA_MAX_BYTES
    public_url: str | None = None              # base for media URLs; default: the request's own host
    sandbox: str = "auto"                      # auto: providers without keys use the simulators; on; off
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    max_body_bytes: int = MAX_JSON_BODY_BYTES
    body_idle_timeout_s: float = BODY_IDLE_TIMEOUT_S
    reload_interval_s: float = 1.0             # spec hot reload poll; 0 turns it off
    fetch_allow: str = ""                      # hosts / networks a caller's image URL may point at besides public ones
    state_dir: Path = field(default_factory=lambda: default_state_dir())  # job store (SQLite), secrets
    webhook_secret: str | None = None          # whsec_...; default: made once and kept in state_dir
    redis_url: str | None = None               # shared state for several instances; default: SQLite in state_dir
    job_lease_s: float = DEFAULT_JOB_LEASE_S
    cors_origins: tuple[str, ...] = ()         # web origins allowed to call from a browser; "*" any; empty: CORS off
    allowed_hosts: tuple[str, ...] = ()        # Host names served (and put in media URLs); empty: the bound address
    admin_key: str | None = None               # authorises /admin/keys; unset: the admin API is off
    key_hash_secret: str | None = None         # pepper of the stored key hashes; default: made once and kept
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    max_inflight_upload_bytes: int = DEFAULT_MAX_INFLIGHT_UPLOAD_BYTES
    max_held_reply_bytes: int = DEFAULT_MAX_HELD_REPLY_BYTES   # provider replies read but not yet delivered
    request_retention_days: int = DEFAULT_REQUEST_RETENTION_DAYS
    avif_max_side_px: int = AVIF_MAX_SIDE_PX   # larger images asked as AVIF keep their format (an adjustment)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        s = cls()
        s.host = env.get("MEDIAGATE_HOST", s.host)
        s.port = int(env.get("MEDIAGATE_PORT", s.port))
        s.api_keys = frozenset(k.strip() for k in env.get("MEDIAGATE_API_KEYS", "").split(",") if k.strip())
        s.state_dir = Path(env.get("MEDIAGATE_STATE_DIR", str(s.state_dir)))
        s.media_dir = Path(env.get("MEDIAGATE_MEDIA_DIR", str(s.state_dir / "media")))
        s.media_ttl_s = int(env.get("MEDIAGATE_MEDIA_TTL_SECONDS", s.media_ttl_s))
        if env.get("MEDIAGATE_SIGNING_KEY"):
            s.signing_key = env["MEDIAGATE_SIGNING_KEY"].encode()
        s.media_url = env.get("MEDIAGATE_MEDIA_URL") or None
        s.media_links = env.get("MEDIAGATE_MEDIA_LINKS", s.media_links).lower()
        s.media_access = env.get("MEDIAGATE_MEDIA_ACCESS", s.media_access).lower()
        s.media_max_bytes = int(env.get("MEDIAGATE_MEDIA_MAX_BYTES", s.media_max_bytes))
        s.public_url = env.get("MEDIAGATE_PUBLIC_URL") or None
        s.sandbox = env.get("MEDIAGATE_SANDBOX", s.sandbox).lower()
        if s.sandbox not in ("auto", "on", "off"):
            raise ValueError("MEDIAGATE_SANDBOX must be auto, on or off")
        s.request_timeout_s = float(env.get("MEDIAGATE_REQUEST_TIMEOUT_SECONDS", s.request_timeout_s))
        s.max_body_bytes = int(env.get("MEDIAGATE_MAX_BODY_BYTES", s.max_body_bytes))
        s.reload_interval_s = float(env.get("MEDIAGATE_RELOAD_SECONDS", s.reload_interval_s))
        s.fetch_allow = env.get("MEDIAGATE_FETCH_ALLOW", s.fetch_allow)
        s.webhook_secret = env.get("MEDIAGATE_WEBHOOK_SECRET") or None
        s.redis_url = env.get("MEDIAGATE_REDIS_URL") or None
        if s.redis_url and not s.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("MEDIAGATE_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        s.job_lease_s = float(env.get("MEDIAGATE_JOB_LEASE_SECONDS", s.job_lease_s))
        if not 1 <= s.job_lease_s <= MAX_JOB_LEASE_S:
            raise ValueError(f"MEDIAGATE_JOB_LEASE_SECONDS must be between 1 and {MAX_JOB_LEASE_S:g}")
        s.cors_origins = _items(env.get("MEDIAGATE_CORS_ORIGINS", ""), lambda o: o.rstrip("/"))
        s.allowed_hosts = _items(env.get("MEDIAGATE_ALLOWED_HOSTS", ""), str.lower)
        s.admin_key = env.get("MEDIAGATE_ADMIN_KEY") or None
        s.key_hash_secret = env.get("MEDIAGATE_KEY_HASH_SECRET") or None
        s.max_concurrent_requests = int(env.get("MEDIAGATE_MAX_CONCURRENT_REQUESTS", s.max_concurrent_requests))
        s.max_inflight_upload_bytes = int(env.get("MEDIAGATE_MAX_INFLIGHT_UPLOAD_BYTES", s.max_inflight_upload_bytes))
        if s.max_concurrent_requests < 1 or s.max_inflight_upload_bytes < 1:
            raise ValueError("MEDIAGATE_MAX_CONCURRENT_REQUESTS and MEDIAGATE_MAX_INFLIGHT_UPLOAD_BYTES must be positive")
        s.max_held_reply_bytes = int(env.get("MEDIAGATE_MAX_HELD_REPLY_BYTES", s.max_held_reply_bytes))
        if s.max_held_reply_bytes < 1:
            raise ValueError("MEDIAGATE_MAX_HELD_REPLY_BYTES must be positive")
        s.request_retention_days = int(env.get("MEDIAGATE_REQUEST_RETENTION_DAYS", s.request_retention_days))
        if not 1 <= s.request_retention_days <= MAX_REQUEST_RETENTION_DAYS:
            raise ValueError(f"MEDIAGATE_REQUEST_RETENTION_DAYS must be between 1 and {MAX_REQUEST_RETENTION_DAYS}")
        s.avif_max_side_px = int(env.get("MEDIAGATE_AVIF_MAX_SIDE_PX", s.avif_max_side_px))
        if not 1 <= s.avif_max_side_px <= AVIF_MAX_SIDE_LIMIT_PX:
            raise ValueError(f"MEDIAGATE_AVIF_MAX_SIDE_PX must be between 1 and {AVIF_MAX_SIDE_LIMIT_PX}")
        return s


def _items(value: str, norm: Callable[[str], str]) -> tuple[str, ...]:
    """A comma-separated setting as a tuple of normalized, non-empty items."""
    return tuple(norm(v.strip()) for v in value.split(",") if v.strip())
