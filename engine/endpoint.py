"""The wrapper every HTTP endpoint goes through, and the small helpers handlers share.

`endpoint(name)` gives a handler its request id, host / origin / key checks, admission (requests and upload
bytes in flight, held until the answer's last byte is sent), error shaping, metrics and one log line — for a
streamed body once its last byte is sent.
Every error leaves through `error_response` as an OpenAI error object with the request id; nothing else
reaches a client. The endpoint families are in mediagate.api_images, api_videos, api_chat, api_models and
api_ops; mediagate.app puts them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.routing import Match, Route

from mediagate import auth, errors, jsonbody, metrics, origin, reqctx, textcheck
from mediagate.admission import Ticket
from mediagate.errors import GatewayError
from mediagate.media import Opened
from mediagate.runtime import Runtime

log = logging.getLogger("mediagate")
REQUEST_ID_HEADER = "X-Request-Id"
CLIENT_CLOSED_REQUEST = 499   # nginx's status for a caller that left before the answer; logged and counted as such
SANDBOX_HEADER = "x-mediagate-sandbox"
FLAG_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
SVG_MIME = "image/svg+xml"
SVG_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
               "X-Content-Type-Options": "nosniff"}
JSON_MEDIA_TYPE = "application/json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
Handler = Callable[[Request, Runtime], Awaitable[Response]]
T = TypeVar("T")


def new_request_id() -> str:
    """128 random bits, as uuid4's hex but a quarter of its cost (it is drawn two or three times a request)."""
    return f"req_{secrets.token_hex(16)}"

def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """One bytes body when small; a body holding big strings (base64 images) is streamed as it is
    encoded, a slice at a time, so no whole copy of it exists and the loop runs between slices."""
    pieces = jsonbody.parts(body)
    if len(pieces) == 1:
        return Response(pieces[0], status, headers, media_type="application/json")
    return StreamingResponse(jsonbody.stream(pieces), status, headers, media_type="application/json")

def error_response(err: GatewayError, request_id: str) -> Response:
    return json_response(err.to_body(), err.status, {**err.headers, REQUEST_ID_HEADER: request_id})

def require_json(request: Request, multipart_ok: bool) -> None:
    """A JSON endpoint serves only `application/json` (or `application/*+json`): a web page's simple
    cross-site POST (text/plain, form-urlencoded) never reaches a provider (CSRF)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == JSON_MEDIA_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return
    wanted = "application/json or multipart/form-data" if multipart_ok else JSON_MEDIA_TYPE
    got = f"'{media[:60]}'" if media else "no Content-Type"
    raise GatewayError(415, f"This endpoint takes {wanted}; the request has {got}.", "invalid_request_error",
                       "unsupported_media_type")

async def read_json(request: Request, limit: int, multipart_ok: bool = False) -> Any:
    require_json(request, multipart_ok)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise errors.invalid_request("The request body is empty; expected a JSON object.", None, "invalid_json")
    try:
        body = await jsonbody.loads_async(raw)
    except RecursionError:
        raise errors.invalid_request("The request body is nested too deeply.", None, "invalid_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        if "depth limit" in str(exc):
            raise errors.invalid_request("The request body is nested too deeply.", None, "invalid_json") from None
        raise errors.invalid_request(f"The request body is not valid JSON: {str(exc)[:200]}", None, "invalid_json") from None
    textcheck.check(body)
    return body

def endpoint(name: str, authenticated: bool = True, admitted: bool = True) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler: request id, gateway key, admission (concurrency and upload budget), error shaping,
    metrics and one log line — for a streamed body (chat SSE, a file) both once its last byte is sent."""
    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            rt: Runtime = request.app.state.runtime
            incoming = request.headers.get(REQUEST_ID_HEADER, "")
            request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
            ctx = reqctx.begin(request_id, name)
            # the history record's id: ours, never a caller's (a caller's id may repeat, or name another team's)
            ctx.details["record_id"] = request_id if request_id != incoming else new_request_id()
            ticket: Ticket | None = None
            try:
                if authenticated:
                    origin.check_host(request, rt.settings)
                    origin.check_origin(request, rt.settings)
                    await auth.authenticate(request, rt, name)
                    caller = auth.caller_of(request)
                    if caller.key is not None:
                        ctx.key, ctx.team = caller.key.get("name"), caller.team
                if admitted:
                    ticket = request.app.state.admission.enter(request)
                    response = await handler(ticket.request, rt)
                else:
                    response = await handler(request, rt)
                response.headers.update(auth.caller_of(request).rate_headers)
            except GatewayError as err:
                ctx.error_code = err.code
                response = error_response(err, request_id)
                with contextlib.suppress(GatewayError):  # the store is down: the spend stays reserved
                    await auth.settle_error(request, rt, err)
            except (ClientGone, ClientDisconnect):  # the caller left (mid-body or mid-work): nothing to answer
                ctx.error_code = "client_closed_request"
                response = Response(status_code=CLIENT_CLOSED_REQUEST)
            except Exception:  # the last line of defence: log it, never show it
                log.exception("unhandled error")
                ctx.error_code = "internal_error"
                response = error_response(errors.internal(), request_id)
            except BaseException:  # cancelled: nothing will be sent
                if ticket is not None:
                    ticket.release()
                raise
            response.headers[REQUEST_ID_HEADER] = request_id
            release = ticket.release if ticket is not None else None
            if isinstance(response, StreamingResponse):
                response.body_iterator = _to_last_byte(response.body_iterator, lambda: _finished(ctx, response, rt, request))
                return response if release is None else Held(response, release)
            # counted, logged and recorded once sent, as a streamed answer is: not between the caller and its answer
            return Held(response, release, lambda: _finished(ctx, response, rt, request))
        run.answers_every_error = True  # type: ignore[attr-defined]  # mediagate.app's ExactRoutes may call it directly
        return run
    return wrap

