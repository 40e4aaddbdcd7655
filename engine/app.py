"""The HTTP surface: OpenAI-shaped endpoints under /v1 and /openai/v1, media, health and metrics.

Handlers stay thin: read and bound the body, call the pipeline, shape the answer. Every error leaves
through `_error` as an OpenAI error object with the request id; nothing else reaches a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from mediagate import admission, allocator, chat, errors, forms, imaging, jobstore, jsonbody, pipeline, reload, videos, webhooks
from mediagate.catalog import Catalog
from mediagate.config import Settings
from mediagate.errors import GatewayError
from mediagate.media import MEDIA_ROUTE, MediaStore
from mediagate.jobrunner import JobRunner
from mediagate.runtime import Runtime
from mediagate.stores import open_stores

log = logging.getLogger("mediagate")
PREFIXES = ("/v1", "/openai/v1")
MEDIA_CHUNK_BYTES = 256 * 1024
REQUEST_ID_HEADER = "X-Request-Id"
SANDBOX_HEADER = "x-mediagate-sandbox"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
Handler = Callable[[Request, Runtime], Awaitable[Response]]
T = TypeVar("T")


class _Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency_sum_s: dict[str, float] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, status)] = self.requests.get((endpoint, status), 0) + 1
        self.latency_sum_s[endpoint] = self.latency_sum_s.get(endpoint, 0.0) + seconds

    def render(self) -> str:
        lines = ["# TYPE mediagate_requests_total counter"]
        lines += [f'mediagate_requests_total{{endpoint="{e}",status="{s}"}} {n}' for (e, s), n in sorted(self.requests.items())]
        lines.append("# TYPE mediagate_request_seconds_sum counter")
        lines += [f'mediagate_request_seconds_sum{{endpoint="{e}"}} {v:.6f}' for e, v in sorted(self.latency_sum_s.items())]
        return "\n".join(lines) + "\n"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """One bytes body when small; a body holding big strings (base64 images) is streamed as it is
    encoded, a slice at a time, so no whole copy of it exists and the loop runs between slices."""
    pieces = jsonbody.parts(body)
    if len(pieces) == 1:
        return Response(pieces[0], status, headers, media_type="application/json")
    return StreamingResponse(jsonbody.stream(pieces), status, headers, media_type="application/json")


def _error(err: GatewayError, request_id: str) -> Response:
    return _json(err.to_body(), err.status, {**err.headers, REQUEST_ID_HEADER: request_id})


async def _read_json(request: Request, limit: int) -> Any:
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
        return await jsonbody.loads_async(raw)
    except RecursionError:
        raise errors.invalid_request("The request body is nested too deeply.", None, "invalid_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        if "depth limit" in str(exc):
            raise errors.invalid_request("The request body is nested too deeply.", None, "invalid_json") from None
        raise errors.invalid_request(f"The request body is not valid JSON: {str(exc)[:200]}", None, "invalid_json") from None


def _base_url(request: Request, settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def _check_key(request: Request, settings: Settings) -> None:
    if not settings.api_keys:
        return
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("api-key", "")
    if not any(hmac.compare_digest(key.encode(), k.encode()) for k in settings.api_keys):
        raise errors.invalid_api_key()


def endpoint(name: str, authenticated: bool = True, admitted: bool = True) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler: request id, gateway key, admission (concurrency and upload budget), error shaping,
    metrics, one log line."""
    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            rt: Runtime = request.app.state.runtime
            incoming = request.headers.get(REQUEST_ID_HEADER, "")
            request_id = incoming if _REQUEST_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
            started = time.monotonic()
            try:
                if authenticated:
                    _check_key(request, rt.settings)
                if admitted:
                    with request.app.state.admission.admit(request) as counted:
                        response = await handler(counted, rt)
                else:
                    response = await handler(request, rt)
            except GatewayError as err:
                response = _error(err, request_id)
            except ClientGone:
                response = Response(status_code=499)
            except Exception:  # the last line of defence: log it, never show it
                log.exception("unhandled error", extra={"request_id": request_id})
                response = _error(errors.internal(), request_id)
            response.headers[REQUEST_ID_HEADER] = request_id
            elapsed = time.monotonic() - started
            request.app.state.metrics.observe(name, response.status_code, elapsed)
            log.info(json.dumps({"request_id": request_id, "endpoint": name, "status": response.status_code,
                                 "ms": round(elapsed * 1000, 1), "provider": response.headers.get("x-mediagate-provider")}))
            return response
        return run
    return wrap


