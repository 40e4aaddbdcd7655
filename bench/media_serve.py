#!/usr/bin/env python3
"""Peak gateway memory while serving one large file, from an S3 bucket (moto on loopback) and from local disk.

    .venv/bin/python bench/media_serve.py [--mb 256]

Starts moto's S3 server and `mediagate serve` (sandbox off) as separate processes, puts one large object
named and signed like a gateway media file straight into the store, downloads it through
`GET /v1/media/{name}?sig=` (the same `_file_response` stream `GET /videos/{id}/content` uses) and samples
the gateway's RSS from /proc every 5 ms. A streamed download keeps the peak near idle + a few chunks; a
buffered one would add the whole file.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.s3server import MotoServer  # noqa: E402

KEY = "bench-signing-key"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def media_name() -> str:
    return f"{int(time.time()) + 3600}-{secrets.token_urlsafe(32)}.mp4"


def serve_and_measure(env: dict[str, str], name: str, size: int) -> dict[str, float]:
    port = free_port()
    exe = str(Path(sys.executable).with_name("mediagate"))
    proc = subprocess.Popen([exe, "serve", "--port", str(port)], env={**os.environ, **env, "MEDIAGATE_SANDBOX": "off",
                            "MEDIAGATE_RELOAD_SECONDS": "0", "MEDIAGATE_SIGNING_KEY": KEY},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.05)
        sig = hmac.new(KEY.encode(), name.encode(), hashlib.sha256).hexdigest()
        httpx.get(f"{base}/v1/media/{name}?sig=0", timeout=30)  # warm the handler up (a 404), without the file
        idle = rss_mb(proc.pid)
        peak = idle
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb(proc.pid))
                time.sleep(0.005)
        sampler = threading.Thread(target=sample)
        sampler.start()
        got = 0
        start = time.perf_counter()
        with httpx.stream("GET", f"{base}/v1/media/{name}?sig={sig}", timeout=120) as r:
            assert r.status_code == 200, r.status_code
            for chunk in r.iter_raw(1 << 20):
                got += len(chunk)
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
        assert got == size, (got, size)
        return {"idle_mb": idle, "peak_mb": peak, "delta_mb": peak - idle, "mb_per_s": size / 1048576 / elapsed}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256)
    args = parser.parse_args()
    size = args.mb * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp_s, MotoServer() as moto:
        tmp = Path(tmp_s)
        blob = tmp / "big.mp4"
        with open(blob, "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1024 * 1024))
        bucket = moto.new_bucket()
        name = media_name()
        moto.client().upload_file(str(blob), bucket, f"bench/media/{name}")
        s3 = serve_and_measure({**moto.env(), "MEDIAGATE_MEDIA_URL": f"s3://{bucket}/bench",
                                "MEDIAGATE_STATE_DIR": str(tmp / "s3state")}, name, size)
        local_name = media_name()
        (tmp / "media").mkdir()
        os.link(blob, tmp / "media" / local_name)
        local = serve_and_measure({"MEDIAGATE_MEDIA_DIR": str(tmp / "media"), "MEDIAGATE_STATE_DIR": str(tmp / "state")},
                                  local_name, size)
    print(f"serving one {args.mb} MiB file through GET /v1/media (gateway RSS, MiB):")
    for label, r in (("s3 (moto)", s3), ("local dir", local)):
        print(f"  {label:10} idle {r['idle_mb']:6.1f}  peak {r['peak_mb']:6.1f}  (+{r['delta_mb']:.1f})  "
              f"{r['mb_per_s']:.0f} MiB/s")


if __name__ == "__main__":
    main()
