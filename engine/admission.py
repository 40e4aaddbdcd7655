"""Admission: a gateway-wide cap on requests in flight and on request body bytes in flight.

Each request's body stays in memory (decoded images, parsed JSON) until it is answered, so the bytes a
gateway holds are bounded by what it admits, not by what clients send. Over either cap a request gets a
503 `service_unavailable` with Retry-After at once — never a queue that grows, never an OOM.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from starlette.requests import Request
from starlette.types import Message

from mediagate import errors
from mediagate.errors import GatewayError

DEFAULT_MAX_CONCURRENT_REQUESTS = 1024              # requests being handled at once (health and metrics excepted)
DEFAULT_MAX_INFLIGHT_UPLOAD_BYTES = 512 * 1024 * 1024  # body bytes of all requests in flight together
BUSY_RETRY_AFTER_S = 1


def _busy(what: str) -> GatewayError:
    return GatewayError(503, f"The gateway is at its limit of {what}; retry shortly.", "service_unavailable",
                        "service_unavailable", None, {"Retry-After": str(BUSY_RETRY_AFTER_S)})


class Admission:
    def __init__(self, max_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
                 max_upload_bytes: int = DEFAULT_MAX_INFLIGHT_UPLOAD_BYTES) -> None:
        self.max_requests, self.max_upload_bytes = max_requests, max_upload_bytes
        self.requests = 0
        self.upload_bytes = 0

    @contextlib.contextmanager
    def admit(self, request: Request) -> Iterator[Request]:
        """The request, admitted, with a body reader that counts against the upload budget; the budget
        is reserved up front from Content-Length (a chunked body reserves as it arrives) and given back
        when the request is answered."""
        if self.requests >= self.max_requests:
            raise _busy(f"{self.max_requests} concurrent requests")
        held = 0

        def take(n: int) -> None:
            nonlocal held
            if held + n > self.max_upload_bytes:
                raise errors.too_large(self.max_upload_bytes)  # could never be admitted, whatever the load
            if self.upload_bytes + n > self.max_upload_bytes:
                raise _busy(f"{self.max_upload_bytes} upload bytes in flight")
            self.upload_bytes += n
            held += n

        declared = request.headers.get("content-length", "")
        self.requests += 1
        try:
            if declared.isdigit() and int(declared) > 0:
                take(int(declared))
            seen = 0
            receive = request.receive

            async def counted() -> Message:
                nonlocal seen
                message = await receive()
                seen += len(message.get("body", b""))
                if seen > held:
                    take(seen - held)
                return message
            yield Request(request.scope, counted)
        finally:
            self.requests -= 1
            self.upload_bytes -= held
