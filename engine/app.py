"""The app factory: the HTTP surface (OpenAI-shaped endpoints under /v1 and /openai/v1, media, operations)
assembled from its endpoint families, and what one process starts and stops with it (the sandbox, the
state stores, the job scheduler, the webhook loop, sweepers, spec reload).

The families: mediagate.api_images, api_videos, api_chat, api_models, api_ops, api_console (the web console's
files) and mediagate.admin; each
handler goes through mediagate.endpoint's wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mediagate import (admin, admission, allocator, api_chat, api_console, api_history, api_images, api_models, api_ops,
                       api_providers, api_videos, auth, history, jobstore, origin, reload, videos, webhooks)
from mediagate.catalog import Catalog
from mediagate.config import Settings
from mediagate.endpoint import endpoint, method_not_allowed, not_found
from mediagate.httpserver import BodyTimeout
from mediagate.jobrunner import JobRunner
from mediagate.keyfile import stored_secret
from mediagate.media import MEDIA_ROUTE, open_media
from mediagate.runtime import Runtime, sandboxed
from mediagate.stores import open_stores

log = logging.getLogger("mediagate")
PREFIXES = ("/v1", "/openai/v1")


def _stored_secret(path: Path) -> str:
    """The webhook signing secret, made once and kept (0600) so signatures stay verifiable across restarts."""
    return stored_secret(path, webhooks.new_secret)


def sandbox_notice(settings: Settings, catalog: Catalog, url: str) -> str:
    """The start-up line saying where the simulators are and which providers they serve."""
    served = [p.id for p in catalog.providers.values() if sandboxed(settings, p)]
    return (f"sandbox: simulators at {url}; serving "
            f"{', '.join(served) or 'no provider by default (X-Mediagate-Sandbox: 1 per request)'} (no provider keys set for them)")


class ExactRoutes:
    """ASGI middleware, innermost: a POST to a path without parameters whose handler is wrapped by
    mediagate.endpoint (which answers every error itself) goes straight to it. Starlette's router and its two
    exception layers would match the same route and add nothing to such a handler but ~8% of a small image
    request's CPU; every other request takes them as before."""

    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self.app = app
        self.direct: dict[str, Callable[[Request], Awaitable[Any]]] = {
            r.path: r.endpoint for r in routes
            if r.methods == {"POST"} and "{" not in r.path and getattr(r.endpoint, "answers_every_error", False)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.direct.get(get_route_path(scope))
            if handler is not None:
                scope["path_params"] = {}
                response = await handler(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
        runtime.history = history.Recorder(stores.history)

        async def job_finished(rt: Runtime, job: dict[str, Any]) -> None:
            runtime.history.job_ended(job)   # queued first: a failed charge must not lose the record's outcome
            await auth.job_finished(rt, job)
        runtime.job_finished = job_finished
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
                 asyncio.create_task(runtime.runner.run_forever()), asyncio.create_task(allocator.trimmer()),
                 asyncio.create_task(runtime.history.run()),
                 asyncio.create_task(runtime.history.sweeper(settings.request_retention_days))]
        if hasattr(runtime.health, "sync"):
            tasks.append(asyncio.create_task(runtime.health.sync()))
        if settings.reload_interval_s > 0:
            def swap(fresh: Catalog) -> None:
                runtime.catalog = fresh
            tasks.append(asyncio.create_task(reload.watch(spec_paths, swap, settings.reload_interval_s)))
        try:
            yield
        finally:
            await runtime.history.flush()  # records still queued are written (bounded) before the writer stops
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
            Route(f"{prefix}/images/generations", api_images.images_generations, methods=["POST"]),
            Route(f"{prefix}/images/edits", api_images.images_edits, methods=["POST"]),
            Route(f"{prefix}/chat/completions", api_chat.chat_completions, methods=["POST"]),
            Route(f"{prefix}/videos", api_videos.videos_create, methods=["POST"]),
            Route(f"{prefix}/videos", api_videos.videos_list, methods=["GET"]),
            Route(prefix + "/videos/{video_id}", api_videos.videos_get, methods=["GET"]),
            Route(prefix + "/videos/{video_id}", api_videos.videos_delete, methods=["DELETE"]),
            Route(prefix + "/videos/{video_id}/content", api_videos.videos_content, methods=["GET"]),
            Route(f"{prefix}/models", api_models.list_models, methods=["GET"]),
            Route(f"{prefix}/usage", api_history.usage, methods=["GET"]),
            Route(f"{prefix}/requests", api_history.requests_list, methods=["GET"]),
            Route(prefix + "/requests/{request_id}", api_history.requests_get, methods=["GET"]),
            Route(prefix + "/requests/{request_id}/payloads", api_history.requests_delete_payloads, methods=["DELETE"]),
            Route(f"{prefix}/providers", api_providers.list_providers, methods=["GET"]),
            Route(prefix + "/models/{model_id:path}", api_models.get_model, methods=["GET"]),
            Route(f"{prefix}/explain", api_models.explain_request, methods=["POST"]),
        ]
    routes += admin.routes(endpoint)
    routes += api_console.routes()
    routes += [
        Route(MEDIA_ROUTE + "/{name}", api_ops.media, methods=["GET"]),
        Route("/healthz", api_ops.healthz, methods=["GET"]),
        Route("/readyz", api_ops.readyz, methods=["GET"]),
        Route("/metrics", api_ops.metrics_page, methods=["GET"]),
        Route("/openapi.json", api_ops.openapi, methods=["GET"]),
    ]
    edge = [Middleware(BodyTimeout, idle_s=settings.body_idle_timeout_s), *origin.middleware(settings),
            Middleware(ExactRoutes, routes=routes)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=edge,
                    exception_handlers={404: not_found, 405: method_not_allowed})
    app.state.runtime = runtime
    app.state.admission = admission.Admission(settings.max_concurrent_requests, settings.max_inflight_upload_bytes)
    app.state.started = int(time.time())
    return app