class Held(Response):
    """`response`, still counted against the admission caps while it is sent: `release` runs once its last
    byte is sent or sending stopped (the caller left, an error). A streamed answer — chat, a big b64 body, a
    media file — is produced after its handler returned, and holds its memory and upstream until then.
    `sent` (metrics, the log line, the history record) runs then too."""

    def __init__(self, response: Response, release: Callable[[], None] | None,
                 sent: Callable[[], None] | None = None) -> None:
        self.response, self.release, self.sent = response, release, sent
        self.status_code, self.raw_headers, self.background = response.status_code, response.raw_headers, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            if self.release is not None:
                self.release()
            if self.sent is not None:
                self.sent()

async def _to_last_byte(body: AsyncIterator[Any], done: Callable[[], None]) -> AsyncIterator[Any]:
    try:
        async for chunk in body:
            yield chunk
    finally:
        done()

def _finished(ctx: reqctx.RequestContext, response: Response, rt: Runtime, request: Request) -> None:
    """Count, time, log and record (mediagate.history) one answered request (from its start to now)."""
    elapsed = time.monotonic() - ctx.started
    provider = response.headers.get("x-mediagate-provider") or ctx.provider
    model = ctx.model if ctx.model is not None else response.headers.get("x-mediagate-model")
    status = response.status_code
    metrics.observe(ctx.endpoint, model, provider, metrics.outcome(status, ctx.error_code), elapsed, ctx.upstream_s())
    billed = response.headers.get("x-mediagate-cost")  # a chat's cost, or what a failure may have cost
    team = ctx.details.get("team")   # the caller's team once known ("default" for unrestricted keys and open gateways)
    if ctx.cost is not None:
        metrics.cost(model, provider, *ctx.cost, team=team)
    elif billed is not None:
        with contextlib.suppress(ValueError):
            metrics.cost(model, provider, float(billed), response.headers.get("x-mediagate-cost-currency", "USD"), team)
    if rt.history is not None:
        rt.history.record(request, ctx, response, model, provider)
    log.info("request", extra={"endpoint": ctx.endpoint, "model": model, "provider": provider, "status": status,
                               "error_code": ctx.error_code, "latency_ms": round(elapsed * 1000, 1)})

def flag(value: str | None, name: str) -> bool:
    """A switch in a query parameter or header: absent is off; any word but FLAG_WORDS is refused (400 naming
    it) rather than read as off, so `?dryRun=ture` never runs, and bills, a real generation."""
    if value is None:
        return False
    if value not in FLAG_WORDS:
        raise errors.invalid_request(f"'{name}' must be one of {', '.join(FLAG_WORDS)}; got {value[:40]!r}.", name)
    return FLAG_WORDS[value]

def query_flag(request: Request, name: str) -> bool:
    return flag(request.query_params.get(name), name)


def dry_run(request: Request) -> bool:
    return query_flag(request, "dryRun")

def sandbox_asked(request: Request) -> bool:
    return flag(request.headers.get(SANDBOX_HEADER), SANDBOX_HEADER)

class ClientGone(Exception):
    """The caller closed the connection; the work was cancelled (and upstream jobs with it)."""

async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it if the client disconnects first, so upstream jobs are cancelled too."""
    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise ClientGone()
    return task.result()

def file_response(opened: Opened, mime: str) -> Response:
    """Stream a stored file in chunks from whichever store holds it (never whole in memory)."""
    ttl_s = max(0, int(opened.expires_at - time.time()))
    headers = {"Cache-Control": f"private, max-age={min(300, ttl_s)}", "Content-Length": str(opened.size)}
    if mime == SVG_MIME:  # a provider's SVG may hold scripts: served from our origin, it must not run them
        headers.update(SVG_HEADERS)
    return StreamingResponse(opened.chunks, media_type=mime, headers=headers)

def request_id_of(request: Request) -> str:
    """The caller's request id when it is well formed, else a fresh one: every answer carries one."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    return incoming if _REQUEST_ID.match(incoming) else new_request_id()

async def not_found(request: Request, exc: Exception) -> Response:
    return error_response(errors.not_found(f"No endpoint {request.method} {request.url.path}."), request_id_of(request))

def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (routes of one path are split by method), for `Allow`."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)

async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 with `Allow` (RFC 9110 §15.5.6) listing what the path does serve."""
    allowed = allowed_methods(request)
    err = GatewayError(405, f"Method {request.method[:20]} is not allowed on {request.url.path[:200]}; it takes "
                       f"{', '.join(allowed)}.", "invalid_request_error", "method_not_allowed", None, {"Allow": ", ".join(allowed)})
    return error_response(err, request_id_of(request))
