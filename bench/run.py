#!/usr/bin/env python3
"""mediagate benchmark: mediagate vs. LiteLLM's proxy vs. the upstream called directly, in one run.

    .venv/bin/python bench/run.py [--quick] [--cases b64_256,png_1024,...] [--out bench/RESULTS.md]

Starts, on free loopback ports, the provider simulator (``python -m sandbox --latency-ms 0``), mediagate
(``mediagate serve``, every provider pointed at that simulator, sandbox off) and LiteLLM's proxy (pinned,
in bench/.venv-litellm, created on first use) configured against the same simulator. Each gateway is one
process pinned to its own CPU; the simulator and the load generators share the other CPU, the same for
every system. Each case drives each system with the same load: open loop at fixed rates (latency counted
from the scheduled send time) and closed loop at saturation. Writes RESULTS.md and results.json.
"""

from __future__ import annotations

import argparse
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

import litellm_env  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402

ALL_CASES = ("b64_256", "png_1024", "webp_1024", "n4_latency", "fal_async", "rss_200")
SYSTEMS = ("direct", "mediagate", "litellm")
RATE_CASES = ("b64_256", "png_1024", "webp_1024")

_256 = {"model": "dall-e-2", "prompt": "bench", "size": "256x256", "response_format": "b64_json"}
_1024 = {"model": "gpt-image-1", "prompt": "bench", "size": "1024x1024"}
_WEBP_UP = {"model": "dall-e-2", "prompt": "bench", "size": "1024x1024", "response_format": "b64_json"}
BODIES: dict[str, dict[str, dict[str, Any] | None]] = {
    "b64_256": {"direct": _256, "mediagate": _256, "litellm": _256},
    # gpt-image answers base64 on its own; mediagate would answer a URL unless asked for b64_json
    "png_1024": {"direct": _1024, "mediagate": {**_1024, "response_format": "b64_json"}, "litellm": _1024},
    # the gateway converts PNG -> WebP; "direct" gets exactly what mediagate sends upstream (no output_format)
    "webp_1024": {"direct": _WEBP_UP, "mediagate": {**_WEBP_UP, "output_format": "webp"}, "litellm": None},
}
NA_REASON = {("webp_1024", "litellm"): "LiteLLM's proxy has no image format conversion"}
N4_BODY = {"model": "dall-e-3", "prompt": "bench [sim:latency=200]", "response_format": "b64_json"}
FAL_MODEL = "fal/flux.1-schnell"
FAL_JOB_MS = 300
FAL_SWEEP_MS = (300, 500, 1000, 2000, 3000)


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
        self.litellm_error: str | None = None
        self.litellm_version: str | None = None
        self.results: dict[str, Any] = {"cases": {}, "notes": []}
        self.loadgen_cpu_s = 0.0
        self.quiet_budget = args.quiet_budget
        self.retry_budget = args.retry_budget
        self.restart_budget = 3

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
               "MEDIAGATE_MEDIA_DIR": str(media), "MEDIAGATE_RELOAD_SECONDS": "0",
               "MEDIAGATE_API_KEYS": self.key}
        # `python -m mediagate.cli serve` is exactly what the `mediagate serve` console script runs; started this way
        # the process does not match a `pkill -f "mediagate serve"` someone else may run on a shared machine
        # (during development a gateway under test was twice killed by an outside SIGTERM).
        argv = [self.python, "-m", "mediagate.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
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

    def ensure(self, system: str, fresh: bool = False) -> bool:
        """Have ``system``'s gateway running (restarted if ``fresh``); False when it cannot run."""
        if system == "direct":
            return True
        if system == "litellm" and self.litellm_error:
            return False
        srv = self.servers.get(system)
        if srv is not None and srv.alive() and not fresh:
            return True
        if srv is not None:
            srv.stop()
        srv = self.mediagate_server() if system == "mediagate" else self.litellm_server()
        try:
            took = srv.start(180)
        except RuntimeError as exc:
            if system == "litellm":
                self.litellm_error = str(exc)
                log(f"LiteLLM proxy did not start: {exc}")
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
        return {"Authorization": "Bearer " + ("bench" if system == "direct" else self.key)}

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
        import base64
        status, data, _ = self.post(system, body)
        if status != 200:
            return f"probe with the mediagate body: HTTP {status}: {data[:200].decode('utf-8', 'replace')}"
        try:
            item = json.loads(data)["data"][0]
            head = base64.b64decode((item.get("b64_json") or "")[:64])
            kind = "WebP" if head.startswith(b"RIFF") else "PNG" if head.startswith(b"\x89PNG") else repr(head[:8])
            return f"probe with the mediagate body: HTTP 200 with a {kind} image"
        except (ValueError, KeyError, IndexError, TypeError):
            return f"probe with the mediagate body: HTTP 200, unreadable: {data[:120].decode('utf-8', 'replace')}"

    def check_and_warm(self, case: str, system: str, body: dict[str, Any], count: int = 20) -> str | None:
        """Validate one answer (200 + base64 image of the right size) and warm up; the problem, if any."""
        status, data, _ = self.post(system, body)
        if status != 200:
            return f"HTTP {status}: {data[:300].decode('utf-8', 'replace')}"
        try:
            doc = json.loads(data)
            item = doc["data"][0]
            if not item.get("b64_json"):
                return f"200 without data[0].b64_json: {data[:300].decode('utf-8', 'replace')}"
            import base64
            head = base64.b64decode(item["b64_json"][:64])
            want = b"RIFF" if body.get("output_format") == "webp" else b"\x89PNG"
            if not head.startswith(want):
                return f"200 but the image starts with {head[:8]!r}, expected {want!r}"
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return f"unreadable 200 body ({exc}): {data[:200].decode('utf-8', 'replace')}"
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
                concurrency: int | None = None, duration: float) -> dict[str, Any]:
        srv = self.server_of(system)
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
                              "--timeout", str(self.args.timeout), "--max-inflight", str(self.args.max_inflight)]
            argv += [x for k, v in hdrs.items() for x in ("--header", f"{k}: {v}")]
            tool = "loadgen (open loop)"
        elif self.wrk:
            argv = taskset + [self.wrk, "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--timeout",
                              f"{self.args.timeout:g}s", "-s", str(BENCH / "wrk_post.lua")]
            argv += [x for k, v in hdrs.items() for x in ("-H", f"{k}: {v}")]
            argv += [self.url(system), "--", str(body_path)]
            tool = "wrk (closed loop)"
        else:
            argv = taskset + [self.python, str(BENCH / "loadgen.py"), "--url", self.url(system), "--body-file",
                              str(body_path), "--concurrency", str(concurrency), "--duration", str(duration),
                              "--timeout", str(self.args.timeout)]
            argv += [x for k, v in hdrs.items() for x in ("--header", f"{k}: {v}")]
            tool = "loadgen (closed loop)"
        rc, lg_cpu, out = procs.run_measured(argv, out_file, duration + 2 * self.args.timeout + 30)
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
                               "load": f"{rate:g} req/s" if rate is not None else f"saturation c={concurrency}",
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

    def case_rates(self, case: str) -> dict[str, Any]:
        systems = [s for s in SYSTEMS if s in self.args.systems]
        out: dict[str, Any] = {"points": [], "unavailable": {}}
        for system in systems:
            if system != "direct":
                if BODIES[case][system] is None:
                    why = NA_REASON.get((case, system), "not applicable")
                    probe = BODIES[case]["mediagate"]
                    if probe is not None and self.ensure(system):
                        why += "; " + self.describe_answer(system, probe)
                    out["unavailable"][system] = why
                    continue
                if not self.ensure(system, fresh=True):
                    out["unavailable"][system] = f"did not start: {self.litellm_error}"
                    continue
        live = [s for s in systems if s not in out["unavailable"]]
        files = {}
        for system in list(live):
            body = BODIES[case][system]
            assert body is not None
            problem = self.check_and_warm(case, system, body)
            if problem:
                log(f"{case}/{system}: check failed: {problem}")
                out["unavailable"][system] = f"check request failed: {problem}"
                live.remove(system)
                continue
            files[system] = self.body_file(case, system, body)
        for rate in self.args.rates:
            for system in live:
                res = self.measure_stable(case, system, files[system], rate=rate, duration=self.args.duration)
                log(_line(res))
                out["points"].append(res)
        for system in live:
            res = self.measure_stable(case, system, files[system], concurrency=self.args.concurrency,
                                      duration=self.args.duration)
            log(_line(res))
            out["points"].append(res)
        _add_overhead(out["points"])
        out["mediagate_log"] = self.mediagate_log_summary()
        return out

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
        direct = [self.post("direct", {**N4_BODY, "n": 1})[2] * 1000 for _ in range(max(3, reps // 2))]
        out["direct"] = {"n1_median_ms": _median(direct)}
        status, data, _ = self.post("direct", {**N4_BODY, "n": 4})
        out["direct"]["n4_status"] = status
        out["direct"]["n4_answer"] = data[:300].decode("utf-8", "replace")
        if "litellm" in self.args.systems and self.ensure("litellm"):
            status, data, took = self.post("litellm", {**N4_BODY, "n": 4})
            ll1 = []
            for _ in range(max(3, reps // 2)):
                s1, d1, t1 = self.post("litellm", {**N4_BODY, "n": 1})
                if s1 == 200:
                    ll1.append(t1 * 1000)
            out["litellm"] = {"n4_status": status, "n4_ms": round(took * 1000, 1),
                              "n4_answer": data[:400].decode("utf-8", "replace"), "n1_median_ms": _median(ll1)}
        elif "litellm" in self.args.systems:
            out["unavailable"]["litellm"] = f"did not start: {self.litellm_error}"
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
        out: dict[str, Any] = {"concurrency": 200, "points": [], "unavailable": {}}
        dur = self.args.rss_duration
        for system in [s for s in SYSTEMS if s in self.args.systems]:
            if system != "direct" and not self.ensure(system, fresh=True):
                out["unavailable"][system] = f"did not start: {self.litellm_error}"
                continue
            body = BODIES["png_1024"][system]
            assert body is not None
            problem = self.check_and_warm("png_1024", system, body, count=3)
            if problem:
                out["unavailable"][system] = f"check request failed: {problem}"
                continue
            res = self.measure_stable("rss_200", system, self.body_file("rss_200", system, body), concurrency=200,
                                      duration=dur)
            log(_line(res))
            out["points"].append(res)
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
                         "cases": args.cases, "systems": args.systems}
        if "litellm" in args.systems:
            try:
                self.litellm_version = litellm_env.ensure(log)
            except Exception as exc:  # noqa: BLE001 - report why, keep measuring the rest
                self.litellm_error = f"install failed: {exc}"
                log(self.litellm_error)
        r["environment"] = self.environment()
        busy0 = procs.core_times()
        own0 = _own_cpu()
        t_measure = time.monotonic()
        self.start_sim()
        try:
            for case in args.cases:
                log(f"=== case {case}")
                try:
                    if case in RATE_CASES:
                        r["cases"][case] = self.case_rates(case)
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
        r["litellm"] = {"version": self.litellm_version, "error": self.litellm_error,
                        "config": litellm_env.config_text("http://127.0.0.1:<sim-port>/openai/v1"),
                        "env": {k: v for k, v in litellm_env.env({}, "<generated>").items()
                                if k not in ("NO_PROXY", "no_proxy")}}
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
        if self.litellm_version:
            env["litellm_venv"] = litellm_env.package_versions()
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


def _add_overhead(points: list[dict[str, Any]]) -> None:
    """Added latency = the system's percentile minus the direct call's at the same rate."""
    direct = {p["rate"]: p for p in points if p["system"] == "direct" and p["rate"] is not None}
    for p in points:
        base = direct.get(p["rate"]) if p["rate"] is not None and p["system"] != "direct" else None
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
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of direct,mediagate,litellm")
    p.add_argument("--rates", default="50,200,500", help="open-loop rates in req/s")
    p.add_argument("--duration", type=float, help="seconds per point (default 10; --quick 3)")
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
