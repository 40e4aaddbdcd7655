#!/usr/bin/env python3
"""mediagate memory and event-loop benchmark: big uploads, many big outputs, /healthz under both.

    .venv/bin/python bench/memory.py [--compare REF] [--cases edit_234,edit_234_x3,...] [--write]

Starts the provider simulator (this checkout's, `python -m sandbox`) and `mediagate serve` as processes on
loopback ports (bench/procs.py), with every provider pointed at the simulator, and measures the gateway
process: RSS sampled every 5 ms from /proc (peak = the highest sample), and `/healthz` latency probed every
5 ms from a separate process on its own keep-alive connection while a big request runs. The gateway runs
under bench/loopwatch.py, which also reports the longest loop step in loop-thread CPU time and how long
the loop thread sat queued for a CPU: on a loaded machine the wall-clock probe mostly measures the machine.

With `--compare REF` (e.g. `main`) the same cases run, in the same session, against a gateway built from
a temporary copy of REF (`git archive`; the repository itself is not touched) (its engine/ shadowed onto PYTHONPATH; the simulator stays this
checkout's, which knows `[sim:noise]`), and the table shows both side by side. `--write` puts the table into
bench/RESULTS.md and docs/RELIABILITY.md under their "Memory and the event loop" headings.

Inputs are incompressible (random pixels, `os.urandom`), as are the outputs (`[sim:noise]`), so PNG cannot
shrink them: 8 x 29.3 MB = 234 MB of upload, 3 MB per 1024x1024 output, 16.8 MB of base64 per 2048x2048 one.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp
from PIL import Image

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loopwatch  # noqa: E402
import procs  # noqa: E402

MB = 1024 * 1024
ALL_CASES = ("healthz_idle", "edit_234", "edit_234_x3", "rss_200_b64", "rss_200_webp", "rss_200_url", "healthz_edit_5x37",
             "healthz_edit_5x37_json", "healthz_n10_b64")
EDIT_SIDE_234 = 3125          # 3125 x 3125 RGB random pixels: 29.3 MB as PNG; 8 of them 234 MB
EDIT_SIDE_37 = 3512           # 37 MB as PNG
PROBE_INTERVAL_S = 0.005
SAMPLE_INTERVAL_S = 0.005
EXTRA_ENV: dict[str, str] = {}   # --env K=V: settings for the gateways under test (both sides)
SETTLE_S = 5.0                # after a load, how long RSS is given to come back before it is read
BENCH_MODEL = "bench-image"   # bench/specs/bench-image.yaml: a local OpenAI-compatible server, PNG only, 256-4096 px
EDIT_MODEL = "gpt-image-2"    # a multipart OpenAI edit, up to 16 input images
TARGETS = {
    "healthz_idle": "(baseline: the machine itself, nothing else sent)",
    "edit_234": "peak above idle <= 2 x payload (468 MB)",
    "edit_234_x3": "refused (503) or served within the in-flight budget (512 MiB)",
    "rss_200_b64": "peak <= 400 MB, after <= idle + 20 %",
    "rss_200_webp": "peak <= 400 MB, after <= idle + 20 %",
    "rss_200_url": "peak <= 400 MB, after <= idle + 20 %",
    "healthz_edit_5x37": "max /healthz latency <= 50 ms",
    "healthz_edit_5x37_json": "max /healthz latency <= 50 ms",
    "healthz_n10_b64": "max /healthz latency <= 50 ms",
}


def log(msg: str) -> None:
    print(f"[memory {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def noisy_png(side: int, seed: int) -> bytes:
    """A PNG of random pixels (zlib cannot compress them) — what a real photo costs, and a bit more."""
    im = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


class Sampler:
    """RSS of a process tree every few ms, in a thread; the peak and the samples."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids, self.peak, self.stop_flag = pids, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, procs.rss_mb(self.pids()))
            time.sleep(SAMPLE_INTERVAL_S)

    def __enter__(self) -> "Sampler":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        self.thread.join()


PROBE_SCRIPT = r"""
import http.client, json, os, sys, time
port, stop_file, interval = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
lat, starts, failures = [], [], 0
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
while not os.path.exists(stop_file):
    t0 = time.perf_counter()
    starts.append(time.time())
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        failures += resp.status != 200
    except (OSError, http.client.HTTPException):
        failures += 1
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat.append(time.perf_counter() - t0)
    time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
print(json.dumps({"latencies": lat, "starts": starts, "failures": failures}))
"""


