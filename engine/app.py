"""The HTTP surface: OpenAI-shaped endpoints under /v1 and /openai/v1, media, health and metrics.

Handlers stay thin: read and bound the body, call the pipeline, shape the answer. Every error leaves
through `_error` as an OpenAI error object with the request id; nothing else reaches a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mediagate import (admin, admission, allocator, auth, chat, errors, forms, imaging, jobstore, jsonbody, metrics,
                       origin, pipeline, reload, reqctx, textcheck, videos, webhooks)
from mediagate.catalog import Catalog
from mediagate.config import Settings
from mediagate.errors import GatewayError
from mediagate.httpserver import BodyTimeout
from mediagate.jobrunner import JobRunner
from mediagate.keyfile import stored_secret
from mediagate.media import MEDIA_ROUTE, MediaGone, Opened, open_media
from mediagate.runtime import Runtime, sandboxed
from mediagate.stores import open_stores

log = logging.getLogger("mediagate")
PREFIXES = ("/v1", "/openai/v1")
REQUEST_ID_HEADER = "X-Request-Id"
CLIENT_CLOSED_REQUEST = 499   # nginx's status for a caller that left before the answer; logged and counted as such
SANDBOX_HEADER = "x-mediagate-sandbox"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
Handler = Callable[[Request, Runtime], Awaitable[Response]]
T = TypeVar("T")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """One bytes body when small; a body holding big strings (base64 images) is streamed as it is
    encoded, a slice at a time, so no whole copy of it exists and the loop runs between slices."""
    pieces = jsonbody.parts(body)
    if len(pieces) == 1:
        return Response(pieces[0], status, headers, media_type="application/json")
    return StreamingResponse(jsonbody.stream(pieces), status, headers, media_type="application/json")


def _error(err: GatewayError, request_id: str) -> Response:
    return _json(err.to_body(), err.status, {**err.headers, REQUEST_ID_HEADER: request_id})


JSON_MEDIA_TYPE = "application/json"


def _require_json(request: Request, multipart_ok: bool) -> None:
    """A JSON endpoint serves only `application/json` (or `application/*+json`): a web page's simple
    cross-site POST (text/plain, form-urlencoded) never reaches a provider (CSRF)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == JSON_MEDIA_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return
    wanted = "application/json or multipart/form-data" if multipart_ok else JSON_MEDIA_TYPE
    got = f"'{media[:60]}'" if media else "no Content-Type"
    raise GatewayError(415, f"This endpoint takes {wanted}; the request has {got}.", "invalid_request_error",
                       "unsupported_media_type")


async def _read_json(request: Request, limit: int, multipart_ok: bool = False) -> Any:
    _require_json(request, multipart_ok)
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
            request_id = incoming if _REQUEST_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
            ctx = reqctx.begin(request_id, name)
            try:
                if authenticated:
                    origin.check_host(request, rt.settings)
                    origin.check_origin(request, rt.settings)
                    await auth.authenticate(request, rt, name)
                if admitted:
                    with request.app.state.admission.admit(request) as counted:
                        response = await handler(counted, rt)
                else:
                    response = await handler(request, rt)
                response.headers.update(auth.caller_of(request).rate_headers)
            except GatewayError as err:
                ctx.error_code = err.code
                response = _error(err, request_id)
                with contextlib.suppress(GatewayError):  # the store is down: the spend stays reserved
                    await auth.settle_error(request, rt, err)
            except (ClientGone, ClientDisconnect):  # the caller left (mid-body or mid-work): nothing to answer
                ctx.error_code = "client_closed_request"
                response = Response(status_code=CLIENT_CLOSED_REQUEST)
            except Exception:  # the last line of defence: log it, never show it
                log.exception("unhandled error")
                ctx.error_code = "internal_error"
                response = _error(errors.internal(), request_id)
            response.headers[REQUEST_ID_HEADER] = request_id
            if isinstance(response, StreamingResponse):
                response.body_iterator = _to_last_byte(response.body_iterator, lambda: _finished(ctx, response))
            else:
                _finished(ctx, response)
            return response
        return run
    return wrap


