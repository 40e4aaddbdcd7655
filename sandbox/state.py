"""Mutable simulator state: queued faults, base latency, request log, served files.

Everything here is touched only from the event loop thread, so no locking.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

REQUEST_LOG_SIZE = 200
FILE_STORE_SIZE = 512


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

    def put(self, data: bytes, ext: str, content_type: str) -> str:
        """Store bytes and return the file name (``<id>.<ext>``) to serve them under."""
        name = f"img-{secrets.token_hex(12)}.{ext}"
        self._files[name] = (data, content_type)
        while len(self._files) > self.capacity:
            self._files.popitem(last=False)
        return name

    def get(self, name: str) -> tuple[bytes, str] | None:
        return self._files.get(name)

    def __len__(self) -> int:
        return len(self._files)


class SimState:
    """The state one simulator app instance works from."""

    def __init__(self, latency_ms: float = 0.0) -> None:
        self.initial_latency_ms = float(latency_ms)
        self.latency_ms = float(latency_ms)
        self.faults: deque[QueuedFault] = deque()
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.files = FileStore()

    def queue_fault(self, spec: str, count: int, protocol: str | None) -> QueuedFault:
        fault = QueuedFault(spec=spec, protocol=protocol, remaining=count)
        self.faults.append(fault)
        return fault

    def take_fault(self, protocol: str) -> str | None:
        """Consume one use of the oldest queued fault that matches ``protocol``."""
        for fault in self.faults:
            if fault.protocol in (None, protocol):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault.spec
        return None

    def reset(self) -> None:
        """Back to how the app started: no faults, initial latency, empty log."""
        self.faults.clear()
        self.requests.clear()
        self.latency_ms = self.initial_latency_ms


STATE: web.AppKey[SimState] = web.AppKey("sandbox_state", SimState)
LOG_ENTRY: web.RequestKey[dict[str, Any]] = web.RequestKey("sandbox_log_entry", dict)
# (parsed_ok, value) of a protocol request's JSON body, parsed once by the app middleware.
JSON_BODY: web.RequestKey[tuple[bool, Any]] = web.RequestKey("sandbox_json_body", tuple)


def get_state(request: web.Request) -> SimState:
    """The state of the app serving ``request`` (``config_dict`` also works from sub-apps)."""
    return request.config_dict[STATE]
