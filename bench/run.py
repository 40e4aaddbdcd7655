#!/usr/bin/env python3
"""mediagate benchmark: mediagate vs. LiteLLM's proxy vs. Portkey's gateway vs. the upstream called directly.

    .venv/bin/python bench/run.py [--quick] [--cases b64_256,b64_1024,webp_1024,...] [--systems ...] [--out F]

Starts, on free loopback ports, the provider simulator (``python -m sandbox --latency-ms 0``), mediagate
(``mediagate serve --specs bench/specs``, every provider pointed at that simulator, sandbox off), LiteLLM's
proxy (pinned, in bench/.venv-litellm, created on first use) and Portkey's gateway (pinned, npm-installed into
bench/.portkey on first use), both configured against the same simulator. Each gateway is one process pinned
to its own CPU; the simulator and the load generators share the other CPU, the same for every system.

Cases (``--cases``): ``b64_S`` and ``url_S`` pass a noisy S×S PNG of the bench's own model (bench-image) through
(S = 256, 1024, 2048, 4096); ``webp_S``/``avif_S`` make mediagate convert it (S = 1024, 4096), timed against
Pillow's own decode + encode of the same image in a bare process; ``n4_latency`` (fan-out), ``fal_async``
(polling) and ``rss_200`` (200 concurrent 3 MB PNGs). b64_256 runs open loop at ``--rates`` (latency counted
from the scheduled send time) and closed loop at saturation; the other size cases run one connection and a few.
Writes RESULTS.md and results.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from mediagate import imaging  # noqa: E402  (the conversion floor uses the gateway's own encoder settings)

import litellm_env  # noqa: E402
import portkey_env  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402

MODEL = "bench-image"            # bench/specs/bench-image.yaml: local-openai server model, PNG only, 256-4096 px
NOISE_PROMPT = "bench [sim:noise]"  # random pixels: incompressible PNGs, the realistic worst case (bench/memory.py)
SIZES = (256, 1024, 2048, 4096)
CONVERT_SIZES = (1024, 4096)
SIZE_CASES = tuple(f"{mode}_{side}" for mode in ("b64", "url") for side in SIZES)
CONVERT_CASES = tuple(f"{fmt}_{side}" for fmt in ("webp", "avif") for side in CONVERT_SIZES)
ALL_CASES = (*SIZE_CASES, *CONVERT_CASES, "n4_latency", "fal_async", "rss_200")
SYSTEMS = ("direct", "mediagate", "litellm", "portkey")
PEERS = ("litellm", "portkey")
HEADLINE_CASE = "b64_256"       # open loop at --rates and saturation at --concurrency; the targets are read here
# Per side: (connections of the throughput / CPU / RSS point, seconds per point in a full run, warm-up requests).
# Every size case also runs one connection (sequential: the added latency without queueing). The big sizes run at
# low concurrency so a full run stays near 20 minutes on 2 cores: the simulator renders a 4096² noise PNG
# (50 MB, over its cache's per-entry cap) anew for every request, about 2.7 s of the aux CPU.
SIZE_LOAD: dict[int, tuple[int, float, int]] = {256: (64, 10.0, 20), 1024: (16, 6.0, 8), 2048: (4, 6.0, 3),
                                                4096: (2, 15.0, 1)}
# Conversions run one encode after another on the gateway's one CPU (AVIF 1024²: ~1 s, WebP 4096² of noise: ~4 s):
# two connections show the queueing without timing out.
CONVERT_LOAD: dict[int, tuple[int, float, int]] = {1024: (2, 8.0, 2), 4096: (2, 15.0, 1)}
# Per-request timeout (s) by side; 256² uses --timeout. A request that queues behind big ones must not time out.
SIZE_TIMEOUT_S = {1024: 30.0, 2048: 30.0, 4096: 90.0}
CONVERT_TIMEOUT_S = 90.0
QUICK_SECONDS = {256: 3.0, 1024: 3.0, 2048: 4.0, 4096: 8.0}
RSS_SIDE = 1024                 # rss_200: a 1024² noise PNG is 3.1 MB (4.2 MB of base64)
RSS_CONCURRENCY = 200
# A peer given the mediagate body forwards output_format and passes on what the upstream makes: the simulator's
# generic server makes WebP itself when asked (not AVIF), which bench-image's PNG-only server would not.
NA_REASON = {"litellm": "LiteLLM's proxy converts nothing itself: it forwards output_format and passes on what the "
                        "upstream makes",
             "portkey": "Portkey's gateway converts nothing itself: it forwards the body and passes on what the "
                        "upstream makes"}
URL_NOTE = ("url: mediagate asks the upstream for base64 (the model's `values`), stores the image and answers its "
            "own signed /v1/media URL, so the bytes pass through it; the peers and direct ask the upstream for a URL "
            "and hand the simulator's URL on, so no image bytes pass through them")
# n=4 on a model whose upstream takes one image per call: gemini-3-pro-image (models.d, active, limits.n 1 on
# its first route, the Gemini API) is fanned out into 4 calls. bench-image cannot show it: its upstream takes n.
N4_BODY = {"model": "gemini-3-pro-image", "prompt": "bench [sim:latency=200]", "response_format": "b64_json"}
FAL_MODEL = "fal/flux.1-schnell"
FAL_JOB_MS = 300
FAL_SWEEP_MS = (300, 500, 1000, 2000, 3000)


def case_kind(case: str) -> tuple[str, int]:
    """``b64_1024`` -> ("b64", 1024); also webp/avif."""
    mode, _, side = case.partition("_")
    return mode, int(side)


def case_body(case: str, system: str) -> dict[str, Any] | None:
    """The request body ``system`` gets in a size or conversion case (None: not applicable).

    Conversions: mediagate asks for WebP/AVIF of a model whose upstream makes PNG only, so the gateway converts;
    "direct" gets exactly what mediagate sends upstream (a base64 PNG of the same size)."""
    mode, side = case_kind(case)
    base = {"model": MODEL, "prompt": NOISE_PROMPT, "size": f"{side}x{side}",
            "response_format": "url" if mode == "url" else "b64_json"}
    if mode in ("webp", "avif"):
        if system in PEERS:
            return None
        return {**base, "output_format": mode} if system == "mediagate" else base
    return base


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="mediagate-bench-"))
        self.key = "sk-bench-" + secrets.token_hex(24)
        ncpu = os.cpu_count() or 1
        self.gw_cpus = args.gateway_cpus if ncpu > 1 else None
        self.aux_cpus = args.aux_cpus if ncpu > 1 else None
        self.python = sys.executable
        self.wrk = shutil.which("wrk") if not args.no_wrk else None
        self.sim: procs.Server | None = None
        self.servers: dict[str, procs.Server] = {}
        self.sim_url = ""
        self.peer_error: dict[str, str] = {}      # peer -> why it cannot run (install or start failed)
        self.peer_version: dict[str, str] = {}
        self.results: dict[str, Any] = {"cases": {}, "notes": []}
        self.loadgen_cpu_s = 0.0
        self.quiet_budget = args.quiet_budget
        self.retry_budget = args.retry_budget
        self.restart_budget = 3
        self.checked: dict[tuple[str, str], dict[str, Any]] = {}
        self.upstream_png: dict[str, bytes] = {}   # case -> the PNG the upstream made (the conversion floor's input)

    # ---------------------------------------------------------------- processes
    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FAL_", "GEMINI_", "MEDIAGATE_",
                                                                          "LITELLM_", "REPLICATE_", "VERTEX_",
                                                                          "LOCAL_OPENAI_", "A1111_"))}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_sim(self) -> None:
        port = procs.free_port()
        self.sim_url = f"http://127.0.0.1:{port}"
        self.sim = procs.Server("simulator", [self.python, "-m", "sandbox", "--port", str(port), "--latency-ms", "0"],
                                self.base_env(), self.tmp / "sim.log", f"{self.sim_url}/__control__/health",
                                cpus=self.aux_cpus, cwd=str(ROOT))
        took = self.sim.start(60)
        log(f"simulator up at {self.sim_url} ({took:.1f} s, pid {self.sim.pid})")

    def mediagate_server(self) -> procs.Server:
        port = procs.free_port()
        media = self.tmp / "media"
        media.mkdir(exist_ok=True)
        env = {**self.base_env(),
               "MEDIAGATE_SANDBOX": "off",
               "OPENAI_BASE_URL": f"{self.sim_url}/openai/v1", "OPENAI_API_KEY": "bench",
               "FAL_QUEUE_URL": f"{self.sim_url}/fal/queue", "FAL_KEY": "bench",
               "GEMINI_BASE_URL": f"{self.sim_url}/gemini", "GEMINI_API_KEY": "bench",
               "LOCAL_OPENAI_BASE_URL": f"{self.sim_url}/openai/v1", "LOCAL_OPENAI_API_KEY": "bench",
               "MEDIAGATE_MEDIA_DIR": str(media), "MEDIAGATE_RELOAD_SECONDS": "0",
               "MEDIAGATE_API_KEYS": self.key}
        # `python -m mediagate.cli serve` is exactly what the `mediagate serve` console script runs; started this way
        # the process does not match a `pkill -f "mediagate serve"` someone else may run on a shared machine
        # (during development a gateway under test was twice killed by an outside SIGTERM).
        argv = [self.python, "-m", "mediagate.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--specs",
                str(BENCH / "specs")]
        srv = procs.Server("mediagate", argv, env, self.tmp / "mediagate.log", f"http://127.0.0.1:{port}/healthz",
                           cpus=self.gw_cpus, cwd=str(ROOT))
        srv.port = port  # type: ignore[attr-defined]
        return srv

    def litellm_server(self) -> procs.Server:
        port = procs.free_port()
        cfg = self.tmp / "litellm_config.yaml"
        cfg.write_text(litellm_env.config_text(f"{self.sim_url}/openai/v1"))
        argv = [str(litellm_env.VENV / "bin" / "litellm"), "--config", str(cfg), "--host", "127.0.0.1",
                "--port", str(port), "--num_workers", "1"]
        srv = procs.Server("litellm", argv, litellm_env.env(self.base_env(), self.key), self.tmp / "litellm.log",
                           f"http://127.0.0.1:{port}/health/liveliness", cpus=self.gw_cpus, cwd=str(self.tmp))
        srv.port = port  # type: ignore[attr-defined]
        return srv

    def portkey_server(self) -> procs.Server:
        port = procs.free_port()
        srv = procs.Server("portkey", portkey_env.argv(port), portkey_env.env(self.base_env()),
                           self.tmp / "portkey.log", f"http://127.0.0.1:{port}/", cpus=self.gw_cpus,
                           cwd=str(self.tmp))
        srv.port = port  # type: ignore[attr-defined]
        return srv

    def ensure(self, system: str, fresh: bool = False) -> bool:
        """Have ``system``'s gateway running (restarted if ``fresh``); False when it cannot run."""
        if system == "direct":
            return True
        if system in self.peer_error:
            return False
        srv = self.servers.get(system)
        if srv is not None and srv.alive() and not fresh:
            return True
        if srv is not None:
            srv.stop()
        srv = {"mediagate": self.mediagate_server, "litellm": self.litellm_server,
               "portkey": self.portkey_server}[system]()
        try:
            took = srv.start(180)
        except RuntimeError as exc:
            if system in PEERS:
                self.peer_error[system] = f"did not start: {exc}"
                log(f"{system} did not start: {exc}")
                return False
            raise
        self.servers[system] = srv
        log(f"{system} up on port {srv.port} ({took:.1f} s, pid {srv.pid}, "  # type: ignore[attr-defined]
            f"RSS {procs.rss_mb(srv.pids()):.0f} MB)")
        return True

    def server_of(self, system: str) -> procs.Server:
        assert self.sim is not None
        return self.sim if system == "direct" else self.servers[system]

    def url(self, system: str) -> str:
        if system == "direct":
            return f"{self.sim_url}/openai/v1/images/generations"
        return f"http://127.0.0.1:{self.servers[system].port}/v1/images/generations"  # type: ignore[attr-defined]

    def headers(self, system: str) -> dict[str, str]:
        if system == "portkey":
            return portkey_env.headers(f"{self.sim_url}/openai/v1", "bench")
        return {"Authorization": "Bearer " + ("bench" if system == "direct" else self.key)}

    def unavailable_reason(self, system: str) -> str:
        return self.peer_error.get(system, "did not start")

    def stop_all(self) -> None:
        for srv in self.servers.values():
            srv.stop()
        if self.sim is not None:
            self.sim.stop()

    # ---------------------------------------------------------------- requests from the harness itself
    def post(self, system: str, body: dict[str, Any], timeout: float = 60.0) -> tuple[int, bytes, float]:
        """One request (new connection); (status, body, seconds). Status 0: no HTTP answer."""
        req = urllib.request.Request(self.url(system), data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **self.headers(system)})
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data = resp.read()
                return resp.status, data, time.monotonic() - t0
        except urllib.error.HTTPError as err:
            return err.code, err.read(), time.monotonic() - t0
        except OSError as exc:
            return 0, str(exc).encode(), time.monotonic() - t0

    def sim_control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.sim_url + "/__control__" + path, data=data,
                                     method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def describe_answer(self, system: str, body: dict[str, Any]) -> str:
        """What ``system`` answers to ``body`` (status, and the image format it returned), for an N/A row."""
        status, data, _ = self.post(system, body)
        if status != 200:
            return f"probe with the mediagate body: HTTP {status}: {data[:200].decode('utf-8', 'replace')}"
        try:
            item = json.loads(data)["data"][0]
            kind = image_format(base64.b64decode((item.get("b64_json") or "")[:64]))
            return f"probe with the mediagate body: HTTP 200 with a {kind} image"
        except (ValueError, KeyError, IndexError, TypeError):
            return f"probe with the mediagate body: HTTP 200, unreadable: {data[:120].decode('utf-8', 'replace')}"

    def check_and_warm(self, case: str, system: str, body: dict[str, Any], count: int = 20) -> str | None:
        """Validate one answer (200 + an image of the expected format, inline or behind its URL) and warm up;
        the problem, if any. What the answer held is kept in ``self.checked[(case, system)]``."""
        status, data, took = self.post(system, body)
        if status != 200:
            return f"HTTP {status}: {data[:300].decode('utf-8', 'replace')}"
        try:
            doc = json.loads(data)
            item = doc["data"][0]
            if item.get("b64_json"):
                image = base64.b64decode(item["b64_json"])
            elif item.get("url"):
                with urllib.request.urlopen(item["url"], timeout=60) as resp:
                    image = resp.read()
            else:
                return f"200 without data[0].b64_json or url: {data[:300].decode('utf-8', 'replace')}"
        except (ValueError, KeyError, IndexError, TypeError, OSError) as exc:
            return f"unreadable 200 body ({exc}): {data[:200].decode('utf-8', 'replace')}"
        want = expected_format(body)
        got = image_format(image)
        if got != want:
            return f"200 but the image is {got}, expected {want}"
        adjustments = (doc.get("metadata") or {}).get("adjustments") or []
        self.checked[(case, system)] = {"answer_bytes": len(data), "image_bytes": len(image), "image_format": got,
                                        "first_request_s": round(took, 3), "adjustments": adjustments}
        if system == "direct" and got == "png":
            self.upstream_png[case] = image
        for _ in range(count - 1):
            self.post(system, body)
        return None

    # ---------------------------------------------------------------- one measured point
    def own_servers_cpu(self) -> float:
        return sum(s.cpu_s() for s in [self.sim, *self.servers.values()] if s is not None and s.alive())

    def wait_quiet(self, srv: procs.Server) -> float:
        """Before a point: wait until the server under test is idle (it may still be finishing work that an
        overloaded previous point abandoned; at most 30 s) and, within the run's budget, until other processes
        stop keeping the machine busy. Returns the seconds waited."""
        waited, idle_limit = 0.0, 30.0
        while True:
            t0, own0, harness0, srv0 = procs.core_times(), self.own_servers_cpu(), _self_cpu(), srv.cpu_s()
            time.sleep(0.5)
            t1, own1, harness1, srv1 = procs.core_times(), self.own_servers_cpu(), _self_cpu(), srv.cpu_s()
            other = (t1["cpu"][0] - t0["cpu"][0]) / procs.CLK_TCK - (own1 - own0) - (harness1 - harness0)
            busy_server = (srv1 - srv0) / 0.5 > 0.1 and waited < idle_limit
            busy_other = other / 0.5 >= self.args.quiet_threshold and self.quiet_budget > 0
            if not busy_server and not busy_other:
                return waited
            if waited == 0.0:
                log(f"waiting: server at {100 * (srv1 - srv0) / 0.5:.0f}% CPU, other processes at "
                    f"{100 * other / 0.5:.0f}% of a CPU")
            time.sleep(0.5)
            waited += 1.0
            if busy_other and not busy_server:
                self.quiet_budget -= 1.0

    def measure(self, case: str, system: str, body_path: Path, *, rate: float | None = None,
                concurrency: int | None = None, duration: float, expect: str = "b64_json",
                timeout: float | None = None) -> dict[str, Any]:
        srv = self.server_of(system)
        timeout = timeout or self.args.timeout
        assert self.sim is not None
        waited = self.wait_quiet(srv)
        all0, own0, harness0 = procs.core_times(), self.own_servers_cpu(), _self_cpu()
        pids = srv.pids()
        peak_reset = procs.reset_peak_rss(pids)
        rss_before = procs.rss_mb(pids)
        cpu0, sim0, cores0 = srv.cpu_s(), self.sim.cpu_s(), procs.core_times()
        wall0 = time.monotonic()
        taskset = ["taskset", "-c", self.aux_cpus] if self.aux_cpus else []
        hdrs = self.headers(system)
        out_file = self.tmp / f"out-{case}-{system}-{rate or concurrency}.txt"
        sampler = _RssSampler(pids)
        sampler.start()
        if rate is not None:
            argv = taskset + [self.python, str(BENCH / "loadgen.py"), "--url", self.url(system), "--body-file",
                              str(body_path), "--rate", str(rate), "--duration", str(duration),
                              "--timeout", str(timeout), "--max-inflight", str(self.args.max_inflight),
                              "--expect", expect]
            argv += [x for k, v in hdrs.items() for x in ("--header", f"{k}: {v}")]
            tool = "loadgen (open loop)"
        elif self.wrk:
            argv = taskset + [self.wrk, "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--timeout",
                              f"{timeout:g}s", "-s", str(BENCH / "wrk_post.lua")]
            argv += [x for k, v in hdrs.items() for x in ("-H", f"{k}: {v}")]
            argv += [self.url(system), "--", str(body_path)]
            tool = "wrk (closed loop)"
        else:
            argv = taskset + [self.python, str(BENCH / "loadgen.py"), "--url", self.url(system), "--body-file",
                              str(body_path), "--concurrency", str(concurrency), "--duration", str(duration),
                              "--timeout", str(timeout), "--expect", expect]
            argv += [x for k, v in hdrs.items() for x in ("--header", f"{k}: {v}")]
            tool = "loadgen (closed loop)"
        rc, lg_cpu, out = procs.run_measured(argv, out_file, duration + 2 * timeout + 30)
        sampler.stop()
        self.loadgen_cpu_s += lg_cpu
        alive = srv.alive()
        pids_after = srv.pids()
        cpu1, sim1, cores1 = srv.cpu_s(), self.sim.cpu_s(), procs.core_times()
        own1, harness1 = self.own_servers_cpu(), _self_cpu()
        span = time.monotonic() - wall0
        other = ((cores1["cpu"][0] - all0["cpu"][0]) / procs.CLK_TCK - (own1 - own0) - (harness1 - harness0)
                 - lg_cpu)
        peak = procs.peak_rss_mb(pids_after) if peak_reset else sampler.peak
        res: dict[str, Any] = {"case": case, "system": system, "tool": tool,
                               "load": (f"{rate:g} req/s" if rate is not None else "1 connection" if concurrency == 1
                                        else f"closed loop c={concurrency}"),
                               "rate": rate, "concurrency": concurrency, "loadgen_exit": rc,
                               "loadgen_cpu_s": round(lg_cpu, 3), "wall_s": round(time.monotonic() - wall0, 2)}
        parsed = _parse_loadgen(out, tool)
        if parsed is None:
            res.update(ok=0, errors=None, error_kinds={"loadgen_failed": 1},
                       error_samples={"loadgen": out[-500:]}, throughput_rps=0.0)
        else:
            res.update(parsed)
        completed = max(1, res.get("completed", res.get("ok", 0) or 0))
        res["server_cpu_s"] = round(cpu1 - cpu0, 3)
        res["cpu_s_per_1k"] = round((cpu1 - cpu0) / completed * 1000.0, 3)
        res["upstream_cpu_s_per_1k"] = round((sim1 - sim0) / completed * 1000.0, 3) if system != "direct" else None
        res["peak_rss_mb"] = round(peak, 1)
        res["rss_before_mb"] = round(rss_before, 1)
        res["core_busy_pct"] = procs.core_busy(cores0, cores1)
        res["server_alive"] = alive
        res["server_processes"] = len(pids_after) or len(pids)
        res["other_cpu_pct"] = round(100.0 * other / span, 1) if span > 0 else None
        res["waited_for_quiet_s"] = waited
        if not alive:
            res.setdefault("error_kinds", {})["server_died"] = 1
            res["server_exit_code"] = srv.proc.returncode if srv.proc is not None else None
            log(f"{system} is not running any more (exit code {res['server_exit_code']}; negative = killed by "
                f"that signal)")
            res["server_log_tail"] = srv.log_tail(40)
        return res

    def measure_stable(self, case: str, system: str, body_path: Path, **kw: Any) -> dict[str, Any]:
        """``measure``, repeated (within the run's retry budget) when other processes disturbed it; keeps the
        least disturbed attempt."""
        best = self.measure(case, system, body_path, **kw)
        attempts = 1
        if not best["server_alive"] and system != "direct" and self.restart_budget > 0:
            # killed from outside (exit code recorded): start it again and measure the point once more
            self.restart_budget -= 1
            killed = {"exit_code": best.get("server_exit_code"), "first_attempt": {
                k: best.get(k) for k in ("ok", "errors", "error_kinds", "throughput_rps", "p50_ms", "p99_ms")}}
            if self.ensure(system, fresh=True):
                body = json.loads(body_path.read_text())
                self.check_and_warm(case, system, body, count=5)
                best = self.measure(case, system, body_path, **kw)
                attempts += 1
                best["restarted_after_server_exit"] = killed
        while ((best.get("other_cpu_pct") or 0) > self.args.disturbed_pct and self.retry_budget > 0
               and attempts < 3):
            self.retry_budget -= 1
            attempts += 1
            log(f"{case}/{system} {best['load']}: other processes used {best['other_cpu_pct']:.0f}% of a CPU; "
                f"measuring again")
            again = self.measure(case, system, body_path, **kw)
            if (again.get("other_cpu_pct") or 0) < (best.get("other_cpu_pct") or 0):
                best = again
        best["attempts"] = attempts
        return best

    # ---------------------------------------------------------------- cases
    def body_file(self, case: str, system: str, body: dict[str, Any]) -> Path:
        path = self.tmp / f"body-{case}-{system}.json"
        path.write_text(json.dumps(body))
        return path

    def case_size(self, case: str) -> dict[str, Any]:
        """A size or conversion case: every applicable system checked, warmed and driven with the same load.

        Points: (b64_256 only) open loop at ``--rates`` and closed loop at ``--concurrency``; (every case) one
        connection, sequential, for the added latency without queueing; (the others) a few connections for
        throughput, CPU per request and peak RSS per request in flight."""
        mode, side = case_kind(case)
        convert = mode in ("webp", "avif")
        conc, seconds, warm = (CONVERT_LOAD if convert else SIZE_LOAD)[side]
        timeout = CONVERT_TIMEOUT_S if convert else SIZE_TIMEOUT_S.get(side)
        if self.args.quick:
            seconds, warm = QUICK_SECONDS[side], min(warm, 3)
        if self.args.duration_given:
            seconds = self.args.duration
        systems = [s for s in SYSTEMS if s in self.args.systems]
        out: dict[str, Any] = {"points": [], "unavailable": {}, "side": side, "mode": mode, "seconds": seconds}
        for system in systems:
            if system == "direct":
                continue
            if case_body(case, system) is None:
                why = NA_REASON.get(system, "not applicable")
                if self.ensure(system):
                    why += "; " + self.describe_answer(system, {**(case_body(case, "mediagate") or {}),
                                                                "size": "256x256"})
                out["unavailable"][system] = why
            elif not self.ensure(system, fresh=True):
                out["unavailable"][system] = self.unavailable_reason(system)
        live = [s for s in systems if s not in out["unavailable"]]
        files = {}
        for system in list(live):
            body = case_body(case, system)
            assert body is not None
            problem = self.check_and_warm(case, system, body, count=warm)
            if problem:
                log(f"{case}/{system}: check failed: {problem}")
                out["unavailable"][system] = f"check request failed: {problem}"
                live.remove(system)
                continue
            files[system] = self.body_file(case, system, body)
        out["answers"] = {s: self.checked.get((case, s)) for s in live}
        expect = '"url"' if mode == "url" else "b64_json"
        loads: list[dict[str, Any]] = []
        if case == HEADLINE_CASE:
            loads += [{"rate": rate, "duration": self.args.duration} for rate in self.args.rates]
        loads.append({"concurrency": 1, "duration": seconds})
        answer = self.checked.get((case, "mediagate")) or {}
        if convert and answer.get("image_format") != mode:
            # not converted (AVIF above the gateway's inline limit): the more-connections point would repeat b64_S
            out["note"] = f"mediagate answered {answer.get('image_format')}: only the one-connection point is measured"
        else:
            loads.append({"concurrency": self.args.concurrency if case == HEADLINE_CASE else conc,
                          "duration": self.args.duration if case == HEADLINE_CASE else seconds})
        for load in loads:
            for system in live:
                res = self.measure_stable(case, system, files[system], expect=expect, timeout=timeout, **load)
                log(_line(res))
                out["points"].append(res)
                self.clear_media()
        _add_overhead(out["points"])
        if mode in ("webp", "avif") and case in self.upstream_png:
            out["floor"] = self.pillow_floor(case, self.upstream_png[case], mode)
            log(f"{case}: Pillow floor {out['floor']}")
        out["mediagate_log"] = self.mediagate_log_summary()
        return out

    def clear_media(self) -> None:
        """mediagate stores every url answer (and a 4096² one is 50 MB): empty its media dir between points."""
        media = self.tmp / "media"
        for path in media.rglob("*"):
            if path.is_file():
                path.unlink(missing_ok=True)

    def pillow_floor(self, case: str, png: bytes, fmt: str) -> dict[str, Any]:
        """Pillow's own time for the conversion the gateway does, in a bare Python process (Pillow only) pinned to
        the gateway's CPU: decode the upstream's PNG, encode with the gateway's settings (engine/imaging.py)."""
        src = self.tmp / f"floor-{case}.png"
        src.write_bytes(png)
        reps = FLOOR_REPS_QUICK if self.args.quick else FLOOR_REPS
        settings = floor_settings(fmt)
        taskset = ["taskset", "-c", self.gw_cpus] if self.gw_cpus else []
        argv = taskset + [self.python, "-c", FLOOR_SCRIPT, str(src), fmt, json.dumps(settings),
                          str(reps[case_kind(case)[1]])]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=self.base_env())
        if proc.returncode != 0:
            return {"error": (proc.stderr or proc.stdout)[-500:]}
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["settings"] = settings
        res["png_bytes"] = len(png)
        return res

    def case_n4(self) -> dict[str, Any]:
        reps = self.args.n4_reps
        out: dict[str, Any] = {"reps": reps, "body": N4_BODY, "unavailable": {}}
        self.ensure("mediagate")
        n1, n4 = [], []
        problems: list[str] = []
        self.post("mediagate", {**N4_BODY, "n": 1})  # warm
        for _ in range(reps):
            for n, bucket in ((1, n1), (4, n4)):
                status, data, took = self.post("mediagate", {**N4_BODY, "n": n})
                ok = status == 200 and len(json.loads(data).get("data", [])) == n
                if ok:
                    bucket.append(took * 1000)
                else:
                    problems.append(f"n={n}: HTTP {status} {data[:200].decode('utf-8', 'replace')}")
        out["mediagate"] = {"n1_ms": [round(x, 1) for x in n1], "n4_ms": [round(x, 1) for x in n4],
                            "n1_median_ms": _median(n1), "n4_median_ms": _median(n4),
                            "ratio": round(_median(n4) / _median(n1), 3) if n1 and n4 else None,
                            "problems": problems}
        for peer in PEERS:
            if peer in self.args.systems:
                out["unavailable"][peer] = ("not comparable: the peers send n to the upstream as it is; neither "
                                            "splits n over calls to a model that makes one image per call")
        return out

    def case_fal(self) -> dict[str, Any]:
        """End-to-end latency of a fal queue model and, from the simulator's request log, how long after the
        job's completion time the gateway's poll saw it (the result fetch follows the first COMPLETED status)."""
        self.ensure("mediagate")
        self.sim_control("/reset", {})
        out: dict[str, Any] = {"model": FAL_MODEL, "job_ms": FAL_JOB_MS, "samples": [], "sweep": []}
        body = {"model": FAL_MODEL, "prompt": "bench fal warm [sim:job=50]", "response_format": "b64_json"}
        self.post("mediagate", body)
        for i in range(self.args.fal_reps):
            out["samples"].append(self._fal_one(f"bench fal {i} {secrets.token_hex(4)}", FAL_JOB_MS))
        with ThreadPoolExecutor(len(FAL_SWEEP_MS)) as pool:
            futs = [pool.submit(self._fal_one, f"bench fal sweep {ms} {secrets.token_hex(4)}", ms, False)
                    for ms in FAL_SWEEP_MS]
            sweep = [f.result() for f in futs]
        entries = self.sim_control("/requests?protocol=fal")["requests"]
        for s in out["samples"] + sweep:
            s.update(_fal_timeline(entries, s))
        out["sweep"] = sweep
        notice = [s["notice_ms"] for s in out["samples"] if s.get("notice_ms") is not None]
        out["notice_ms_median"] = _median(notice)
        out["notice_ms_max"] = round(max(notice), 1) if notice else None
        sweep_notice = [s["notice_ms"] for s in sweep if s.get("notice_ms") is not None]
        out["sweep_notice_ms_max"] = round(max(sweep_notice), 1) if sweep_notice else None
        e2e = [s["e2e_ms"] - s["job_ms"] for s in out["samples"] if s.get("status") == 200]
        out["beyond_job_ms_median"] = _median(e2e)
        return out

    def _fal_one(self, prompt: str, job_ms: int, sequential: bool = True) -> dict[str, Any]:
        body = {"model": FAL_MODEL, "prompt": f"{prompt} [sim:job={job_ms}]", "response_format": "b64_json"}
        t_send = time.time()
        status, data, took = self.post("mediagate", body, timeout=60)
        t_done = time.time()
        res = {"prompt": body["prompt"], "job_ms": job_ms, "status": status, "e2e_ms": round(took * 1000, 1),
               "t_send": t_send, "t_done": t_done}
        if status != 200:
            res["answer"] = data[:300].decode("utf-8", "replace")
        return res

    def case_rss(self) -> dict[str, Any]:
        out: dict[str, Any] = {"concurrency": RSS_CONCURRENCY, "side": RSS_SIDE, "points": [], "unavailable": {}}
        dur = self.args.rss_duration
        case = f"b64_{RSS_SIDE}"
        for system in [s for s in SYSTEMS if s in self.args.systems]:
            if system != "direct" and not self.ensure(system, fresh=True):
                out["unavailable"][system] = self.unavailable_reason(system)
                continue
            body = case_body(case, system)
            assert body is not None
            problem = self.check_and_warm("rss_200", system, body, count=3)
            if problem:
                out["unavailable"][system] = f"check request failed: {problem}"
                continue
            res = self.measure_stable("rss_200", system, self.body_file("rss_200", system, body),
                                      concurrency=RSS_CONCURRENCY, duration=dur, timeout=SIZE_TIMEOUT_S[RSS_SIDE])
            log(_line(res))
            out["points"].append(res)
        out["answers"] = {s: self.checked.get(("rss_200", s)) for s in SYSTEMS}
        out["mediagate_log"] = self.mediagate_log_summary()
        return out

    def mediagate_log_summary(self) -> dict[str, Any]:
        """Status counts and error lines of mediagate's own log (one JSON line per request)."""
        path = self.tmp / "mediagate.log"
        statuses: dict[str, int] = {}
        problems: list[str] = []
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return {}
        for line in lines[self._mg_log_seen:]:
            if line.startswith("{") and '"endpoint"' in line:
                try:
                    status = str(json.loads(line).get("status"))
                    statuses[status] = statuses.get(status, 0) + 1
                    continue
                except ValueError:
                    pass
            if any(w in line for w in ("Traceback", "ERROR", "Error", "unhandled", "Exception", "WARNING")):
                problems.append(line[:300])
        self._mg_log_seen = len(lines)
        return {"request_statuses": statuses, "problem_lines": problems[:20], "problem_line_count": len(problems)}

    _mg_log_seen = 0

    # ---------------------------------------------------------------- whole run
    def run(self) -> dict[str, Any]:
        args = self.args
        t_start = time.time()
        r = self.results
        r["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t_start))
        r["command"] = " ".join(shlex.quote(a) for a in _orig_argv())
        r["settings"] = {"rates": args.rates, "duration_s": args.duration, "saturation_concurrency": args.concurrency,
                         "timeout_s": args.timeout, "max_inflight": args.max_inflight, "quick": args.quick,
                         "quiet_threshold": args.quiet_threshold, "nice": args.nice, "disturbed_pct": args.disturbed_pct,
                         "gateway_cpus": self.gw_cpus, "aux_cpus": self.aux_cpus, "workers_per_gateway": 1,
                         "cases": args.cases, "systems": args.systems,
                         "size_load": {str(k): {"concurrency": v[0], "seconds": QUICK_SECONDS[k] if args.quick else v[1],
                                                "timeout_s": SIZE_TIMEOUT_S.get(k, args.timeout)}
                                       for k, v in SIZE_LOAD.items()},
                         "convert_load": {str(k): {"concurrency": v[0], "seconds": QUICK_SECONDS[k] if args.quick else v[1],
                                                   "timeout_s": CONVERT_TIMEOUT_S} for k, v in CONVERT_LOAD.items()},
                         "duration_given": args.duration_given}
        for peer, module in (("litellm", litellm_env), ("portkey", portkey_env)):
            if peer in args.systems:
                try:
                    self.peer_version[peer] = module.ensure(log)
                except Exception as exc:  # noqa: BLE001 - report why, keep measuring the rest
                    self.peer_error[peer] = f"install failed: {exc}"
                    log(f"{peer}: {self.peer_error[peer]}")
        r["environment"] = self.environment()
        busy0 = procs.core_times()
        own0 = _own_cpu()
        t_measure = time.monotonic()
        self.start_sim()
        try:
            for case in args.cases:
                log(f"=== case {case}")
                try:
                    if case in SIZE_CASES or case in CONVERT_CASES:
                        r["cases"][case] = self.case_size(case)
                    elif case == "n4_latency":
                        r["cases"][case] = self.case_n4()
                    elif case == "fal_async":
                        r["cases"][case] = self.case_fal()
                    elif case == "rss_200":
                        r["cases"][case] = self.case_rss()
                except Exception as exc:  # noqa: BLE001 - one broken case must not lose the others
                    log(f"case {case} failed: {exc}")
                    r["cases"][case] = {"failed": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            for system, srv in self.servers.items():
                r.setdefault("whole_run_peak_rss_mb", {})[system] = round(procs.peak_rss_mb(srv.pids()), 1)
        finally:
            self.stop_all()
        busy1 = procs.core_times()
        own1 = _own_cpu()
        machine_busy = (busy1["cpu"][0] - busy0["cpu"][0]) / procs.CLK_TCK
        r["cpu_accounting"] = {"machine_busy_cpu_s": round(machine_busy, 1), "benchmark_processes_cpu_s": round(own1 - own0, 1),
                               "unattributed_cpu_s": round(machine_busy - (own1 - own0), 1),
                               "measure_wall_s": round(time.monotonic() - t_measure, 1),
                               "loadgen_cpu_s": round(self.loadgen_cpu_s, 1)}
        r["litellm"] = {"version": self.peer_version.get("litellm"), "error": self.peer_error.get("litellm"),
                        "config": litellm_env.config_text("http://127.0.0.1:<sim-port>/openai/v1"),
                        "env": {k: v for k, v in litellm_env.env({}, "<generated>").items()
                                if k not in ("NO_PROXY", "no_proxy")}}
        r["portkey"] = {"version": self.peer_version.get("portkey"), "error": self.peer_error.get("portkey"),
                        "package": portkey_env.PACKAGE, "argv": portkey_env.argv(0)[:1] + [
                            "bench/.portkey/node_modules/@portkey-ai/gateway/build/start-server.js", "--port=P",
                            "--headless"],
                        "env": {"NODE_ENV": "production"},
                        "headers": portkey_env.headers("http://127.0.0.1:<sim-port>/openai/v1", "bench")}
        r["size_table"] = report.size_table(r)
        r["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        r["total_runtime_s"] = round(time.time() - t_start, 1)
        r["targets"] = report.targets(r)
        return r

    def environment(self) -> dict[str, Any]:
        env: dict[str, Any] = {}
        cpuinfo = Path("/proc/cpuinfo").read_text()
        env["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                                 if ln.startswith("model name")), platform.processor())
        env["nproc"] = os.cpu_count()
        mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
        env["memory_gib"] = round(int(mem.split()[1]) / 1024 / 1024, 1)
        env["kernel"] = platform.release()
        env["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
        env["python"] = platform.python_version()
        env["mediagate_commit"] = _git("rev-parse", "HEAD")
        env["mediagate_tree_dirty"] = bool(_git("status", "--porcelain", "--", "engine", "sandbox", "models.d",
                                                "providers.d"))
        env["main_venv"] = _versions(self.python, ("uvicorn", "uvloop", "httptools", "starlette", "aiohttp", "pillow"))
        if "litellm" in self.peer_version:
            env["litellm_venv"] = litellm_env.package_versions()
        if "portkey" in self.peer_version:
            env["node"] = portkey_env.node_version()
        env["wrk"] = (subprocess.run([self.wrk, "--version"], capture_output=True, text=True).stdout.splitlines()
                      or ["?"])[0].strip() if self.wrk else None
        return env


class _RssSampler(threading.Thread):
    """Fallback peak-RSS reading (max VmRSS every 50 ms) where VmHWM cannot be reset."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids, self.peak, self._stop_evt = pids, 0.0, threading.Event()

    def run(self) -> None:
        while not self._stop_evt.wait(0.05):
            self.peak = max(self.peak, procs.rss_mb(self.pids))

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(1)


FLOOR_REPS = {1024: 5, 4096: 2}
FLOOR_REPS_QUICK = {1024: 2, 4096: 1}
# The floor process: Pillow only. Prints {"decode_s", "encode_s", "total_s", "cpu_s"} (medians over the reps) and
# which WebP method served (the gateway retries method 4 when method 0 overflows; the floor does the same).
FLOOR_SCRIPT = r"""
import io, json, sys, time
from PIL import Image
path, fmt, settings, reps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
data = open(path, "rb").read()
fallback = settings.pop("fallback_method", None)
rows = []
for _ in range(reps):
    c0, t0 = time.process_time(), time.perf_counter()
    im = Image.open(io.BytesIO(data)); im.load()
    t1 = time.perf_counter()
    buf = io.BytesIO(); method = settings.get("method")
    try:
        im.save(buf, fmt.upper(), **settings)
    except ValueError:
        if fallback is None:
            raise
        buf = io.BytesIO(); method = fallback
        im.save(buf, fmt.upper(), **{**settings, "method": fallback})
    t2 = time.perf_counter()
    rows.append((t1 - t0, t2 - t1, t2 - t0, time.process_time() - c0, method, len(buf.getvalue())))
med = lambda i: sorted(r[i] for r in rows)[len(rows) // 2]
print(json.dumps({"reps": reps, "decode_s": round(med(0), 4), "encode_s": round(med(1), 4), "total_s": round(med(2), 4),
                  "cpu_s": round(med(3), 4), "webp_method": rows[-1][4], "out_bytes": rows[-1][5]}))
"""


def floor_settings(fmt: str) -> dict[str, Any]:
    """The gateway's encoder settings for ``fmt`` (engine/imaging.py convert), for the floor process."""
    out: dict[str, Any] = {"quality": imaging.DEFAULT_QUALITY[fmt]}
    if fmt == "webp":
        out.update(method=imaging.WEBP_METHOD, fallback_method=imaging.WEBP_FALLBACK_METHOD)
    if fmt == "avif":
        out["speed"] = imaging.AVIF_SPEED
    return out


def image_format(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "avif"
    return repr(data[:12])


def expected_format(body: dict[str, Any]) -> str:
    """What a correct answer holds: the asked format, except AVIF beyond the gateway's inline limit, which keeps
    PNG and lists the adjustment (engine/imaging.py AVIF_MAX_SIDE_PX)."""
    fmt = body.get("output_format") or "png"
    if fmt == "avif":
        side = max(int(x) for x in str(body.get("size", "0x0")).split("x"))
        if side > imaging.AVIF_MAX_SIDE_PX:
            return "png"
    return fmt


def _parse_loadgen(out: str, tool: str) -> dict[str, Any] | None:
    if tool.startswith("wrk"):
        line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
        if line is None:
            return None
        w = json.loads(line[len("WRKJSON "):])
        errors = w["err_status"] + w["err_timeout"] + w["err_connect"] + w["err_read"] + w["err_write"]
        ok = max(0, w["requests"] - w["err_status"])
        dur = w["duration_us"] / 1e6
        kinds = {k: w[f"err_{k}"] for k in ("status", "timeout", "connect", "read", "write") if w[f"err_{k}"]}
        return {"ok": ok, "completed": w["requests"], "errors": errors, "error_kinds": kinds, "error_samples": {},
                "throughput_rps": round(ok / dur, 2) if dur else 0.0, "window_s": round(dur, 3),
                "p50_ms": w["p50_us"] / 1000, "p90_ms": w["p90_us"] / 1000, "p99_ms": w["p99_us"] / 1000,
                "max_ms": w["max_us"] / 1000, "mean_ms": round(w["mean_us"] / 1000, 3)}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            d = json.loads(line)
            http_errors = sum(v for k, v in d["error_kinds"].items() if k.startswith("http_") or k == "bad_body")
            d["completed"] = d["ok"] + http_errors
            return d
    return None


def _load_key(p: dict[str, Any]) -> tuple[str, float] | None:
    """Points whose latency is comparable across systems: the same open-loop rate, or one connection (at
    saturation latency is queueing, not overhead)."""
    if p.get("rate") is not None:
        return ("rate", p["rate"])
    if p.get("concurrency") == 1:
        return ("c", 1)
    return None


def _add_overhead(points: list[dict[str, Any]]) -> None:
    """Added latency = the system's percentile minus the direct call's under the same load."""
    direct = {_load_key(p): p for p in points if p["system"] == "direct" and _load_key(p) is not None}
    for p in points:
        key = _load_key(p)
        base = direct.get(key) if key is not None and p["system"] != "direct" else None
        for q in ("p50", "p99"):
            if base and p.get(f"{q}_ms") is not None and base.get(f"{q}_ms") is not None:
                p[f"added_{q}_ms"] = round(p[f"{q}_ms"] - base[f"{q}_ms"], 3)
            else:
                p[f"added_{q}_ms"] = None


def _fal_timeline(entries: list[dict[str, Any]], sample: dict[str, Any]) -> dict[str, Any]:
    submit = next((e for e in entries if e["method"] == "POST" and isinstance(e.get("json"), dict)
                   and e["json"].get("prompt") == sample["prompt"]), None)
    if submit is None or "request_id" not in submit:
        return {"timeline": "submit not found in the simulator log"}
    rid = submit["request_id"]
    completed_at = submit["time"] + sample["job_ms"] / 1000.0
    polls = [e["time"] for e in entries if e["method"] == "GET" and e["path"].endswith(f"/requests/{rid}/status")]
    result = next((e["time"] for e in entries if e["method"] == "GET" and e["path"].endswith(f"/requests/{rid}")), None)
    out: dict[str, Any] = {"request_id": rid, "polls": len(polls),
                           "poll_offsets_ms": [round((t - submit["time"]) * 1000, 1) for t in polls],
                           "submit_after_send_ms": round((submit["time"] - sample["t_send"]) * 1000, 1)}
    if result is not None:
        out["notice_ms"] = round((result - completed_at) * 1000, 1)
        out["after_notice_ms"] = round((sample["t_done"] - result) * 1000, 1)
    return out


def _line(res: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)
    return (f"{res['case']:9} {res['system']:9} {res['load']:16} thr={f(res.get('throughput_rps'))}/s "
            f"p50={f(res.get('p50_ms'))} p99={f(res.get('p99_ms'))} max={f(res.get('max_ms'))} ms "
            f"err={res.get('errors')} cpu/1k={f(res.get('cpu_s_per_1k'))}s rss={f(res.get('peak_rss_mb'))}MB "
            f"cores={res.get('core_busy_pct', {})} other={f(res.get('other_cpu_pct'))}%")


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return round(s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2, 1)


def _self_cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    return s.ru_utime + s.ru_stime


def _own_cpu() -> float:
    """CPU seconds of this harness plus every child it has waited for (servers, load generators)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _git(*argv: str) -> str:
    out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def _versions(python: str, names: tuple[str, ...]) -> dict[str, str | None]:
    code = ("import importlib.metadata as m, json\nout = {}\n"
            f"for n in {list(names)!r}:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\nprint(json.dumps(out))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _orig_argv() -> list[str]:
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    try:
        argv[0] = os.path.relpath(argv[0], Path.cwd()) if Path(argv[0]).is_absolute() else argv[0]
    except ValueError:
        pass
    return argv


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s per point and fewer samples (a smoke run)")
    p.add_argument("--cases", default=",".join(ALL_CASES), help=f"comma-separated subset of {','.join(ALL_CASES)}")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    p.add_argument("--rates", default="50,200,500", help="open-loop rates in req/s")
    p.add_argument("--duration", type=float, help="seconds per point (default 10, 20 for 4096²; --quick 3-8); "
                                                   "given, it applies to every point")
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop connections for the saturation point")
    p.add_argument("--timeout", type=float, help="per-request timeout in seconds (default 10; --quick 5)")
    p.add_argument("--max-inflight", type=int, default=256, help="open loop: outstanding requests before skipping")
    p.add_argument("--gateway-cpus", default="0", help="taskset CPU list for each gateway process")
    p.add_argument("--aux-cpus", default="1", help="taskset CPU list for the simulator and the load generators")
    p.add_argument("--quiet-threshold", type=float, default=0.2,
                   help="before each point, wait while other processes use more than this share of a CPU")
    p.add_argument("--quiet-budget", type=float, default=60.0, help="seconds the whole run may spend waiting so")
    p.add_argument("--disturbed-pct", type=float, default=25.0,
                   help="a point during which other processes used more than this %% of a CPU is measured again")
    p.add_argument("--retry-budget", type=int, default=8, help="how many points the whole run may measure again")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness for every process of the benchmark (negative, as root, shields the "
                        "measurements from other work on a shared machine)")
    p.add_argument("--no-wrk", action="store_true", help="closed-loop runs with loadgen.py even if wrk is installed")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (server logs, bodies, raw outputs)")
    p.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    p.add_argument("--json", help="raw results (default: results.json beside --out)")
    args = p.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    bad = [c for c in args.cases if c not in ALL_CASES]
    if bad:
        p.error(f"unknown case(s) {bad}; known: {ALL_CASES}")
    args.systems = [s for s in args.systems.split(",") if s]
    if "direct" not in args.systems:
        args.systems.insert(0, "direct")
    args.rates = [float(r) for r in args.rates.split(",") if r]
    bad = [s for s in args.systems if s not in SYSTEMS]
    if bad:
        p.error(f"unknown system(s) {bad}; known: {SYSTEMS}")
    args.duration_given = args.duration is not None
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.timeout = args.timeout or (5.0 if args.quick else 10.0)
    args.n4_reps = 3 if args.quick else 7
    args.fal_reps = 3 if args.quick else 7
    args.rss_duration = 3.0 if args.quick else 6.0
    return args


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop every started process


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    if args.nice:
        try:
            os.nice(args.nice)  # every process started from here on inherits it
        except OSError as exc:
            print(f"--nice {args.nice} not allowed ({exc}); running at normal priority", file=sys.stderr)
            args.nice = 0
    if args.aux_cpus and (os.cpu_count() or 1) > 1:
        try:
            os.sched_setaffinity(0, {int(c) for c in args.aux_cpus.split(",")})  # keep the harness off the gateway CPU
        except (OSError, ValueError):
            pass
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        bench.stop_all()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = Path(args.json) if args.json else out.parent / "results.json"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    out.write_text(report.markdown(results))
    log(f"wrote {out} and {json_path} in {results['total_runtime_s']:.0f} s")
    for t in results["targets"]:
        log(f"target {t['target']}: {t['measured']} -> {t['met']}")
    if args.keep_tmp:
        log(f"kept logs and bodies in {bench.tmp}")
    else:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
