"""Real servers on loopback for tests: the gateway (uvicorn in a thread) and a scripted upstream."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import uvicorn
from aiohttp import web
from PIL import Image

from mediagate import catalog as catalog_mod
from tests import legacy
from mediagate.app import create_app
from mediagate.config import Settings
from mediagate.httpserver import UVICORN_OPTIONS


class _Handle:
    async def cleanup(self) -> None:
        return None


class GatewayThread:
    """The real ASGI app under uvicorn on an ephemeral loopback port, providers pointed at `upstream_url`."""

    def __init__(self, upstream_url: str | None, tmp: Path, spec_paths: list[Path] | None = None,
                 sandbox: str = "on", server_options: dict[str, Any] | None = None, **settings: Any) -> None:
        self.settings = Settings(media_dir=tmp / "media", state_dir=tmp / "state", sandbox=sandbox, **settings)
        if spec_paths is None:  # the served default, plus the retired models the older tests use (tests/legacy.py)
            spec_paths = [*catalog_mod.default_spec_dirs(), legacy.root()]
        self.catalog = catalog_mod.load(spec_paths)
        starter = None
        if upstream_url is not None:
            async def starter() -> tuple[Any, str]:
                return _Handle(), upstream_url
        self.app = create_app(self.settings, self.catalog, starter, spec_paths)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        options = {**UVICORN_OPTIONS, **(server_options or {})}  # what `mediagate serve` runs with
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", access_log=False, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def __enter__(self) -> "GatewayThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def image_bytes(fmt: str, width: int, height: int, color: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt])
    return buf.getvalue()


@dataclass
class Scripted:
    """A loopback upstream that records each request and answers from a queue of scripted replies."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def materialize(self, value: Any) -> Any:
        """Replace "$image(fmt,WxH)" with base64 bytes and "$url(fmt,WxH)" with a URL served here."""
        if isinstance(value, dict):
            return {k: self.materialize(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.materialize(v) for v in value]
        if isinstance(value, str) and value.startswith(("$image(", "$url(", "$dataurl(")) and value.endswith(")"):
            kind, _, args = value[1:-1].partition("(")
            fmt, size = args.split(",")
            w, h = (int(x) for x in size.strip().split("x"))
            data = image_bytes(fmt.strip(), w, h)
            if kind == "image":
                return base64.b64encode(data).decode()
            if kind == "dataurl":
                return f"data:image/{fmt.strip()};base64," + base64.b64encode(data).decode()
            name = f"f{len(self.files)}.{fmt.strip()}"
            self.files[name] = data
            return f"{self.base_url}/__files__/{name}"
        if isinstance(value, str) and "$base" in value:
            return value.replace("$base", self.base_url)
        return value

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/__files__/"):
            data = self.files.get(request.path.rsplit("/", 1)[1])
            return web.Response(body=data) if data is not None else web.Response(status=404)
        form: dict[str, Any] | None = None
        if request.content_type == "multipart/form-data":
            form = {}
            for key, value in (await request.post()).items():
                part = f"<file {value.content_type}>" if hasattr(value, "file") else value
                form[key] = part if key not in form else (form[key] if isinstance(form[key], list) else [form[key]]) + [part]
            body = None
        else:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
        with self.lock:
            self.requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                                  "headers": {k.lower(): v for k, v in request.headers.items()}, "json": body, "form": form})
            reply = self.replies.pop(0) if self.replies else {"status": 500, "json": {"error": "no scripted reply"}}
        if reply.get("delay_s"):
            await _pause(request, reply["delay_s"])
        if reply.get("drop"):
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        headers = reply.get("headers", {})
        if "stream" in reply:  # server-sent events: strings are written as they come, numbers are pauses (s)
            resp = web.StreamResponse(status=reply.get("status", 200), headers={"Content-Type": "text/event-stream", **headers})
            await resp.prepare(request)
            for part in reply["stream"]:
                if isinstance(part, str):
                    await resp.write(part.encode())
                    continue
                await _pause(request, part)
            with contextlib.suppress(ConnectionError):   # the caller may have hung up during a pause
                await resp.write_eof()
            return resp
        if "raw" in reply:
            return web.Response(status=reply.get("status", 200), text=reply["raw"], headers=headers)
        if "file" in reply:  # the body is the image itself: "fmt,WxH"
            fmt, _, wh = reply["file"].partition(",")
            w, h = (int(x) for x in wh.split("x"))
            return web.Response(status=reply.get("status", 200), body=image_bytes(fmt, w, h),
                                headers={"Content-Type": f"image/{fmt}", **headers})
        return web.json_response(self.materialize(reply.get("json")), status=reply.get("status", 200), headers=headers)


async def _pause(request: web.Request, seconds: float) -> None:
    """Sleep, but stop as soon as the caller hung up (aiohttp does not cancel a handler when it does)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until and request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.02)


class ScriptedThread:
    def __init__(self) -> None:
        self.script = Scripted()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.script.handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.script.base_url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> Scripted:
        self._thread.start()
        self._ready.wait(10)
        return self.script

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def subset(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where `actual` differs from `expected` (dicts: expected keys only; lists: same length, element-wise)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        out: list[str] = []
        for k, v in expected.items():
            if v == "$absent":
                if k in actual:
                    out.append(f"{path}.{k}: expected absent, got {actual[k]!r}")
            elif k not in actual:
                out.append(f"{path}.{k}: missing")
            else:
                out += subset(v, actual[k], f"{path}.{k}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"[:300]]
        return [m for i, (e, a) in enumerate(zip(expected, actual)) for m in subset(e, a, f"{path}[{i}]")]
    if expected == "$any":
        return []
    if expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"[:300]]
    return []


Check = Callable[[Any], None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A real redis-server on a free loopback port, append-only file on (a restart loses nothing written),
    in its own directory. `restart()` stops it and starts it again on the same port and data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Any = None

    def start(self) -> "RedisServer":
        import subprocess
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes"],
            stdout=open(self.directory / "redis.log", "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start: " + (self.directory / "redis.log").read_text()[-2000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"FLUSHALL\r\n")
            s.recv(16)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
