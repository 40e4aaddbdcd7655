"""Fault cases that must keep holding (docs/RELIABILITY.md "What held"): decompression bombs from a caller
and from a provider, and a provider killed under 200 concurrent requests."""

from __future__ import annotations

import concurrent.futures
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import httpx

from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread, Scripted

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` RGB pixels (one compressed row of zeros follows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * min(width, 4096)), 9)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_a_caller_s_decompression_bomb_is_refused_quickly(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    bomb = bomb_png(60000, 60000)  # 3.6 gigapixels claimed in under 20 KB
    assert len(bomb) < 20_000
    started = time.monotonic()
    r = httpx.post(gateway.base_url + "/v1/images/edits", files={"image": ("bomb.png", bomb, "image/png")},
                   data={"model": "gpt-image-1", "prompt": "x"}, timeout=30)
    took = time.monotonic() - started
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image", r.text
    assert not [q for q in sim_clean.requests() if q["method"] == "POST"], "no provider saw it"
    print(f"\nRELIABILITY caller_bomb_refused_ms={took * 1000:.0f}")


def test_a_provider_s_decompression_bomb_is_a_502_not_a_crash(scripted: Scripted, scripted_gateway: GatewayThread) -> None:
    import base64
    scripted.replies.append({"json": {"created": 1, "data": [{"b64_json": base64.b64encode(bomb_png(60000, 60000)).decode()}]}})
    r = httpx.post(scripted_gateway.base_url + "/v1/images/generations", timeout=30,
                   json={"model": "openai/gpt-image-1", "prompt": "x", "response_format": "b64_json", "output_format": "webp"})
    assert r.status_code == 502 and r.json()["error"]["code"] in ("upstream_malformed", "all_providers_exhausted"), r.text
    assert httpx.get(scripted_gateway.base_url + "/healthz").status_code == 200


def test_200_concurrent_requests_with_the_provider_killed_all_get_shaped_errors(sim: SimulatorThread, tmp_path: Path) -> None:
    """The provider disappears while 200 requests wait on it: every caller gets an OpenAI-shaped error (no
    hang, no 500), and the gateway keeps serving."""
    upstream = SimulatorThread(latency_ms=1500).start()
    try:
        with GatewayThread(upstream.base_url, tmp_path) as gw:
            def call(i: int) -> Any:
                try:
                    return httpx.post(gw.base_url + "/v1/images/generations", timeout=60,
                                      json={"model": "openai/dall-e-2", "prompt": f"x{i}", "size": "256x256",
                                            "response_format": "b64_json"})
                except httpx.HTTPError as exc:  # a transport failure would be the gateway's fault here
                    return exc
            with concurrent.futures.ThreadPoolExecutor(200) as pool:
                futures = [pool.submit(call, i) for i in range(200)]
                time.sleep(0.8)   # every request is now waiting on the provider
                upstream.stop()
                results = [f.result() for f in futures]
            statuses = [r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in results]
            shaped = [r for r in results if isinstance(r, httpx.Response) and r.status_code >= 500
                      and set(r.json()["error"]) == {"message", "type", "param", "code"}]
            ok = [r for r in results if isinstance(r, httpx.Response) and r.status_code == 200]
            print(f"\nRELIABILITY provider_killed_200_concurrent shaped_5xx={len(shaped)} ok={len(ok)} "
                  f"other={200 - len(shaped) - len(ok)}")
            assert len(shaped) + len(ok) == 200, sorted(set(map(str, statuses)))
            assert 500 not in statuses
            assert httpx.get(gw.base_url + "/healthz").status_code == 200
    finally:
        upstream.stop()