PIN = {"gateway": "0", "others": {1}}   # CPUs under --pin (the default on 2+ CPUs); off: None
PROBE_RT_PRIORITY = 10                 # the prober's SCHED_FIFO priority under --pin: it waits behind no load generator
PROBE_NICE = -10                       # its niceness where real-time scheduling is not allowed


def _probe_priority() -> None:
    """In the prober's child: ahead of the client and the simulator on their shared CPU, so a late answer is
    the gateway's, not the prober waiting for a turn (as root; elsewhere it stays at normal priority)."""
    if PIN is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PROBE_RT_PRIORITY))
        except (OSError, AttributeError):
            try:
                os.nice(PROBE_NICE)
            except OSError:
                pass


class Prober:
    """GET /healthz every 5 ms on one keep-alive connection, from a process of its own (a thread of this
    harness would wait for the harness's GIL while it reads a 168 MB answer, and blame the gateway)."""

    def __init__(self, port: int) -> None:
        self.port, self.latencies, self.failures = port, [], 0
        self.stop_file = Path(tempfile.mktemp(prefix="mediagate-probe-stop-"))

    def __enter__(self) -> "Prober":
        self.proc = subprocess.Popen([sys.executable, "-c", PROBE_SCRIPT, str(self.port), str(self.stop_file),
                                      str(PROBE_INTERVAL_S)], stdout=subprocess.PIPE, preexec_fn=_probe_priority)
        time.sleep(0.3)  # a few probes before the load starts
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)
        self.stop_file.touch()
        out, _ = self.proc.communicate(timeout=60)
        self.stop_file.unlink(missing_ok=True)
        doc = json.loads(out)
        self.latencies, self.starts, self.failures = doc["latencies"], doc["starts"], doc["failures"]

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        slowest = sorted(zip(self.latencies, self.starts), reverse=True)[:10]
        return {"probes": len(lat), "max_ms": round(lat[-1] * 1000, 1) if lat else None,
                "slowest": [[round(t, 3), round(l * 1000, 1)] for l, t in slowest],
                "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1) if lat else None, "probe_failures": self.failures}


class Gateway:
    """The simulator plus one gateway, built from `source` (a checkout) or this one."""

    def __init__(self, tmp: Path, sim_url: str, source: Path | None, label: str) -> None:
        self.tmp, self.sim_url, self.source, self.label = tmp, sim_url, source, label
        self.server: procs.Server | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(
            ("OPENAI_", "FAL_", "GEMINI_", "MEDIAGATE_", "REPLICATE_", "VERTEX_", "LOCAL_OPENAI_", "A1111_"))}
        media = self.tmp / f"media-{self.label}"
        media.mkdir(exist_ok=True)
        env.update({"PYTHONUNBUFFERED": "1", "MEDIAGATE_SANDBOX": "off", "MEDIAGATE_RELOAD_SECONDS": "0",
                    "MEDIAGATE_MEDIA_DIR": str(media), "MEDIAGATE_STATE_DIR": str(self.tmp / f"state-{self.label}"),
                    "OPENAI_BASE_URL": f"{self.sim_url}/openai/v1", "OPENAI_API_KEY": "bench",
                    "LOCAL_OPENAI_BASE_URL": f"{self.sim_url}/openai/v1", "LOCAL_OPENAI_API_KEY": "bench",
                    "GEMINI_BASE_URL": f"{self.sim_url}/gemini", "GEMINI_API_KEY": "bench",
                    "REPLICATE_BASE_URL": f"{self.sim_url}/replicate", "REPLICATE_API_TOKEN": "bench",
                    "MEDIAGATE_REQUEST_TIMEOUT_SECONDS": "600"})
        env.update(EXTRA_ENV)
        if self.source is not None:
            env["PYTHONPATH"] = str(shadow_package(self.source, self.tmp / f"shadow-{self.label}"))
        return env

    def start(self, watch: bool) -> None:
        """`watch`: run under bench/loopwatch.py. Only the /healthz cases want it: its pings and kept stacks
        cost memory of their own (a webp burst read +76 % RSS after under the watch, +14 % without)."""
        port = procs.free_port()
        self.watch_file = self.tmp / f"loopwatch-{self.label}-{port}.json"
        serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--specs", str(BENCH / "specs")]
        argv = ([sys.executable, str(BENCH / "loopwatch.py"), str(self.watch_file), *serve] if watch
                else [sys.executable, "-m", "mediagate.cli", *serve])   # what the `mediagate` script runs
        self.server = procs.Server(f"mediagate-{self.label}", argv, self.env(), self.tmp / f"gw-{self.label}.log",
                                   f"http://127.0.0.1:{port}/healthz", cwd=str(self.tmp),
                                   cpus=PIN["gateway"] if PIN is not None else None)
        self.server.start(120)
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def pids(self) -> list[int]:
        return self.server.pids() if self.server is not None else []

    def rss(self) -> float:
        return procs.rss_mb(self.pids())

    def loop_steps(self, since: float) -> dict[str, Any]:
        """What the in-process loop watch saw from `since` to now (bench/loopwatch.py)."""
        time.sleep(loopwatch.WRITE_EVERY_S * 2)  # its last write covers the whole case
        return loopwatch.summarise(self.watch_file, since, time.time())


