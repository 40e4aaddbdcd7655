"""Running the simulator next to the code under test.

``SimulatorThread`` serves it from a background thread (own event loop) for
synchronous tests and SDKs; ``start_in_loop`` serves it inside an already running
loop, which is how the gateway embeds it when no provider keys are configured.
Either can serve ``https://`` with a throwaway certificate (``sandbox.tls``).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import ssl
import threading
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

from aiohttp import web

from . import tls as sandbox_tls
from .app import build_app


async def start_in_loop(
    app_or_latency: web.Application | float = 0, host: str = "127.0.0.1", port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, str]:
    """Serve the simulator on ``host:port`` (0 = ephemeral) in the running loop.

    Returns the runner (``await runner.cleanup()`` to stop) and the base URL
    (``https://`` when an ``ssl_context`` is given).
    """
    app = app_or_latency if isinstance(app_or_latency, web.Application) else build_app(float(app_or_latency))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"{'https' if ssl_context else 'http'}://{shown}:{bound_port}"


class SimulatorThread:
    """The simulator on an ephemeral loopback port, in its own thread and event loop."""

    def __init__(self, latency_ms: float = 0, host: str = "127.0.0.1", port: int = 0, tls: bool = False) -> None:
        self.latency_ms = latency_ms
        self.host = host
        self.port = port
        self.tls = tls
        # What a client must trust to talk to a ``tls=True`` simulator (None for plain HTTP).
        self.client_ssl_context: ssl.SSLContext | None = sandbox_tls.client_context() if tls else None
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> SimulatorThread:
        """Start serving; returns once the port accepts connections."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="sandbox-simulator", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        if not self._ready.is_set():
            raise RuntimeError("simulator did not start within 30 s")
        return self

    def _run(self) -> None:
        """Thread body: own loop, serve until stopped, then drain executor threads."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._runner, self.base_url = loop.run_until_complete(
                start_in_loop(self.latency_ms, self.host, self.port,
                              sandbox_tls.server_context() if self.tls else None)
            )
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call twice."""
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or thread is None:
            return
        if runner is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._loop = self._runner = self._thread = None

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def control(self, path: str, json: Any = None, method: str | None = None) -> Any:
        """Call ``/__control__/<path>`` synchronously; POST when ``json`` is given, else GET."""
        path = path if path.startswith("/__control__") else "/__control__/" + path.lstrip("/")
        data = None if json is None else jsonlib.dumps(json).encode()
        verb = method or ("POST" if json is not None else "GET")
        req = urllib.request.Request(self.url(path), data=data, method=verb,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.client_ssl_context) as resp:
                return jsonlib.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            exc.close()
            raise RuntimeError(f"control {verb} {path} failed: {exc.code} {body}") from None

    def requests(self, protocol: str | None = None) -> list[dict[str, Any]]:
        """The logged protocol requests, oldest first (optionally one protocol only)."""
        suffix = f"?protocol={protocol}" if protocol else ""
        return list(self.control("requests" + suffix)["requests"])

    def post_counts(self) -> dict[str, int]:
        """POSTs per path since the last reset (submissions), however many requests came since."""
        return dict(self.control("counts")["posts"])

    def reset(self) -> None:
        """Clear queued faults, latency and job-time config, the request log and all jobs."""
        self.control("reset", method="POST")

    def inject(self, fault: str, count: int = 1, protocol: str | None = None) -> None:
        """Queue ``fault`` for the next ``count`` matching requests."""
        self.control("faults", {"fault": fault, "count": count, "protocol": protocol})

    def set_latency(self, latency_ms: float) -> None:
        self.control("config", {"latency_ms": latency_ms})

    def set_job_ms(self, job_ms: float) -> None:
        """How long each async job (fal request, Replicate prediction, video job) runs from now on."""
        self.control("config", {"job_ms": job_ms})

    def set_video_job_ms(self, video_job_ms: float) -> None:
        """How long each video job (Sora, Veo, fal/Replicate video apps) runs from now on."""
        self.control("config", {"video_job_ms": video_job_ms})

    def set_chunk_ms(self, chunk_ms: float) -> None:
        """The delay between streamed chat completion chunks from now on."""
        self.control("config", {"chunk_ms": chunk_ms})