async def _to_last_byte(body: AsyncIterator[Any], done: Callable[[], None]) -> AsyncIterator[Any]:
    try:
        async for chunk in body:
            yield chunk
    finally:
        done()


def _finished(ctx: reqctx.RequestContext, response: Response) -> None:
    """Count, time and log one answered request (from its start to now)."""
    elapsed = time.monotonic() - ctx.started
    provider = response.headers.get("x-mediagate-provider") or ctx.provider
    model = ctx.model if ctx.model is not None else response.headers.get("x-mediagate-model")
    status = response.status_code
    metrics.observe(ctx.endpoint, model, provider, metrics.outcome(status, ctx.error_code), elapsed, ctx.upstream_s())
    billed = response.headers.get("x-mediagate-cost")  # a chat's cost, or what a failure may have cost
    if ctx.cost is not None:
        metrics.cost(model, provider, *ctx.cost)
    elif billed is not None:
        with contextlib.suppress(ValueError):
            metrics.cost(model, provider, float(billed), response.headers.get("x-mediagate-cost-currency", "USD"))
    log.info("request", extra={"endpoint": ctx.endpoint, "model": model, "provider": provider, "status": status,
                               "error_code": ctx.error_code, "latency_ms": round(elapsed * 1000, 1)})


@endpoint("images.generations")
async def images_generations(request: Request, rt: Runtime) -> Response:
    body = await _read_json(request, rt.settings.max_body_bytes)
    sandbox = _sandbox_asked(request)
    if _dry_run(request):
        return _json(await pipeline.estimate(rt, body, sandbox))
    await auth.admit(request, rt, body, "generate", sandbox=sandbox)
    result = await _unless_disconnected(request, pipeline.generate(rt, body, origin.base_url(request, rt.settings), sandbox))
    await auth.settle(request, rt, result.body["metadata"]["cost"])
    return _json(result.body, 200, result.headers)


def _dry_run(request: Request) -> bool:
    return request.query_params.get("dryRun", "").lower() in ("1", "true", "yes")


def _sandbox_asked(request: Request) -> bool:
    return request.headers.get(SANDBOX_HEADER, "").lower() in ("1", "true", "on", "yes")


