"""Render a provider request from its templates and send it; fetch provider-hosted outputs.

One pooled aiohttp session per provider keeps connections alive. Transport failures become normalized
`UpstreamError`s here (timeout, unreachable, dropped), each saying whether the request was sent: a failure
before any byte was written (refused, DNS, TLS, connect timeout) cannot have been billed; one after may
have been, so the router must not resend it elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import hashlib
import io
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from mediagate import errormap, jsonbody, replybudget, replyskip, reqctx, sigv4
from mediagate.errors import UpstreamError
from mediagate.provider import Operation, Provider

MAX_UPSTREAM_BODY_BYTES = 256 * 1024 * 1024   # a reply larger than this is refused, not buffered
MAX_FETCH_BYTES = 64 * 1024 * 1024           # one provider-hosted output file
MAX_FETCH_REDIRECTS = 3
URL_CACHE_ENTRIES = 4096                      # rendered upstream URLs kept quoted (url_for)
FETCH_TIMEOUT_S = 60.0
SANDBOX_SECRET = "sandbox"                   # what simulators get instead of a real key
REDACTED = "***"


@dataclass(frozen=True)
class Target:
    """Where and as whom one provider is called for this request."""

    base_url: str
    secrets: dict[str, str | None]
    sandbox: bool
    endpoints: dict[str, str] = field(default_factory=dict)   # the provider's other named base URLs, resolved


@dataclass
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, str]
    json: Any
    secret_headers: frozenset[str] = field(default_factory=frozenset)
    multipart: bool = False
    reply_skip: frozenset[str] = frozenset()   # top-level members of the JSON reply dropped unread (replyskip)
    signer: sigv4.Credentials | None = None   # signed with SigV4 when sent, over the bytes sent

    def redacted(self) -> dict[str, Any]:
        """The request as an operator may see it: auth header values masked, file parts summarized."""
        headers = {k: (REDACTED if k in self.secret_headers else v) for k, v in self.headers.items()}
        if self.signer is not None:
            headers["Authorization"] = (f"{REDACTED} (AWS SigV4, service {self.signer.service}, region "
                                        f"{self.signer.region}; signed when sent)")
        body = _summarize(self.json)
        return {"method": self.method, "url": self.url, "query": dict(self.query), "headers": headers,
                "multipart" if self.multipart else "json": body}

    def form(self) -> aiohttp.FormData:
        """The multipart body: image dicts (or lists of them) become file parts, the rest text fields.
        File parts are sent from the image's own bytes, a slice at a time: no copy of an upload."""
        form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
        for name, value in (self.json or {}).items():
            for v in (value if isinstance(value, list) and value and all(_is_file(x) for x in value) else [value]):
                if _is_file(v):
                    form.add_field(name, BytesPart(v["bytes"], v.get("mime")), filename=v.get("filename", "file"))
                elif isinstance(v, (Mapping, list)):
                    form.add_field(name, jsonbody.dumps(v).decode(), content_type="application/json")
                elif isinstance(v, bool):
                    form.add_field(name, "true" if v else "false")
                else:
                    form.add_field(name, str(v))
        return form


def _is_file(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("bytes"), (bytes, bytearray))


def _summarize(value: Any) -> Any:
    if _is_file(value):
        return f"<{len(value['bytes'])} bytes {value.get('mime', '')}>"
    if isinstance(value, Mapping):
        return {k: _summarize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_summarize(v) for v in value]
    if isinstance(value, str) and len(value) > 200:
        return value[:80] + f"...<{len(value)} chars>"
    return value


PART_SLICE_BYTES = 256 * 1024   # a file part is handed to the transport this much at a time


class BytesPart(aiohttp.payload.Payload):
    """A multipart file part written from memoryview slices of the bytes themselves. (aiohttp's bytes
    payload hands the transport the whole buffer at once; its BytesIO payload copies a shared buffer —
    37 MB images made that a quarter-second stall on the loop.)"""

    def __init__(self, data: bytes, content_type: str | None) -> None:
        super().__init__(data, content_type=content_type or "application/octet-stream")
        self._size = len(data)

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        view = memoryview(self._value)
        if content_length is not None:
            view = view[:content_length]
        for i in range(0, len(view), PART_SLICE_BYTES):
            await writer.write(view[i:i + PART_SLICE_BYTES])
            await asyncio.sleep(0)   # aiohttp's write returns without yielding while the socket takes the bytes

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return bytes(self._value)


