"""Mutable simulator state: queued faults, base latency, job durations, streaming chunk
delay, request log, served files, async jobs (fal requests, Replicate predictions, video
jobs, Veo operations) and issued OAuth tokens.

Everything here is touched only from the event loop thread, so no locking.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

REQUEST_LOG_SIZE = 200
FILE_STORE_SIZE = 512
JOB_STORE_SIZE = 1024
DEFAULT_JOB_MS = 300.0  # how long a fal request / Replicate prediction runs unless configured
DEFAULT_VIDEO_JOB_MS = 1000.0  # how long a video job (Sora, Veo, fal/Replicate video apps) runs
DEFAULT_CHUNK_MS = 20.0  # delay between streamed chat completion chunks

T = TypeVar("T")


@dataclass
class QueuedFault:
    """A control-API fault waiting for its next ``remaining`` matching requests."""

    spec: str
    protocol: str | None
    remaining: int

    def as_dict(self) -> dict[str, Any]:
        return {"fault": self.spec, "protocol": self.protocol, "remaining": self.remaining}


class FileStore:
    """In-memory bounded store behind the URLs the OpenAI simulator hands out."""

    def __init__(self, capacity: int = FILE_STORE_SIZE) -> None:
        self.capacity = capacity
        self._files: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    def put(self, data: bytes, ext: str, content_type: str, prefix: str = "img") -> str:
        """Store bytes and return the file name (``<prefix>-<id>.<ext>``) to serve them under."""
        name = f"{prefix}-{secrets.token_hex(12)}.{ext}"
        self._files[name] = (data, content_type)
        while len(self._files) > self.capacity:
            self._files.popitem(last=False)
        return name

    def get(self, name: str) -> tuple[bytes, str] | None:
        return self._files.get(name)

    def __len__(self) -> int:
        return len(self._files)


class BoundedStore(Generic[T]):
    """An insertion-ordered dict that forgets its oldest entries past ``capacity``."""

    def __init__(self, capacity: int = JOB_STORE_SIZE) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, T] = OrderedDict()

    def put(self, key: str, value: T) -> T:
        self._items[key] = value
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def pop(self, key: str) -> T | None:
        return self._items.pop(key, None)

    def values(self) -> list[T]:
        """A snapshot of the entries, oldest first."""
        return list(self._items.values())

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class SimState:
    """The state one simulator app instance works from."""

    def __init__(
        self,
        latency_ms: float = 0.0,
        job_ms: float = DEFAULT_JOB_MS,
        video_job_ms: float = DEFAULT_VIDEO_JOB_MS,
        chunk_ms: float = DEFAULT_CHUNK_MS,
    ) -> None:
        self.initial_latency_ms = float(latency_ms)
        self.latency_ms = float(latency_ms)
        self.initial_job_ms = float(job_ms)
        self.job_ms = float(job_ms)
        self.initial_video_job_ms = float(video_job_ms)
        self.video_job_ms = float(video_job_ms)
        self.initial_chunk_ms = float(chunk_ms)
        self.chunk_ms = float(chunk_ms)
        self.faults: deque[QueuedFault] = deque()
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.posts: Counter[str] = Counter()   # "POST path" -> how many, beyond the log's window (submissions)
        self.files = FileStore()
        self.jobs: BoundedStore[Any] = BoundedStore()
        self.tokens: BoundedStore[float] = BoundedStore()  # access token -> expiry (epoch s)

    def issue_token(self, lifetime_s: int) -> str:
        """A new OAuth access token in Google's ``ya29.`` shape, valid for ``lifetime_s``."""
        token = f"ya29.sim-{secrets.token_urlsafe(32)}"
        self.tokens.put(token, time.time() + lifetime_s)
        return token

    def token_valid(self, token: str) -> bool:
        expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.time()

    def queue_fault(self, spec: str, count: int, protocol: str | None) -> QueuedFault:
        fault = QueuedFault(spec=spec, protocol=protocol, remaining=count)
        self.faults.append(fault)
        return fault

    def take_fault(self, protocol: str, usable: Callable[[str], bool] = lambda spec: True) -> str | None:
        """Consume one use of the oldest queued fault that matches ``protocol`` (and ``usable``)."""
        for fault in self.faults:
            if fault.protocol in (None, protocol) and usable(fault.spec):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault.spec
        return None

    def reset(self) -> None:
        """Back to how the app started: no faults, initial latency, job times and chunk delay,
        empty log and no jobs (issued tokens stay valid: a client caches them for an hour)."""
        self.faults.clear()
        self.requests.clear()
        self.posts.clear()
        self.jobs.clear()
        self.latency_ms = self.initial_latency_ms
        self.job_ms = self.initial_job_ms
        self.video_job_ms = self.initial_video_job_ms
        self.chunk_ms = self.initial_chunk_ms


STATE: web.AppKey[SimState] = web.AppKey("sandbox_state", SimState)
LOG_ENTRY: web.RequestKey[dict[str, Any]] = web.RequestKey("sandbox_log_entry", dict)
# (parsed_ok, value) of a protocol request's JSON body, parsed once by the app middleware.
JSON_BODY: web.RequestKey[tuple[bool, Any]] = web.RequestKey("sandbox_json_body", tuple)


def get_state(request: web.Request) -> SimState:
    """The state of the app serving ``request`` (``config_dict`` also works from sub-apps)."""
    return request.config_dict[STATE]


async def serve_file(request: web.Request) -> web.Response:
    """``GET /<protocol>/files/{name}``: an output file a simulator made (a provider's CDN or bucket stand-in)."""
    found = get_state(request).files.get(request.match_info["name"])
    if found is None:
        return web.Response(status=404, text="Not Found")
    return web.Response(body=found[0], content_type=found[1])
