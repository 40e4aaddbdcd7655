"""Operations: signed media downloads, /healthz, /readyz, /metrics and /openapi.json."""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mediagate import auth, errors, imaging, jobstore, metrics
from mediagate import media as media_store
from mediagate import openapi as openapi_doc
from mediagate import endpoint as ep
from mediagate.endpoint import endpoint
from mediagate.errors import GatewayError
from mediagate.media import MediaGone
from mediagate.runtime import Runtime

READY_STORE_TIMEOUT_S = 1.0


@endpoint("media", authenticated=False)
async def media(request: Request, rt: Runtime) -> Response:
    """Signed URLs are their own credential: a browser or SDK downloads them without the gateway key. With
    MEDIAGATE_MEDIA_ACCESS=team the signature also binds the minting team, and a key of that team is asked
    for (when keys exist): another team's key gets the 404 of a forged URL (docs/TENANCY.md)."""
    name, sig = request.path_params["name"], request.query_params.get("sig", "")
    try:
        if rt.settings.media_access == "team":
            await auth.authenticate(request, rt, "media")
            expected = rt.media.sign(media_store.team_bound(name, auth.team_of(request)))
            if media_store.expiry_of(name) is None or not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
                raise MediaGone("not_found")
            opened = await rt.media.open_own(name)
        else:
            opened = await rt.media.open(name, sig)
    except MediaGone as gone:
        if gone.reason == "expired":
            raise GatewayError(410, "This media URL has expired and its file was deleted.", "invalid_request_error", "media_expired") from None
        raise errors.not_found("No such media, or the URL signature is invalid.") from None
    return ep.file_response(opened, imaging.MIME_BY_EXT.get(opened.ext, "application/octet-stream"))


@endpoint("healthz", authenticated=False, admitted=False)
async def healthz(request: Request, rt: Runtime) -> Response:
    return ep.json_response({"status": "ok"})


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
    return ep.json_response({"status": "ready" if store["ok"] else "degraded", "models": len(rt.catalog.models),
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
    return Response(openapi_doc.rendered(rt.catalog), media_type="application/json")
