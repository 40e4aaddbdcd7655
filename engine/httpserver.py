"""The HTTP edge: what uvicorn must enforce against slow and malformed clients, and how to run it so.

uvicorn (httptools) arms its keep-alive timer only after a response, so a client that opens a connection
and sends its request head slowly (slowloris) is held forever, and a request it cannot parse gets a
text/plain 400. `GatewayProtocol` closes a connection whose request head is not complete within
HEADER_TIMEOUT_S (a 408, OpenAI-shaped), refuses a head larger than MAX_HEADER_BYTES (431), and answers
unparseable requests with an OpenAI-shaped JSON 400. `BodyTimeout` (ASGI) ends a request whose body
stops arriving for BODY_IDLE_TIMEOUT_S (408). The CLI and the tests run uvicorn with UVICORN_OPTIONS.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mediagate.config import BODY_IDLE_TIMEOUT_S
from mediagate.errors import GatewayError

HEADER_TIMEOUT_S = 10.0             # a request head (request line + headers) must arrive within this
MAX_HEADER_BYTES = 64 * 1024        # a request head larger than this is refused (431)
KEEP_ALIVE_TIMEOUT_S = 5            # an idle keep-alive connection is closed after this (uvicorn's own timer)

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _error_bytes(status: int, code: str, message: str) -> bytes:
    body = json.dumps(GatewayError(status, message, "invalid_request_error", code).to_body()).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, _REASONS[status], len(body))) + body


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head deadline, a head size cap and JSON errors."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    max_header_bytes: int = MAX_HEADER_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._start_head()

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _end_head(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408, "request_timeout", f"The request head did not arrive within {self.header_timeout_s:g} s.")
        else:
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._end_head()
        self.transport.write(_error_bytes(status, code, message))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():  # still inside a head after this chunk
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, "request_header_too_large", f"The request head is larger than {self.max_header_bytes} bytes.")

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None and not self.transport.is_closing():  # idle, awaiting the next head
            self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "invalid_http", "The request is not valid HTTP/1.1.")


class BodyTimedOut(GatewayError):
    """The caller stopped sending its request body."""


class BodyTimeout:
    """ASGI middleware: while a request body is incomplete, each `receive` waits at most `idle_s`."""

    def __init__(self, app: ASGIApp, idle_s: float = BODY_IDLE_TIMEOUT_S) -> None:
        self.app = app
        self.idle_s = idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        done = False
        idle_s = self.idle_s

        async def timed() -> Message:
            nonlocal done
            if done:
                return await receive()
            try:
                async with asyncio.timeout(idle_s):
                    message = await receive()
            except TimeoutError:
                raise BodyTimedOut(408, f"The request body stopped arriving for {idle_s:g} s.", "invalid_request_error",
                                   "request_timeout", None, {"Connection": "close"}) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message
        await self.app(scope, timed, send)


UVICORN_OPTIONS: dict[str, Any] = {
    "http": GatewayProtocol,
    "timeout_keep_alive": KEEP_ALIVE_TIMEOUT_S,
}
"""What every uvicorn running the gateway is given (`uvicorn.run(app, **UVICORN_OPTIONS, ...)`)."""