@endpoint("images.generations")
async def images_generations(request: Request, rt: Runtime) -> Response:
    body = await _read_json(request, rt.settings.max_body_bytes)
    sandbox = _sandbox_asked(request)
    if _dry_run(request):
        return _json(await pipeline.estimate(rt, body, sandbox))
    result = await _unless_disconnected(request, pipeline.generate(rt, body, _base_url(request, rt.settings), sandbox))
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
    status, headers, reply = await chat.complete(rt, body, _sandbox_asked(request))
    if isinstance(reply, (dict, list)):
        return _json(reply, status, headers)
    return StreamingResponse(reply, status, {**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                             media_type="text/event-stream")


@endpoint("videos.create")
async def videos_create(request: Request, rt: Runtime) -> Response:
    """JSON, or multipart with an input_reference file part; 202 with a queued video object."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, refs, _ = await forms.read_edit_form(request, rt, operation="video", image_keys=("input_reference",))
        reference = refs[0] if refs else None
    else:
        body = await _read_json(request, rt.settings.max_body_bytes)
        reference = body.pop("input_reference", None) if isinstance(body, dict) else None
        if isinstance(reference, dict):
            reference = reference.get("image_url", reference.get("url"))
    if _dry_run(request):
        return _json(await pipeline.estimate(rt, body, _sandbox_asked(request), "video"))
    status, video = await videos.create(rt, body, reference, _sandbox_asked(request))
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
    path = rt.videos_media.path_of(output["name"])
    if path is None:
        raise GatewayError(410, "This video's file has expired and was deleted.", "invalid_request_error", "media_expired")
    return _file_response(path, output.get("mime", "video/mp4"), max(0, int(rt.videos_media.expires_at(path.name) - time.time())))


@endpoint("images.edits")
async def images_edits(request: Request, rt: Runtime) -> Response:
    """Multipart (the SDKs' way: image / image[] / mask parts) or JSON with data: or https image URLs."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, images, mask = await forms.read_edit_form(request, rt)
    else:
        body = await _read_json(request, rt.settings.max_body_bytes)
        body, images, mask = forms.split_edit_json(body)
    sandbox = _sandbox_asked(request)
    if _dry_run(request):
        return _json(await pipeline.estimate(rt, body, sandbox, "edit", images, mask))
    work = pipeline.generate(rt, body, _base_url(request, rt.settings), sandbox, "edit", images, mask)
    result = await _unless_disconnected(request, work)
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
    path, reason = rt.media.open(request.path_params["name"], request.query_params.get("sig", ""))
    handle = None
    if path is not None:
        try:
            handle = open(path, "rb")  # an open file survives the sweeper unlinking it mid-download
        except OSError:
            reason = "not_found"
    if handle is None:
        if reason == "expired":
            raise GatewayError(410, "This media URL has expired and its file was deleted.", "invalid_request_error", "media_expired")
        raise errors.not_found("No such media, or the URL signature is invalid.")
    assert path is not None
    handle.close()
    return _file_response(path, imaging.MIME_BY_EXT.get(path.suffix.lstrip("."), "application/octet-stream"),
                          max(0, int(rt.media.expires_at(path.name) - time.time())))


def _file_response(path: Path, mime: str, ttl_s: int) -> Response:
    """Stream a stored file; it is opened here, so the sweeper may unlink it mid-download harmlessly."""
    try:
        handle = open(path, "rb")
    except OSError:
        raise GatewayError(410, "This file has expired and was deleted.", "invalid_request_error", "media_expired") from None
    size = os.fstat(handle.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with handle:
            while block := handle.read(MEDIA_CHUNK_BYTES):
                yield block
    return StreamingResponse(chunks(), media_type=mime,
                             headers={"Cache-Control": f"private, max-age={min(300, ttl_s)}", "Content-Length": str(size)})


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
                  "provider_health": rt.health.snapshot()})


@endpoint("metrics", authenticated=False, admitted=False)
async def metrics(request: Request, rt: Runtime) -> Response:
    return PlainTextResponse(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


@endpoint("openapi", authenticated=False)
async def openapi(request: Request, rt: Runtime) -> Response:
    from mediagate.openapi import document
    return _json(document(rt.catalog))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _json(errors.not_found(f"No endpoint {request.method} {request.url.path}.").to_body(), 404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    err = GatewayError(405, f"Method {request.method} is not allowed on {request.url.path}.", "invalid_request_error",
                       "method_not_allowed")
    return _json(err.to_body(), 405)


def _stored_secret(path: Path) -> str:
    """The webhook signing secret, made once and kept (0600) so signatures stay verifiable across restarts."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = webhooks.new_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret


def create_app(settings: Settings, catalog: Catalog, sandbox_starter: Callable[[], Awaitable[tuple[Any, str]]] | None = None,
               spec_paths: list[Path] | None = None) -> Starlette:
    """The ASGI app. `sandbox_starter` starts the simulators in this loop and returns (handle, base URL);
    the specs under `spec_paths` (default: the checkout) are watched and reloaded when they change."""
    runtime = Runtime(settings, catalog, MediaStore(settings.media_dir, settings.media_ttl_s, settings.signing_key))
    runtime.videos_media = MediaStore(settings.media_dir / "videos", videos.VIDEO_TTL_S, settings.signing_key)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        handle = None
        if sandbox_starter is not None and runtime.needs_sandbox():
            handle, runtime.sandbox_url = await sandbox_starter()
            served = [p.id for p in catalog.providers.values() if runtime.sandboxed(p)]
            log.warning("sandbox: simulators at %s; serving %s (no provider keys set for them)",
                        runtime.sandbox_url, ", ".join(served) or "no provider by default (X-Mediagate-Sandbox: 1 per request)")
        stores = open_stores(settings)
        runtime.stores, runtime.jobs, runtime.counters, runtime.health = stores, stores.jobs, stores.counters, stores.health
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
    routes += [
        Route(MEDIA_ROUTE + "/{name}", media, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _not_found, 405: _method_not_allowed})
    app.state.runtime = runtime
    app.state.metrics = _Metrics()
    app.state.admission = admission.Admission(settings.max_concurrent_requests, settings.max_inflight_upload_bytes)
    app.state.started = int(time.time())
    return app
