"""Assembles every simulated protocol and the control API into one aiohttp app.

Layout: OpenAI Images, Videos and chat completions under ``/openai/v1/...`` (files under
``/openai/files/``), Gemini (incl. Veo operations, file downloads and the OpenAI-compatible
``/gemini/v1beta/openai/chat/completions``) under ``/gemini/v1beta/...`` (and
``/gemini/v1/...``), fal under ``/fal/queue/...`` and ``/fal/run/...`` (files under
``/fal/files/``), Replicate under ``/replicate/v1/...`` (files under ``/replicate/files/``),
Vertex AI under ``/vertex/...`` (incl. its OAuth token endpoint), OpenRouter chat under
``/openrouter/api/v1/...``, AUTOMATIC1111 under ``/a1111/...``, Stability AI under ``/stability/...``, Amazon
Bedrock under ``/bedrock/...`` (its S3 output bucket under ``/bedrock-s3/...``), Together AI under ``/together/...``,
Hugging Face under ``/huggingface/...``, Luma under ``/luma/...``, Model Studio (DashScope) under ``/dashscope/...``, control under
``/__control__/...``.
One middleware logs each protocol request and applies the configured base latency, so
individual handlers stay protocol-only; file downloads are not logged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import byteplus, minimax, runway  # Runway, MiniMax, BytePlus ModelArk
from . import azure_openai, recraft, xai
from . import a1111, bedrock, chat, control, fal, gemini, openai_images, openai_videos, replicate_predictions, stability, veo, vertex
from . import dashscope, huggingface, luma, together
from .state import DEFAULT_CHUNK_MS, DEFAULT_JOB_MS, DEFAULT_VIDEO_JOB_MS, JSON_BODY, LOG_ENTRY, STATE, SimState

MAX_BODY_BYTES = 384 * 1024 * 1024  # edits and inline images are large (5 x 37 MB as data: URLs in bench/memory.py); aiohttp's default is 1 MiB
_PROTOCOL_PREFIXES = (
    ("/openai/v1/", "openai"),
    ("/gemini/", "gemini"),
    ("/fal/queue/", "fal"),
    ("/fal/run/", "fal"),
    ("/replicate/v1/", "replicate"),
    ("/vertex/", "vertex"),
    ("/a1111/", "a1111"),
    ("/stability/", "stability"),
    ("/openrouter/", "openrouter"),
    ("/runway/v1/", "runway"),
    ("/byteplus/api/", "byteplus"),
    ("/minimax/v1/", "minimax"),
    ("/azure/", "azure"),
    ("/xai/v1/", "xai"),
    ("/recraft/v1/", "recraft"),
    ("/bedrock/", "bedrock"),
    ("/together/v1/", "together"),
    ("/huggingface/", "huggingface"),
    ("/luma/dream-machine/", "luma"),
    ("/dashscope/api/", "dashscope"),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def protocol_of(path: str) -> str | None:
    """Which simulated protocol a path belongs to (None for control and file routes)."""
    for prefix, name in _PROTOCOL_PREFIXES:
        if path.startswith(prefix):
            return name
    return None


async def _read_json(request: web.Request) -> tuple[bool, Any]:
    """Parse a JSON body once for both the log and the handler; multipart is left unread."""
    if request.content_type.startswith("multipart/") or not request.can_read_body:
        return False, None
    raw = await request.read()
    try:
        return True, json.loads(raw)
    except ValueError:
        return False, None


MAX_COUNTED_PATHS = 10_000   # distinct POST paths counted (job-specific paths grow with use)


@web.middleware
async def protocol_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log the request for ``/__control__/requests`` and apply the base latency."""
    protocol = protocol_of(request.path)
    if protocol is None:
        return await handler(request)
    state = request.config_dict[STATE]
    parsed = await _read_json(request)
    request[JSON_BODY] = parsed
    entry: dict[str, Any] = {
        "protocol": protocol,
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "json": parsed[1] if parsed[0] else None,
        "time": time.time(),
    }
    state.requests.append(entry)
    if request.method == "POST" and len(state.posts) < MAX_COUNTED_PATHS:
        state.posts[request.path] += 1
    request[LOG_ENTRY] = entry
    if state.latency_ms > 0:
        await asyncio.sleep(state.latency_ms / 1000.0)
    response = await handler(request)
    if protocol == "openai":
        response.headers.setdefault("x-request-id", f"req_{id(entry):x}{int(entry['time'] * 1000):x}")
    return response


def build_app(
    latency_ms: float = 0,
    job_ms: float = DEFAULT_JOB_MS,
    video_job_ms: float = DEFAULT_VIDEO_JOB_MS,
    chunk_ms: float = DEFAULT_CHUNK_MS,
) -> web.Application:
    """A fresh simulator app with its own state; ``latency_ms`` is the base latency per request,
    ``job_ms`` how long an async image job (fal request, Replicate prediction) runs,
    ``video_job_ms`` how long a video job runs and ``chunk_ms`` the delay between streamed
    chat chunks."""
    app = web.Application(middlewares=[protocol_middleware], client_max_size=MAX_BODY_BYTES)
    app[STATE] = SimState(latency_ms, job_ms, video_job_ms, chunk_ms)
    openai_images.add_routes(app)
    openai_videos.add_routes(app)
    chat.add_routes(app)
    gemini.add_routes(app)
    veo.add_routes(app)
    fal.add_routes(app)
    replicate_predictions.add_routes(app)
    vertex.add_routes(app)
    a1111.add_routes(app)
    stability.add_routes(app)
    runway.add_routes(app)
    byteplus.add_routes(app)
    minimax.add_routes(app)
    azure_openai.add_routes(app)
    xai.add_routes(app)
    recraft.add_routes(app)
    bedrock.add_routes(app)   # Amazon Bedrock runtime under /bedrock/..., its S3 output bucket under /bedrock-s3/...
    for provider in (together, huggingface, luma, dashscope):
        provider.add_routes(app)
    control.add_routes(app)
    return app