def shadow_package(source: Path, into: Path) -> Path:
    """A `mediagate` package on PYTHONPATH built from another checkout's layout (what pyproject maps)."""
    pkg = into / "mediagate"
    if pkg.exists():
        return into
    pkg.mkdir(parents=True)
    for entry in (source / "engine").iterdir():
        (pkg / entry.name).symlink_to(entry)
    (pkg / "sandbox").symlink_to(source / "sandbox")
    specs = pkg / "specs"
    specs.mkdir()
    (specs / "__init__.py").write_text("")
    for name, src in (("models", "models.d"), ("providers", "providers.d"), ("schemas", "schemas")):
        (specs / name).mkdir()
        (specs / name / "__init__.py").write_text("")
        for f in (source / src).iterdir():
            (specs / name / f.name).symlink_to(f)
    return into


# ---------------------------------------------------------------- the cases

async def _edit(session: aiohttp.ClientSession, base: str, model: str, images: list[bytes]) -> tuple[int, int, float]:
    form = aiohttp.FormData()
    form.add_field("model", model)
    form.add_field("prompt", "bench edit")
    form.add_field("size", "1024x1024")
    for i, data in enumerate(images):
        form.add_field("image[]", data, filename=f"in{i}.png", content_type="image/png")
    t0 = time.monotonic()
    async with session.post(base + "/v1/images/edits", data=form) as resp:
        body = await resp.read()
        return resp.status, len(body), time.monotonic() - t0


async def _generate(session: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> tuple[int, int]:
    async with session.post(base + "/v1/images/generations", json=body) as resp:
        data = await resp.read()
        return resp.status, len(data)


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600))