class JsonPayload(aiohttp.payload.Payload):
    """A JSON request body serialised before aiohttp sees it: small bodies as one bytes object, bodies
    with big strings (base64 images) as pieces whose length is measured in a worker thread and whose
    big strings are encoded a slice at a time while being sent — no whole copy of the body exists."""

    def __init__(self, pieces: list[bytes | str], size: int) -> None:
        super().__init__(pieces, content_type="application/json")
        self._pieces, self._size = pieces, size

    async def sha256(self) -> str:
        """The hex SHA-256 of the bytes `write` sends (off the loop when there are big strings to encode)."""
        def digest() -> str:
            h = hashlib.sha256()
            for chunk in jsonbody.iter_bytes(self._pieces):
                h.update(chunk)
            return h.hexdigest()
        return digest() if len(self._pieces) == 1 else await jsonbody.off_loop(digest)

    @classmethod
    async def of(cls, value: Any) -> "JsonPayload":
        pieces = jsonbody.parts(value)
        if len(pieces) == 1:
            return cls(pieces, len(pieces[0]))
        return cls(pieces, await jsonbody.off_loop(lambda: sum(len(c) for c in jsonbody.iter_bytes(pieces))))

    async def write(self, writer: Any) -> None:
        for chunk in jsonbody.iter_bytes(self._pieces):
            await writer.write(chunk)
            await asyncio.sleep(0)   # else a fast reader takes a 250 MB body in one loop step (197 ms measured)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        await self.write(writer)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(jsonbody.iter_bytes(self._pieces)).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"".join(jsonbody.iter_bytes(self._pieces))


async def body_of(req: UpstreamRequest) -> dict[str, Any]:
    """aiohttp keyword arguments for the request's body (none when it has none)."""
    if req.multipart:
        return {"data": req.form()}
    if req.json is None:
        return {}
    return {"data": await JsonPayload.of(req.json)}


@dataclass
class UpstreamReply:
    status: int
    headers: dict[str, str]
    body: bytes
    json: Any


def _merge_into(body: Any, path: tuple[str, ...], extra: dict[str, Any]) -> Any:
    """Merge the caller's unknown fields at `path`, objects key by key; values the templates set win
    (`passthrough_collisions` names the ones that lost, for the caller's adjustments)."""
    if not extra or not isinstance(body, dict):
        return body
    body = dict(body)  # rendered constants are shared between requests: copy what is written to
    node = body
    for key in path:
        nxt = node.get(key)
        node[key] = nxt = dict(nxt) if isinstance(nxt, dict) else {}
        node = nxt
    _merge(node, extra, "", None)
    return body


def _merge(node: dict[str, Any], extra: Mapping[str, Any], prefix: str,
           clashes: list[tuple[str, Any, Any]] | None) -> None:
    for k, v in extra.items():
        if k not in node:
            node[k] = v
        elif isinstance(node[k], dict) and isinstance(v, dict):
            node[k] = dict(node[k])
            _merge(node[k], v, f"{prefix}{k}.", clashes)
        elif node[k] != v and clashes is not None:
            clashes.append((prefix + k, v, node[k]))