@endpoint("chat.completions")
async def chat_completions(request: Request, rt: Runtime) -> Response:
    body = await _read_json(request, rt.settings.max_body_bytes)
    if _dry_run(request):
        return _json(chat.estimate(rt, body, _sandbox_asked(request)))
    await auth.admit(request, rt, body, "chat", sandbox=_sandbox_asked(request))
    status, headers, reply = await chat.complete(rt, body, _sandbox_asked(request))
    await auth.settle(request, rt, headers.get("X-Mediagate-Cost"))  # a stream: the estimate stands
    if isinstance(reply, (dict, list)):
        return _json(reply, status, headers)
    return StreamingResponse(reply, status, {**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                             media_type="text/event-stream")


@endpoint("videos.create")
async def videos_create(request: Request, rt: Runtime) -> Response:
    """JSON, or multipart with an input_reference file part; 202 with a queued video object."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, refs, mask = await forms.read_edit_form(request, rt, operation="video", image_keys=("input_reference",))
        reference = forms.video_reference_parts(refs, mask)
    else:
        body, reference = forms.video_reference_json(await _read_json(request, rt.settings.max_body_bytes, multipart_ok=True))
    if _dry_run(request):
        return _json(await pipeline.estimate(rt, body, _sandbox_asked(request), "video"))
    await auth.admit(request, rt, body, "video", sandbox=_sandbox_asked(request))
    status, video = await videos.create(rt, body, reference, _sandbox_asked(request), auth.job_fields(request))
    if status == 202:
        auth.job_kept(request)
    else:  # an existing job answered (idempotency key): nothing new to pay for
        await auth.release(request, rt)
    return _json(video, status)


@endpoint("videos.get")
async def videos_get(request: Request, rt: Runtime) -> Response:
    return _json(videos.public(await videos.get(rt, request.path_params["video_id"])))


@endpoint("videos.list")
async def videos_list(request: Request, rt: Runtime) -> Response:
    q = request.query_params
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        raise errors.invalid_request("'limit' must be a whole number.", "limit") from None
    return _json(await videos.page(rt, q.get("after"), limit, q.get("order", "desc")))


@endpoint("videos.delete")
async def videos_delete(request: Request, rt: Runtime) -> Response:
    return _json(await videos.delete(rt, request.path_params["video_id"]))


@endpoint("videos.content")
async def videos_content(request: Request, rt: Runtime) -> Response:
    job = await videos.get(rt, request.path_params["video_id"])
    variant = request.query_params.get("variant", "video")
    if variant != "video":
        raise errors.invalid_request(f"variant '{variant[:40]}' is not available; this gateway serves the video itself.",
                                     "variant", "unsupported_value")
    if job["status"] != "completed":
        raise GatewayError(409, f"Video '{job['id']}' is {job['status']}; its content exists once it is completed.",
                           "invalid_request_error", "video_not_ready")
    try:
        index = int(request.query_params.get("index", "0"))
        output = job.get("outputs", [])[index]
    except (ValueError, IndexError):
        raise errors.invalid_request("'index' names no output of this video.", "index") from None
    try:
        opened = await rt.videos_media.open_own(output["name"])
    except MediaGone:
        raise GatewayError(410, "This video's file has expired and was deleted.", "invalid_request_error", "media_expired") from None
    return _file_response(opened, output.get("mime", "video/mp4"))


@endpoint("images.edits")
async def images_edits(request: Request, rt: Runtime) -> Response:
    """Multipart (the SDKs' way: image / image[] / mask parts) or JSON with data: or https image URLs."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, images, mask = await forms.read_edit_form(request, rt)
    else:
        body = await _read_json(request, rt.settings.max_body_bytes, multipart_ok=True)
        body, images, mask = forms.split_edit_json(body)
    sandbox = _sandbox_asked(request)
    if _dry_run(request):
        return _json(await pipeline.estimate(rt, body, sandbox, "edit", images, mask))
    await auth.admit(request, rt, body, "edit", images, mask, sandbox)
    work = pipeline.generate(rt, body, origin.base_url(request, rt.settings), sandbox, "edit", images, mask)
    result = await _unless_disconnected(request, work)
    await auth.settle(request, rt, result.body["metadata"]["cost"])
    return _json(result.body, 200, result.headers)


class ClientGone(Exception):
    """The caller closed the connection; the work was cancelled (and upstream jobs with it)."""


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
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


def _wants_schema(request: Request) -> bool:
    return request.query_params.get("schema", "").lower() in ("1", "true", "yes")


@endpoint("models.list")
async def list_models(request: Request, rt: Runtime) -> Response:
    created = request.app.state.started
    data = []
    for model in sorted(rt.catalog.models.values(), key=lambda m: m.id):
        obj = model.to_openai(created)
        if _wants_schema(request):
            obj["schemas"] = model.schemas()
        data.append(obj)
    return _json({"object": "list", "data": data})


@endpoint("models.get")
async def get_model(request: Request, rt: Runtime) -> Response:
    model, _ = rt.catalog.resolve(request.path_params["model_id"])
    obj = model.to_openai(request.app.state.started)
    if "lifecycle" in model.spec:
        obj["lifecycle"] = model.spec["lifecycle"]
    if _wants_schema(request):
        obj["schemas"] = model.schemas()
    return _json(obj)


@endpoint("media", authenticated=False)
async def media(request: Request, rt: Runtime) -> Response:
    """Signed URLs are their own credential: a browser or SDK downloads them without the gateway key."""
    try:
        opened = await rt.media.open(request.path_params["name"], request.query_params.get("sig", ""))
    except MediaGone as gone:
        if gone.reason == "expired":
            raise GatewayError(410, "This media URL has expired and its file was deleted.", "invalid_request_error", "media_expired") from None
        raise errors.not_found("No such media, or the URL signature is invalid.") from None
    return _file_response(opened, imaging.MIME_BY_EXT.get(opened.ext, "application/octet-stream"))


def _file_response(opened: Opened, mime: str) -> Response:
    """Stream a stored file in chunks from whichever store holds it (never whole in memory)."""
    ttl_s = max(0, int(opened.expires_at - time.time()))
    return StreamingResponse(opened.chunks, media_type=mime,
                             headers={"Cache-Control": f"private, max-age={min(300, ttl_s)}", "Content-Length": str(opened.size)})


@endpoint("healthz", authenticated=False, admitted=False)
async def healthz(request: Request, rt: Runtime) -> Response:
    return _json({"status": "ok"})


READY_STORE_TIMEOUT_S = 1.0


@endpoint("readyz", authenticated=False, admitted=False)
async def readyz(request: Request, rt: Runtime) -> Response:
    """200 while the gateway can serve; `degraded` (still 200: image and chat requests need no shared
    state) when the state store is unreachable, naming it."""
    store: dict[str, Any] = {"backend": rt.stores.backend, "ok": True}
    try:
        async with asyncio.timeout(READY_STORE_TIMEOUT_S):
            await rt.jobs.ping()
    except (jobstore.StoreUnavailable, TimeoutError) as exc:
        store = {**store, "ok": False, "error": "unreachable" if isinstance(exc, jobstore.StoreUnavailable) else "timeout"}
    return _json({"status": "ready" if store["ok"] else "degraded", "models": len(rt.catalog.models),
                  "providers": len(rt.catalog.providers), "sandbox": rt.sandbox_url is not None, "state_store": store,
                  "provider_health": rt.health.snapshot(),
                  "worker_pid": os.getpid()})  # which `serve --workers` process answered


@endpoint("metrics", admitted=False)
async def metrics_page(request: Request, rt: Runtime) -> Response:
    try:
        async with asyncio.timeout(READY_STORE_TIMEOUT_S):
            counts = await rt.jobs.counts()
    except (jobstore.StoreUnavailable, TimeoutError):
        counts = None   # the scrape still answers; mediagate_job_store_up says why the job gauges are missing
    return Response(metrics.render(counts, time.time()), media_type=metrics.CONTENT_TYPE)


@endpoint("openapi")
async def openapi(request: Request, rt: Runtime) -> Response:
    from mediagate.openapi import document
    return _json(document(rt.catalog))


def _request_id(request: Request) -> str:
    """The caller's request id when it is well formed, else a fresh one: every answer carries one."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    return incoming if _REQUEST_ID.match(incoming) else f"req_{uuid.uuid4().hex}"


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(errors.not_found(f"No endpoint {request.method} {request.url.path}."), _request_id(request))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    err = GatewayError(405, f"Method {request.method} is not allowed on {request.url.path}.", "invalid_request_error",
                       "method_not_allowed")
    return _error(err, _request_id(request))


def _stored_secret(path: Path) -> str:
    """The webhook signing secret, made once and kept (0600) so signatures stay verifiable across restarts."""
    return stored_secret(path, webhooks.new_secret)


def sandbox_notice(settings: Settings, catalog: Catalog, url: str) -> str:
    """The start-up line saying where the simulators are and which providers they serve."""
    served = [p.id for p in catalog.providers.values() if sandboxed(settings, p)]
    return (f"sandbox: simulators at {url}; serving "
            f"{', '.join(served) or 'no provider by default (X-Mediagate-Sandbox: 1 per request)'} (no provider keys set for them)")


def create_app(settings: Settings, catalog: Catalog, sandbox_starter: Callable[[], Awaitable[tuple[Any, str]]] | None = None,
               spec_paths: list[Path] | None = None) -> Starlette:
    """The ASGI app. `sandbox_starter` starts the simulators in this loop and returns (handle, base URL);
    the specs under `spec_paths` (default: the checkout) are watched and reloaded when they change."""
    url_media, video_media = open_media(settings, videos.VIDEO_TTL_S)
    runtime = Runtime(settings, catalog, url_media)
    runtime.videos_media = video_media

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        handle = None
        if sandbox_starter is not None and runtime.needs_sandbox():
            handle, runtime.sandbox_url = await sandbox_starter()
            if handle is not None:  # simulators started elsewhere (`serve --workers`) are announced there, once
                log.warning("%s", sandbox_notice(settings, catalog, runtime.sandbox_url))
        stores = open_stores(settings)
        runtime.stores, runtime.jobs, runtime.counters, runtime.health = stores, stores.jobs, stores.counters, stores.health
        runtime.job_finished = auth.job_finished
        runtime.runner = JobRunner(runtime)
        runtime.webhook_secret = settings.webhook_secret or _stored_secret(settings.state_dir / "webhook_secret")
        webhooks.check_secret(runtime.webhook_secret)
        try:
            resumed = await runtime.runner.scan()
        except jobstore.StoreUnavailable:
            resumed = 0
            log.warning("state store (%s) unreachable at start; video jobs resume when it is back", stores.backend)
        if resumed:
            log.warning("resumed %d unfinished video job(s)", resumed)
        tasks = [asyncio.create_task(runtime.media.sweeper()), asyncio.create_task(runtime.videos_media.sweeper()),
                 asyncio.create_task(webhooks.run(runtime.jobs, runtime.webhook_secret, runtime.fetch_policy)),
                 asyncio.create_task(runtime.runner.run_forever()), asyncio.create_task(allocator.trimmer())]
        if hasattr(runtime.health, "sync"):
            tasks.append(asyncio.create_task(runtime.health.sync()))
        if settings.reload_interval_s > 0:
            def swap(fresh: Catalog) -> None:
                runtime.catalog = fresh
            tasks.append(asyncio.create_task(reload.watch(spec_paths, swap, settings.reload_interval_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await runtime.runner.stop()  # leases handed back: another instance or the next start resumes them
            if runtime.background:  # upstream job cancels still in flight get a moment to go out
                await asyncio.wait(set(runtime.background), timeout=5)
            await runtime.transport.close()
            await stores.close()
            if handle is not None:
                await handle.cleanup()

    routes: list[Route] = []
    for prefix in PREFIXES:
        routes += [
            Route(f"{prefix}/images/generations", images_generations, methods=["POST"]),
            Route(f"{prefix}/images/edits", images_edits, methods=["POST"]),
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
            Route(f"{prefix}/videos", videos_create, methods=["POST"]),
            Route(f"{prefix}/videos", videos_list, methods=["GET"]),
            Route(prefix + "/videos/{video_id}", videos_get, methods=["GET"]),
            Route(prefix + "/videos/{video_id}", videos_delete, methods=["DELETE"]),
            Route(prefix + "/videos/{video_id}/content", videos_content, methods=["GET"]),
            Route(f"{prefix}/models", list_models, methods=["GET"]),
            Route(prefix + "/models/{model_id:path}", get_model, methods=["GET"]),
        ]
    routes += admin.routes(endpoint)
    routes += [
        Route(MEDIA_ROUTE + "/{name}", media, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    edge = [Middleware(BodyTimeout, idle_s=settings.body_idle_timeout_s), *origin.middleware(settings)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=edge,
                    exception_handlers={404: _not_found, 405: _method_not_allowed})
    app.state.runtime = runtime
    app.state.admission = admission.Admission(settings.max_concurrent_requests, settings.max_inflight_upload_bytes)
    app.state.started = int(time.time())
    return app