def _statuses(results: list[tuple[Any, ...]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        out[str(r[0])] = out.get(str(r[0]), 0) + 1
    return out


def warm(gw: Gateway) -> float:
    """A few small requests down every path the cases take (generate, multipart and JSON-upstream edits),
    so first-use imports and connection set-up are not measured as big-request costs."""
    small = noisy_png(64, 0)

    async def go() -> None:
        async with _session() as s:
            for _ in range(3):
                await _generate(s, gw.base, {"model": BENCH_MODEL, "prompt": "warm", "size": "256x256",
                                             "response_format": "b64_json"})
                await _edit(s, gw.base, EDIT_MODEL, [small])
                await _edit(s, gw.base, "flux.2-pro", [small])
    asyncio.run(go())
    time.sleep(1.0)
    return gw.rss()


def case_edit(gw: Gateway, images: list[bytes], copies: int) -> dict[str, Any]:
    idle = gw.rss()

    async def go() -> list[tuple[int, int, float]]:
        async with _session() as s:
            return await asyncio.gather(*(_edit(s, gw.base, EDIT_MODEL, images) for _ in range(copies)))
    with Sampler(gw.pids) as sampler:
        results = asyncio.run(go())
    time.sleep(SETTLE_S)
    return {"idle_mb": round(idle), "peak_mb": round(sampler.peak), "above_idle_mb": round(sampler.peak - idle),
            "after_mb": round(gw.rss()), "statuses": _statuses(results), "payload_mb": round(sum(map(len, images)) / MB, 1),
            "seconds": round(max(r[2] for r in results), 2)}


def case_rss_200(gw: Gateway, mode: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": BENCH_MODEL, "prompt": "bench [sim:noise]", "size": "1024x1024"}
    if mode == "b64":
        body["response_format"] = "b64_json"
    elif mode == "webp":   # the upstream makes PNG only: the gateway converts
        body.update({"response_format": "b64_json", "output_format": "webp"})
    else:
        body["response_format"] = "url"
    async def one() -> None:  # the simulator renders this image once and keeps it: the run measures the gateway
        async with _session() as s:
            await _generate(s, gw.base, body)
    asyncio.run(one())
    time.sleep(1.0)
    idle = gw.rss()

    async def go() -> list[tuple[int, int]]:
        async with _session() as s:
            return await asyncio.gather(*(_generate(s, gw.base, body) for _ in range(200)))
    t0 = time.monotonic()
    with Sampler(gw.pids) as sampler:
        results = asyncio.run(go())
    took = time.monotonic() - t0
    time.sleep(SETTLE_S)
    after = gw.rss()
    return {"idle_mb": round(idle), "peak_mb": round(sampler.peak), "after_mb": round(after),
            "after_vs_idle_pct": round(100 * (after - idle) / idle, 1), "statuses": _statuses(results),
            "bytes_per_answer": int(sum(r[1] for r in results) / len(results)), "seconds": round(took, 2)}


def case_healthz_edit(gw: Gateway, images: list[bytes], model: str) -> dict[str, Any]:
    async def go() -> list[tuple[int, int, float]]:
        async with _session() as s:
            return [await _edit(s, gw.base, model, images)]
    t0 = time.time()
    with Prober(gw.port) as prober, Sampler(gw.pids) as sampler:
        results = asyncio.run(go())
    return {**prober.summary(), **gw.loop_steps(t0), "statuses": _statuses(results), "seconds": round(results[0][2], 2),
            "peak_mb": round(sampler.peak), "payload_mb": round(sum(map(len, images)) / MB, 1)}


def case_healthz_idle(gw: Gateway) -> dict[str, Any]:
    t0 = time.time()
    with Prober(gw.port) as prober, Sampler(gw.pids) as sampler:
        time.sleep(10)
    return {**prober.summary(), **gw.loop_steps(t0), "statuses": {}, "seconds": 10, "peak_mb": round(sampler.peak)}


def case_healthz_n10(gw: Gateway) -> dict[str, Any]:
    body = {"model": "gemini-3-pro-image", "prompt": "bench [sim:noise]", "aspect_ratio": "1:1", "resolution": "2K",
            "n": 10, "response_format": "b64_json"}

    async def one() -> None:  # the simulator renders the image once and keeps it
        async with _session() as s:
            await _generate(s, gw.base, {**body, "n": 1})
    asyncio.run(one())

    async def go() -> list[tuple[int, int]]:
        async with _session() as s:
            return [await _generate(s, gw.base, body)]
    t0, since, cpu0 = time.monotonic(), time.time(), procs.cpu_seconds(gw.pids())
    with Prober(gw.port) as prober, Sampler(gw.pids) as sampler:
        results = asyncio.run(go())
    return {**prober.summary(), **gw.loop_steps(since), "statuses": _statuses(results),
            "gateway_cpu_s": round(procs.cpu_seconds(gw.pids()) - cpu0, 2),
            "seconds": round(time.monotonic() - t0, 2), "response_mb": round(results[0][1] / MB, 1),
            "peak_mb": round(sampler.peak)}


# ---------------------------------------------------------------- the run

def verdict(case: str, r: dict[str, Any], budget_mb: float) -> str:
    if "error" in r:
        return "error"
    if case == "edit_234":
        return "yes" if r["above_idle_mb"] <= 2 * r["payload_mb"] and r["statuses"] == {"200": 1} else "no"
    if case == "edit_234_x3":  # what was admitted fits the upload budget, the rest was refused, memory follows
        served = r["statuses"].get("200", 0)
        ok_codes = set(r["statuses"]) <= {"200", "503"}
        within = served * r["payload_mb"] <= budget_mb and r["above_idle_mb"] <= 2 * r["payload_mb"] * served * 1.05
        return "yes" if ok_codes and served and within else "no"
    if case.startswith("rss_200"):
        return "yes" if r["peak_mb"] <= 400 and r["after_vs_idle_pct"] <= 20 and r["statuses"] == {"200": 200} else "no"
    if case == "healthz_idle":
        return "—"
    return "yes" if r["max_ms"] is not None and r["max_ms"] <= 50 and r["probe_failures"] == 0 else "no"


def brief(case: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"][:120]
    st = ", ".join(f"{k}×{v}" for k, v in sorted(r["statuses"].items()))
    if case.startswith("edit_234"):
        return (f"idle {r['idle_mb']} → peak {r['peak_mb']} MB (+{r['above_idle_mb']}), after {r['after_mb']} MB; "
                f"{st}; {r['seconds']} s")
    if case.startswith("rss_200"):
        return (f"idle {r['idle_mb']} → peak {r['peak_mb']} MB, after {r['after_mb']} MB ({r['after_vs_idle_pct']:+} %); "
                f"{st}; {r['bytes_per_answer'] / MB:.1f} MB/answer; {r['seconds']} s")
    loop = (f"; longest loop step {r['loop_cpu_max_ms']} ms of loop-thread CPU (p99 {r['loop_cpu_p99_ms']} ms, "
            f"process CPU {r['process_cpu_max_ms']} ms, wall {r['loop_wall_max_ms']} ms; the watch thread itself kept "
            f"from running up to {r.get('watch_gap_max_ms', '?')} ms)") if r.get("loop_cpu_max_ms") is not None else ""
    return (f"/healthz max {r['max_ms']} ms, p99 {r['p99_ms']} ms over {r['probes']} probes "
            f"({r['probe_failures']} failed){loop}; {st}; {r['seconds']} s; peak {r['peak_mb']} MB")


def run_side(tmp: Path, sim_url: str, source: Path | None, label: str, cases: list[str],
             inputs: dict[str, list[bytes]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        gw = Gateway(tmp, sim_url, source, label)
        try:
            gw.start(watch=case.startswith("healthz_"))  # fresh per case: one case's leftovers are not the next one's idle
            out_case: dict[str, Any] = {"idle_warm_mb": round(warm(gw))}
            log(f"{label}: {case} (gateway pid {gw.server.pid if gw.server else '?'}, idle {out_case['idle_warm_mb']} MB)")
            if case == "edit_234":
                out_case.update(case_edit(gw, inputs["234"], 1))
            elif case == "edit_234_x3":
                out_case.update(case_edit(gw, inputs["234"], 3))
            elif case.startswith("rss_200_"):
                out_case.update(case_rss_200(gw, case.rsplit("_", 1)[1]))
            elif case == "healthz_edit_5x37":
                out_case.update(case_healthz_edit(gw, inputs["37"], EDIT_MODEL))
            elif case == "healthz_edit_5x37_json":
                out_case.update(case_healthz_edit(gw, inputs["37"], "flux.2-pro"))
            elif case == "healthz_idle":
                out_case.update(case_healthz_idle(gw))
            elif case == "healthz_n10_b64":
                out_case.update(case_healthz_n10(gw))
            if gw.server is not None and not gw.server.alive():
                out_case["error"] = "gateway died: " + gw.server.log_tail(5)
        except Exception as exc:  # a side that fails a case still reports the others
            out_case = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            gw.stop()
        log(f"{label}: {case}: {brief(case, out_case) if 'error' not in out_case else out_case['error'][:300]}")
        out[case] = out_case
    return out


def table(results: dict[str, dict[str, dict[str, Any]]], budget_mb: float) -> str:
    labels = list(results)
    head = "| case | target | " + " | ".join(labels) + " | met (" + labels[0] + ") |"
    lines = [head, "| --- | --- | " + " | ".join("---" for _ in labels) + " | --- |"]
    for case in results[labels[0]]:
        cells = [brief(case, results[label].get(case, {"error": "not run"})) for label in labels]
        lines.append(f"| {case} | {TARGETS[case]} | " + " | ".join(cells) + f" | {verdict(case, results[labels[0]][case], budget_mb)} |")
    return "\n".join(lines)


RELIABILITY_NOTES = """\
What bounds a request's memory, and what keeps big work off the event loop (issue 9, items 1-2):

| limit | value | where | over it |
| --- | --- | --- | --- |
| prompt characters | the model's `limits.prompt_chars`, else `DEFAULT_PROMPT_CHARS` = 32,000 | engine/request_schema.py (images and videos) | 400, `param: prompt` |
| prompt in `GET /v1/videos` | `LIST_PROMPT_CHARS` = 1,000 characters | engine/videos.py | cut, ends with `…`; `metadata.prompt_truncated`, `metadata.prompt_chars` |
| requests in flight | `MEDIAGATE_MAX_CONCURRENT_REQUESTS` = 1,024 | engine/admission.py | 503 `service_unavailable`, `Retry-After: 1` (health, readiness, metrics exempt) |
| request body bytes in flight, all requests | `MEDIAGATE_MAX_INFLIGHT_UPLOAD_BYTES` = 512 MiB | engine/admission.py (Content-Length reserved up front; chunked bodies as they arrive) | 503 with `Retry-After: 1`; one body larger than the whole budget: 413 |
| provider replies read but not yet delivered (waiting for conversion, re-encoding or storage), all requests | `MEDIAGATE_MAX_HELD_REPLY_BYTES` = 128 MiB (a reply's declared size, reserved before it is read; given back once the request's outputs are delivered) | engine/replybudget.py | the next big reply waits unread in its socket, in arrival order; a request already holding part never waits (no deadlock between fan-out batches); one reply bigger than the whole budget is read alone |
| image conversions at once | `CONVERSION_SLOTS` = the CPUs the process may use | engine/postprocess.py | the others wait (an encode is CPU-bound: more at once only hold more pixels) |
| big upstream replies read and parsed at once | `BIG_REPLY_SLOTS` = 4 (replies over `BIG_REPLY_BYTES` = 1 MiB or of unknown length) | engine/upstream.py | the others wait unread in their sockets |
| JSON (de)serialised inline | `JSON_INLINE_BYTES` = 1 MiB (a body, or the strings over `BIG_STRING_CHARS` = 256 KiB in an answer or upstream body, together) | engine/jsonbody.py | worker thread / streamed, the big strings in `SLICE_CHARS` = 192 KiB slices |
| base64 made or undone at once | `B64_SLICE_BYTES` = 144 KiB | engine/imaging.py | the loop runs between slices |
| reply members echoing the request | an operation's `reply_skip` (Replicate: `input`) | engine/replyskip.py | dropped as they arrive, read as null; the 256 MiB reply cap counts what is kept |

- Input images are held once, as the uploaded bytes. `b64` and `data_url` exist only when a route's template
  reads them (engine/inputs.py `ImageContext`), made in slices; a context carrying more than
  `INLINE_RENDER_BYTES` (1 MiB) of images is rendered in a worker thread, so exactly the encodings the
  route's templates use are made there, off the loop. A multipart upstream streams each file part from the
  upload's own buffer (a BytesIO over it): no copy at all.
- JSON bodies go to aiohttp as a sized payload whose big strings are encoded slice by slice while it is
  sent; JSON responses holding big strings are streamed the same way (no whole copy of a 168 MB
  answer ever exists). Upstream replies are gathered into one buffer that becomes bytes without a copy.
- glibc's sliding mmap threshold is fixed at 2 MiB (lower costs page faults on every big string; higher fragments the heap) and `malloc_trim` runs every 5 s
  (engine/allocator.py), so RSS comes back after a burst instead of staying at its peak.
- A streamed answer yields to the loop after each slice (a server's send does not while the socket takes
  the bytes), and a request keeps its admission place until its answer's last byte is sent.
- An operation's `reply_skip` members (Replicate: the echoed `input`) are dropped as the reply arrives.
- Measured (table below): orjson, json, binascii and `bytes.decode` all hold the GIL for the whole call,
  so `asyncio.to_thread` alone does not free the loop for big buffers; slicing does.
- Making one big `str` is itself such a call: `"".join` of a decoded 16.8 MB base64 string held the GIL
  40-55 ms here, most of it first-touch page faults of the new string (a VM faults fresh memory in slowly),
  and py-spy put the `n=10` case's late /healthz answers exactly there. Big ASCII strings (base64, data:
  URLs) are now allocated empty and filled by `ctypes.memmove` a slice at a time, which releases the GIL
  (engine/asciistr.py); the slice thread also hands the GIL over after every slice (`time.sleep(0)`)
  instead of waiting for the 1 ms switch interval.
- How this is measured: the gateway is pinned to CPU 0 and the simulator, the clients and the /healthz
  prober to CPU 1, the prober at real-time priority (SCHED_FIFO), so a late probe is the gateway's and not
  the prober waiting behind a client reading 168 MB (`--no-pin` shares both CPUs). The loop watch
  (bench/loopwatch.py) runs only in the /healthz cases: its own pings and kept stacks inflated a burst's
  RSS "after" (+76 % against +13 % without it).
"""


def gil_probe() -> str:
    """Whether big base64 / JSON calls free the event loop when run in a worker thread: the longest gap a
    1 ms asyncio ticker sees while each runs in asyncio.to_thread (a gap as long as the call: the GIL is held)."""
    import base64
    import binascii

    import orjson

    sys.path.insert(0, str(ROOT))
    from mediagate import asciistr, imaging, jsonbody

    raw = os.urandom(37 * MB)
    text = base64.b64encode(raw).decode()
    doc = {"data": [{"b64_json": text[:16_800_000]} for _ in range(10)]}
    blob = orjson.dumps(doc)
    ops: list[tuple[str, Callable[[], Any]]] = [
        ("base64.b64encode, 37 MB (binascii)", lambda: base64.b64encode(raw)),
        ("base64.b64decode, 49 MB of text", lambda: base64.b64decode(text)),
        ("binascii.b2a_base64 + bytes.decode('ascii'), 37 MB", lambda: binascii.b2a_base64(raw, newline=False).decode("ascii")),
        ("orjson.dumps, 168 MB (10 x 16.8 MB strings)", lambda: orjson.dumps(doc)),
        ("orjson.loads, 168 MB", lambda: orjson.loads(blob)),
        ("json.loads, 168 MB", lambda: json.loads(blob)),
        (f"mediagate imaging.b64encode, 37 MB ({imaging.B64_SLICE_BYTES // 1024} KiB slices)", lambda: imaging.b64encode(raw)),
        (f"mediagate jsonbody._slow_loads, 168 MB (big strings in {jsonbody.SLICE_CHARS // 1024} KiB slices)", lambda: jsonbody._slow_loads(blob)),
        ("str join of 16 x 1 MiB slices into 16.8 MB (what a sliced decode ends with)",
         lambda: "".join([text[i:i + MB] for i in range(0, 16_800_000, MB)])),
        ("mediagate asciistr.decode, 16.8 MB (memmove in slices, GIL free)",
         lambda: asciistr.decode(blob, 0, 16_800_000, checked=True)),
    ]

    async def one(fn: Callable[[], Any]) -> tuple[float, float]:
        gaps: list[float] = []
        done = False

        async def tick() -> None:
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now
        task = asyncio.create_task(tick())
        await asyncio.sleep(0.02)
        t0 = time.perf_counter()
        await asyncio.to_thread(fn)
        took = time.perf_counter() - t0
        done = True
        await task
        return took * 1000, max(gaps) * 1000

    rows = ["| call, in a worker thread | took ms | longest loop gap ms | what the loop saw |", "| --- | ---: | ---: | --- |"]
    for name, fn in ops:
        took, gap = asyncio.run(one(fn))
        rows.append(f"| {name} | {took:.0f} | {gap:.1f} | {'held the GIL for the whole call' if gap >= 0.5 * took else f'loop ran between slices ({100 * gap / took:.0f} % of the call at most)'} |")
    return "\n".join(rows)


def replace_section(path: Path, heading: str, text: str, preamble: str = "") -> None:
    """Write `text` under `heading` (## level), replacing that section only; the rest of the file stays."""
    old = path.read_text() if path.exists() else preamble
    block = f"{heading}\n\n{text.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: block + "\n", old, count=1) if pattern.search(old) else old.rstrip() + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(ALL_CASES))
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="a setting for the gateways under test")
    ap.add_argument("--compare", default=None, help="also run a checkout of this git ref (e.g. main)")
    ap.add_argument("--write", action="store_true", help="write the table into bench/RESULTS.md and docs/RELIABILITY.md")
    ap.add_argument("--out-json", default=str(BENCH / "memory.json"))
    ap.add_argument("--render", default=None, help="write the sections from a saved run (its --out-json) plus a fresh GIL probe")
    ap.add_argument("--no-pin", action="store_true",
                    help="share every CPU; by default the gateway gets CPU 0 and the harness, simulator and prober CPU 1")
    args = ap.parse_args()
    EXTRA_ENV.update(kv.split("=", 1) for kv in args.env)
    global PIN
    if args.no_pin or (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        PIN = None
    else:
        os.sched_setaffinity(0, PIN["others"])   # the simulator, the prober and the clients inherit it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: no orphaned servers
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        load = os.getloadavg()[0]
        gil = gil_probe()
        text = (saved["meta"] + "\n\n" + table(saved["results"], 512) + "\n\n"
                + f"Do base64 and JSON free the loop in a thread? (load average {load:.2f}; `bench/memory.py --render`)\n\n" + gil)
        print(text)
        if args.write:
            replace_section(BENCH / "RESULTS.md", "## Memory and the event loop (bench/memory.py)", text)
            replace_section(ROOT / "docs" / "RELIABILITY.md", "## Memory and the event loop", RELIABILITY_NOTES + "\n" + text,
                            "# Reliability\n\nMeasured behaviour under load and hostile input; each section names its command.\n")
        return 0
    cases = [c for c in args.cases.split(",") if c]
    tmp = Path(tempfile.mkdtemp(prefix="mediagate-memory-"))
    load0 = os.getloadavg()
    log(f"generating noisy inputs (load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f})")
    inputs = {"234": [noisy_png(EDIT_SIDE_234, i) for i in range(8)] if any(c.startswith("edit_234") for c in cases) else [],
              "37": [noisy_png(EDIT_SIDE_37, i) for i in range(5)] if any(c.startswith("healthz_edit") for c in cases) else []}
    for k, v in inputs.items():
        if v:
            log(f"inputs {k}: {len(v)} x {len(v[0]) / MB:.1f} MB = {sum(map(len, v)) / MB:.1f} MB")
    port = procs.free_port()
    sim = procs.Server("simulator", [sys.executable, "-m", "sandbox", "--port", str(port), "--latency-ms", "0"],
                       {**os.environ, "PYTHONUNBUFFERED": "1"}, tmp / "sim.log", f"http://127.0.0.1:{port}/__control__/health",
                       cwd=str(ROOT))
    sim.start(60)
    sim_url = f"http://127.0.0.1:{port}"
    worktree: Path | None = None
    results: dict[str, dict[str, dict[str, Any]]] = {}
    started = time.time()
    try:
        results["this branch"] = run_side(tmp, sim_url, None, "branch", cases, inputs)
        if args.compare:
            worktree = tmp / "compare"
            worktree.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.compare], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(worktree)], input=archive, check=True)
            results[args.compare] = run_side(tmp, sim_url, worktree, "compare", cases, inputs)
    finally:
        sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)   # media, state, logs and loop-watch files of every gateway run
    load1 = os.getloadavg()
    budget_mb = 512
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    compare_commit = ""
    if args.compare:
        compare_commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.compare],
                                        capture_output=True, text=True).stdout.strip()
    text = table(results, budget_mb)
    meta = (f"Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC, {time.time() - started:.0f} s, "
            f"`bench/memory.py{' --compare ' + args.compare if args.compare else ''}`; this branch at `{commit}`"
            + (f", {args.compare} at `{compare_commit}`" if compare_commit else "")
            + f"; {os.cpu_count()} CPUs shared with other work, load average {load0[0]:.2f} at start, {load1[0]:.2f} at end"
            + (f"; gateway pinned to CPU {PIN['gateway']}, simulator, clients and prober to CPU "
               f"{','.join(map(str, sorted(PIN['others'])))} (prober SCHED_FIFO). " if PIN is not None else ". ")
            + "RSS: the gateway process, sampled every 5 ms (peak = highest sample); a fresh gateway per case; "
            f"'after' read {SETTLE_S:g} s after the load. Upload budget (MEDIAGATE_MAX_INFLIGHT_UPLOAD_BYTES) at its "
            f"default, {budget_mb} MiB.")
    print("\n" + meta + "\n\n" + text + "\n")
    Path(args.out_json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    if args.write:
        replace_section(BENCH / "RESULTS.md", "## Memory and the event loop (bench/memory.py)", meta + "\n\n" + text)
        replace_section(ROOT / "docs" / "RELIABILITY.md", "## Memory and the event loop",
                        RELIABILITY_NOTES + "\n" + meta + "\n\n" + text,
                        "# Reliability\n\nMeasured behaviour under load and hostile input; each section names its command.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