def passthrough_collisions(body: Any, path: tuple[str, ...], extra: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted field, caller's value, template's value) for each unknown field the template sets otherwise."""
    node = body
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return []
    clashes: list[tuple[str, Any, Any]] = []
    _merge(dict(node), extra, "", clashes)
    return clashes


def _strings(renderers: dict[str, Any], ctx: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in ((k, r(ctx)) for k, r in renderers.items()) if v is not None and v != ""}


_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")


@functools.lru_cache(maxsize=URL_CACHE_ENTRIES)   # a route renders the same path on every request: quoting it was 2-3 % of a request
def url_for(base_url: str, path: str) -> str:
    """The base URL and a rendered path, each segment URL-encoded; a valid `%XX` escape (a template's own
    `| urlquote`) is kept as written, so an encoded `/` stays inside its segment."""
    return base_url + "/".join("".join(p if _ESCAPE.fullmatch(p) else quote(p, safe=":@$,;=+!*'()~.-_")
                                       for p in _ESCAPE.split(part)) for part in path.split("/"))


def build(provider: Provider, target: Target, ctx: dict[str, Any], method: str, url: str,
          headers: dict[str, Any], query: dict[str, Any], body: Any,
          sign_as: Mapping[str, Any] | None = None) -> UpstreamRequest:
    """A request to `url` carrying the provider's auth (headers and query) for this target; `sign_as`
    overrides the SigV4 scope (an endpoint's `sigv4`, e.g. S3's service)."""
    secret_ctx = {**ctx, "secrets": target.secrets, "config": provider.config}
    auth_headers = _strings(provider.auth_headers, secret_ctx)
    all_headers = {**_strings(headers, ctx), **auth_headers}
    all_query = {**_strings(query, ctx), **_strings(provider.auth_query, secret_ctx)}
    request = UpstreamRequest(method, url, all_headers, all_query, body, frozenset(auth_headers))
    if provider.sigv4 is not None:
        creds = credentials(provider, secret_ctx, sign_as or {})
        if creds.access_key_id:   # no key id configured: the provider's other auth (a bearer key) stands alone
            request.signer = creds
    return request


def credentials(provider: Provider, secret_ctx: dict[str, Any], sign_as: Mapping[str, Any]) -> sigv4.Credentials:
    spec = provider.sigv4
    assert spec is not None
    def text(r: Any) -> str:
        value = r(secret_ctx) if r is not None else None
        return "" if value is None else str(value)
    return sigv4.Credentials(
        access_key_id=text(spec.access_key_id), secret_access_key=text(spec.secret_access_key),
        region=str(sign_as.get("region") or text(spec.region)), service=str(sign_as.get("service") or text(spec.service)),
        session_token=text(spec.session_token) or None,
        content_sha256_header=bool(sign_as.get("content_sha256_header", spec.content_sha256_header)),
        path_encoded_once=bool(sign_as.get("path_encoded_once", spec.path_encoded_once)))


async def prepared(req: UpstreamRequest) -> tuple[str | URL, dict[str, str], dict[str, str] | None, dict[str, Any]]:
    """(url, headers, query, body kwargs) to hand aiohttp. A SigV4 request is signed here, over the body
    bytes about to be written, and its URL is passed already encoded so that what is signed is what is sent."""
    body = await body_of(req)
    if req.signer is None:
        return req.url, req.headers, req.query or None, body
    payload = body.get("data")
    digest = await payload.sha256() if isinstance(payload, JsonPayload) else sigv4.EMPTY_SHA256
    url = str(URL(req.url).update_query(req.query)) if req.query else req.url
    headers = dict(req.headers)
    if isinstance(payload, JsonPayload) and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"   # what aiohttp would add, set first so it is signed
    signed = sigv4.sign(req.method, url, headers, digest, req.signer)
    return URL(signed.url, encoded=True), {**headers, **signed.headers}, None, body


def render(provider: Provider, op: Operation, ctx: dict[str, Any], target: Target) -> UpstreamRequest:
    ctx = {**ctx, "config": provider.config}
    body = op.json(ctx) if op.json is not None else None
    if op.passthrough_into is not None:
        body = _merge_into(body, op.passthrough_into, ctx["extra"])
    headers = {**op.headers, **(op.job.submit_headers if op.job else {})}
    request = build(provider, target, ctx, op.method, url_for(target.base_url, str(op.path(ctx))), headers, op.query, body)
    request.multipart = op.multipart
    request.reply_skip = op.reply_skip
    if op.idempotency_header and ctx.get("idempotency_key"):
        request.headers[op.idempotency_header] = ctx["idempotency_key"]
    if op.idempotency_field and ctx.get("idempotency_key") and isinstance(body, dict):
        request.json = {**body, op.idempotency_field: ctx["idempotency_key"]}
    return request


INLINE_RENDER_BYTES = 1024 * 1024    # a context carrying more input image bytes is rendered in a worker thread


async def render_async(provider: Provider, op: Operation, ctx: dict[str, Any], target: Target) -> UpstreamRequest:
    """`render`, off the loop when the inputs are big: templates read `b64` / `data_url` synchronously and
    those are made on first read, so rendering in a thread makes exactly the encodings this route uses."""
    heavy = sum(len(i["bytes"]) for i in (ctx.get("images") or ()))
    if ctx.get("mask") is not None:   # a mask may be read as `edit_area_b64`, a pixel conversion: never on the loop
        heavy += INLINE_RENDER_BYTES + len(ctx["mask"]["bytes"])
    if heavy <= INLINE_RENDER_BYTES:
        return render(provider, op, ctx, target)
    return await jsonbody.off_loop(render, provider, op, ctx, target)


# Raised by the connector while opening a connection, before the request is written: ClientConnectorError
# covers refused connections, DNS (ClientConnectorDNSError), proxies and TLS (ClientSSLError,
# ClientConnectorSSLError, ClientConnectorCertificateError are subclasses); ConnectionTimeoutError is the
# connect timeout (aiohttp client.py `_connect_and_send_request`). Everything else (ServerDisconnectedError,
# ClientOSError on a reset, ClientPayloadError, SocketTimeoutError, the total timeout) is judged by `Written`.
NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


@dataclass
class Written:
    """Set once aiohttp hands the request's headers to the connection (its `on_request_headers_sent` trace
    signal): from then on the provider may have received the request."""

    sent: bool = False


async def _on_headers_sent(session: aiohttp.ClientSession, ctx: Any, params: Any) -> None:
    flag = ctx.trace_request_ctx
    if isinstance(flag, Written):
        flag.sent = True


_TRACE = aiohttp.TraceConfig()
_TRACE.on_request_headers_sent.append(_on_headers_sent)


def was_sent(exc: BaseException, written: Written) -> bool:
    return written.sent and not isinstance(exc, NOT_SENT_ERRORS)


def _transport_error(provider: Provider, exc: BaseException, timed_out: str, written: Written) -> UpstreamError:
    sent = was_sent(exc, written)
    if isinstance(exc, asyncio.TimeoutError) and sent:
        return errormap.make("upstream_timeout", f"{provider.name} {timed_out}.")
    if isinstance(exc, asyncio.TimeoutError):
        return errormap.make("upstream_unavailable", f"{provider.name} could not be reached in time (not sent).", sent=False)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return errormap.make("upstream_unavailable", f"{provider.name} closed the connection mid-reply.")
    if not sent:
        return errormap.make("upstream_unavailable", f"{provider.name} could not be reached ({type(exc).__name__}; "
                             "not sent).", sent=False)
    return errormap.make("upstream_unavailable", f"{provider.name} dropped the connection after the request was sent "
                         f"({type(exc).__name__}).")


def same_origin_or(url: str, base_url: str, host_patterns: Any) -> bool:
    """`url` is on `base_url`'s host (and scheme), or https on a host matching one of the patterns."""
    u, base = urlsplit(url), urlsplit(base_url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return False
    if u.netloc == base.netloc:
        return u.scheme == base.scheme
    return u.scheme == "https" and any(fnmatch.fnmatchcase(u.hostname, p) for p in host_patterns)


def output_url_allowed(provider: Provider, target: Target, url: str) -> bool:
    return same_origin_or(url, target.base_url, () if target.sandbox else provider.output_hosts)


class Transport:
    """Connection pools per provider, created lazily inside the running loop."""

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, provider: Provider) -> aiohttp.ClientSession:
        s = self._sessions.get(provider.id)
        if s is None or s.closed:
            connector = aiohttp.TCPConnector(limit=provider.max_connections, ttl_dns_cache=300)
            s = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                      json_serialize=lambda v: jsonbody.dumps(v).decode(), trace_configs=[_TRACE])
            self._sessions[provider.id] = s
        return s

    async def close(self) -> None:
        for s in self._sessions.values():
            await s.close()
        self._sessions.clear()

    async def send(self, provider: Provider, req: UpstreamRequest, written: Written | None = None) -> UpstreamReply:
        """The reply; `written` (the caller's, to judge a cancellation too) hears when the request went out."""
        written = Written() if written is None else written
        timeout = aiohttp.ClientTimeout(total=provider.timeout_s)
        try:
            url, headers, query, body = await prepared(req)
            with reqctx.upstream_wait():
                async with self.session(provider).request(
                        req.method, url, headers=headers, params=query, timeout=timeout,
                        trace_request_ctx=written, **body) as resp:
                    return await read_reply(resp, req.reply_skip)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(provider, exc, f"did not answer within {provider.timeout_s:g} s", written) from None

    @contextlib.asynccontextmanager
    async def stream(self, provider: Provider, req: UpstreamRequest) -> AsyncIterator[aiohttp.ClientResponse]:
        """The open upstream response, for relaying as it arrives; leaving the block closes the
        connection, which is how a caller's disconnect reaches the provider."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=provider.timeout_s)
        written = Written()
        try:
            url, headers, query, body = await prepared(req)
            with reqctx.upstream_wait():   # the whole relay: its pace is the provider's
                async with self.session(provider).request(req.method, url, headers=headers, params=query,
                                                          timeout=timeout, trace_request_ctx=written,
                                                          **body) as resp:
                    yield resp
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(provider, exc, "stopped answering", written) from None

    async def fetch(self, provider: Provider, target: Target, url: str, max_bytes: int = MAX_FETCH_BYTES,
                    timeout_s: float = FETCH_TIMEOUT_S) -> bytes:
        """Download one provider-hosted output: only from the provider's own host (with its credentials,
        as some providers require) or its declared output hosts (without), over the same scheme — a reply
        cannot make the gateway fetch anything else."""
        if not output_url_allowed(provider, target, url):
            raise errormap.make("upstream_malformed", f"{provider.name} named an output URL on a host it is not trusted for.")
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            for _ in range(MAX_FETCH_REDIRECTS + 1):
                headers: dict[str, str] = {}
                send_url: str | URL = url
                if urlsplit(url).netloc == urlsplit(target.base_url).netloc:  # credentials only to the provider itself
                    request = build(provider, target, {}, "GET", url, {}, {}, None)
                    send_url, headers, query, _ = await prepared(request)
                    send_url = URL(str(send_url)).update_query(query) if query else send_url
                with reqctx.upstream_wait():
                    async with self.session(provider).get(send_url, headers=headers, timeout=timeout, allow_redirects=False) as resp:
                        if resp.status in (301, 302, 303, 307, 308) and "location" in resp.headers:
                            url = str(URL(url).join(URL(resp.headers["location"])))
                            if not output_url_allowed(provider, target, url):
                                raise errormap.make("upstream_malformed", f"{provider.name} redirected an output to an untrusted host.")
                            continue
                        if resp.status != 200:
                            raise errormap.make("upstream_error", f"{provider.name} output URL answered {resp.status}.", resp.status)
                        reserved = min(resp.content_length or 0, max_bytes)
                        await replybudget.take(reserved)   # a downloaded output is held like a reply
                        data = await _read_capped(resp, max_bytes)
                        replybudget.grow(len(data) - reserved)
                        return data
            raise errormap.make("upstream_malformed", f"{provider.name} redirected an output too many times.")
        except asyncio.TimeoutError:
            raise errormap.make("upstream_timeout", f"{provider.name} output download timed out.") from None
        except aiohttp.ClientError as exc:
            raise errormap.make("upstream_unavailable", f"{provider.name} output download failed ({type(exc).__name__}).") from None


BIG_REPLY_BYTES = 1024 * 1024       # a reply this big (or of unknown length) waits for one of the slots below
BIG_REPLY_SLOTS = 4                 # big replies read and parsed at once, gateway-wide; the rest wait unread, in
                                    # their sockets (TCP pushes back on the provider), not in memory
class LoopSlots:
    """A gateway-wide cap of `n` at once, as one semaphore per running event loop (one gateway per loop:
    tests run several, each in its own)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()

    def __call__(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slots = self._by_loop.get(loop)
        if slots is None:
            slots = self._by_loop[loop] = asyncio.Semaphore(self.n)
        return slots


_big_reply_slots = LoopSlots(BIG_REPLY_SLOTS)


async def read_reply(resp: aiohttp.ClientResponse, skip: frozenset[str] = frozenset()) -> UpstreamReply:
    """The whole reply, parsed. Big ones take a slot: 200 big replies at once are then 4 in memory
    (plus their parsed results), not 200 raw bodies queued for a worker thread. The top-level members
    named in `skip` are dropped as the bytes arrive (mediagate.replyskip)."""
    headers = {k.lower(): v for k, v in resp.headers.items()}
    if resp.content_length is not None and resp.content_length <= BIG_REPLY_BYTES:
        body = await _read_capped(resp, MAX_UPSTREAM_BODY_BYTES, skip)
        return UpstreamReply(resp.status, headers, body, await _parse_json(body))
    reserved = resp.content_length or BIG_REPLY_BYTES
    await replybudget.take(reserved)        # held until the request's outputs are delivered
    async with _big_reply_slots():
        body = await _read_capped(resp, MAX_UPSTREAM_BODY_BYTES, skip)
        replybudget.grow(len(body) - reserved)
        return UpstreamReply(resp.status, headers, body, await _parse_json(body))


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, skip: frozenset[str] = frozenset()) -> bytes:
    """The body, gathered in one buffer that becomes the bytes object without a copy (BytesIO.getvalue):
    joining a list of chunks would be a second whole copy, made on the loop. With `skip`, `limit` counts
    the bytes kept: what is skipped is never held (its reading is bounded by the provider's timeout)."""
    declared = resp.content_length
    if declared is not None and declared > limit and not (skip and _is_json(resp)):
        raise errormap.make("upstream_malformed", f"The provider reply is larger than {limit} bytes.")
    skipper = replyskip.ReplySkipper(skip) if skip and _is_json(resp) else None   # a file reply is never cut
    buf = io.BytesIO()   # grows by realloc, which moves big blocks by remapping pages, not copying them; not
    total = 0            # sized up front: zero-filling a 17 MB buffer at once stalled the loop ~30 ms per reply
    async for chunk in resp.content.iter_chunked(1 << 16):
        if skipper is not None:
            chunk = skipper.feed(chunk)
        total += len(chunk)
        if total > limit:
            raise errormap.make("upstream_malformed", f"The provider reply is larger than {limit} bytes.")
        buf.write(chunk)
    buf.truncate(total)
    return buf.getvalue()


def _is_json(resp: aiohttp.ClientResponse) -> bool:
    return resp.content_type == "application/json" or resp.content_type.endswith("+json")


async def _parse_json(body: bytes) -> Any:
    """The reply as JSON (None when it is not); big replies are parsed off the loop, in slices."""
    if not body:
        return None
    try:
        return await jsonbody.loads_async(body)
    except (ValueError, UnicodeDecodeError):
        return None


def reply_error(provider: Provider, reply: UpstreamReply) -> UpstreamError:
    """A non-2xx reply through the provider's error rules."""
    return errormap.classify(provider.errors, reply.status, reply.headers, reply.json)


def check_reply(provider: Provider, reply: UpstreamReply) -> None:
    """Raise the normalized error for a non-2xx reply, or for a 2xx one that an error rule naming that status
    recognises as an error (an error code inside a successful reply)."""
    if not 200 <= reply.status < 300:
        raise reply_error(provider, reply)
    err = errormap.on_success(provider.errors, reply.status, reply.headers, reply.json)
    if err is not None:
        raise err
