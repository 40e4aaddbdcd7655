#!/usr/bin/env python3
"""Figures for docs/RELIABILITY.md: deadlines and slow clients, measured against the real server.

    .venv/bin/python bench/edge_faults.py

Runs the gateway under uvicorn (UVICORN_OPTIONS, as `mediagate serve` does) with a 3 s request deadline,
every provider pointed at a scripted loopback upstream that hangs, and reports how long after the deadline
each chat case was answered; then opens 200 connections that send half a request head and nothing more
and reports when the gateway closed them (HEADER_TIMEOUT_S, the default 10 s).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import GatewayThread, ScriptedThread  # noqa: E402

DEADLINE_S = 3.0
CONNECTIONS = 200
CHAT = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
CHUNK = 'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'


def chat_cases(gw: GatewayThread, script) -> dict[str, float]:
    out = {}
    httpx.post(gw.base_url + "/v1/chat/completions?dryRun=true", json=CHAT)  # warm: first-request setup is not the figure
    for name, body, replies in [("plain, upstream hangs", CHAT, [{"delay_s": 60, "json": {}}] * 2),
                                ("stream, hangs before the first byte", {**CHAT, "stream": True}, [{"delay_s": 60, "json": {}}] * 2),
                                ("stream, stalls mid-stream", {**CHAT, "stream": True}, [{"stream": [CHUNK, 60]}])]:
        script.replies[:] = list(replies)
        started = time.monotonic()
        with httpx.stream("POST", gw.base_url + "/v1/chat/completions", json=body, timeout=120) as r:
            data = b"".join(r.iter_bytes())
        took = time.monotonic() - started
        assert b"upstream_timeout" in data, data[:200]
        out[name] = round(took, 3)
    return out


async def slow_heads(port: int) -> list[float]:
    async def one() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        started = time.monotonic()
        while await reader.read(65536):
            pass
        writer.close()
        return time.monotonic() - started
    return await asyncio.gather(*(one() for _ in range(CONNECTIONS)))


def main() -> None:
    with ScriptedThread() as script, tempfile.TemporaryDirectory() as tmp:
        with GatewayThread(script.base_url, Path(tmp), request_timeout_s=DEADLINE_S) as gw:
            chat = chat_cases(gw, script)
            closed = asyncio.run(slow_heads(gw.port))
    print(json.dumps({"deadline_s": DEADLINE_S, "chat_answered_after_s": chat,
                      "slowloris": {"connections": CONNECTIONS, "closed": len(closed),
                                    "min_s": round(min(closed), 2), "max_s": round(max(closed), 2)}}, indent=2))


if __name__ == "__main__":
    main()
