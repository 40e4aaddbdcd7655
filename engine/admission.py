"""Admission: a gateway-wide cap on requests in flight and on request body bytes in flight.

Each request's body stays in memory (decoded images, parsed JSON) until it is answered, so the bytes a
gateway holds are bounded by what it admits, not by what clients send. Over either cap a request gets a
503 `service_unavailable` with Retry-After at once — never a queue that grows, never an OOM.
"""

from __future__ import annotations

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

    def enter(self, request: Request) -> "Ticket":
        """Admit `request`: its ticket carries a body reader that counts against the upload budget (reserved
        up front from Content-Length; a chunked body reserves as it arrives). The caller releases the ticket
        once the answer's last byte is sent or the caller left — not when the handler returns, since a
        streamed answer (chat, a big b64 body, a media file) is still being produced after that."""
        if self.requests >= self.max_requests:
            raise _busy(f"{self.max_requests} concurrent requests")
        ticket = Ticket(self, request)
        declared = request.headers.get("content-length", "")
        self.requests += 1
        try:
            if declared.isdigit() and int(declared) > 0:
                ticket.take(int(declared))
        except BaseException:
            ticket.release()
            raise
        return ticket


class Ticket:
    """One admitted request's share of the caps; `release` gives it back (once, whatever calls it)."""

    def __init__(self, admission: Admission, request: Request) -> None:
        self.admission, self.held, self.seen, self.released = admission, 0, 0, False
        receive = request.receive

        async def counted() -> Message:
            message = await receive()
            self.seen += len(message.get("body", b""))
            if self.seen > self.held:
                self.take(self.seen - self.held)
            return message
        self.request = Request(request.scope, counted)

    def take(self, n: int) -> None:
        a = self.admission
        if self.held + n > a.max_upload_bytes:
            raise errors.too_large(a.max_upload_bytes)  # could never be admitted, whatever the load
        if a.upload_bytes + n > a.max_upload_bytes:
            raise _busy(f"{a.max_upload_bytes} upload bytes in flight")
        a.upload_bytes += n
        self.held += n

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission.requests -= 1
            self.admission.upload_bytes -= self.held
