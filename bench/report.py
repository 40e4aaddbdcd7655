"""Targets computed from the numbers, and RESULTS.md."""

from __future__ import annotations

from typing import Any

CASE_TITLES = {
    "b64_256": "b64_256 — 256×256 PNG, b64_json passthrough (dall-e-2)",
    "png_1024": "png_1024 — 1024×1024 PNG passthrough (gpt-image-1, base64)",
    "webp_1024": "webp_1024 — 1024×1024 PNG from upstream, converted to WebP by the gateway (dall-e-2)",
    "n4_latency": "n4_latency — n=4 on a one-image model (dall-e-3) with 200 ms upstream latency",
    "fal_async": "fal_async — fal queue model (submit + poll + result)",
    "rss_200": "rss_200 — peak RSS with 200 concurrent 1024×1024 requests (closed loop, c=200)",
}


def _point(r: dict[str, Any], case: str, system: str, rate: float | None = None,
           concurrency: int | None = None) -> dict[str, Any] | None:
    for p in r.get("cases", {}).get(case, {}).get("points", []):
        if p["system"] != system:
            continue
        if rate is not None and p.get("rate") == rate:
            return p
        if concurrency is not None and p.get("rate") is None:
            return p
    return None


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def headline(r: dict[str, Any]) -> dict[str, Any]:
    conc = r.get("settings", {}).get("saturation_concurrency")
    mg = _point(r, "b64_256", "mediagate", concurrency=conc)
    ll = _point(r, "b64_256", "litellm", concurrency=conc)
    out: dict[str, Any] = {"mediagate_rps": mg and mg["throughput_rps"], "litellm_rps": ll and ll["throughput_rps"]}
    out["ratio"] = round(mg["throughput_rps"] / ll["throughput_rps"], 2) if mg and ll and ll["throughput_rps"] else None
    return out


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(target: str, measured: str, met: bool | None, detail: str = "") -> None:
        rows.append({"target": target, "measured": measured, "met": "yes" if met else ("no" if met is False else
                                                                                       "not measured"),
                     "detail": detail})

    lim = r.get("settings", {}).get("disturbed_pct", 25.0)
    p200 = _point(r, "b64_256", "mediagate", rate=200.0)
    d200 = _point(r, "b64_256", "direct", rate=200.0)
    errs = p200 and p200.get("errors")
    if p200 and p200.get("added_p50_ms") is not None:
        row("added latency p50 <= 1 ms at 200 req/s (b64_256)", f"{p200['added_p50_ms']:.2f} ms",
            p200["added_p50_ms"] <= 1.0 and not errs,
            f"mediagate p50 {p200['p50_ms']:.2f} ms vs direct {p200['p50_ms'] - p200['added_p50_ms']:.2f} ms; "
            f"{errs} errors" + _disturbed(p200, lim) + _disturbed(d200, lim).replace("this point", "the direct point"))
        row("added latency p99 <= 5 ms at 200 req/s (b64_256)", f"{p200['added_p99_ms']:.2f} ms",
            p200["added_p99_ms"] <= 5.0 and not errs,
            f"mediagate p99 {p200['p99_ms']:.2f} ms vs direct {p200['p99_ms'] - p200['added_p99_ms']:.2f} ms")
    else:
        row("added latency p50 <= 1 ms at 200 req/s (b64_256)", "—", None)
        row("added latency p99 <= 5 ms at 200 req/s (b64_256)", "—", None)

    h = headline(r)
    if h["ratio"] is not None:
        row("saturation throughput >= 5x LiteLLM proxy (b64_256, 1 worker each)", f"{h['ratio']:.2f}x",
            h["ratio"] >= 5.0, f"mediagate {h['mediagate_rps']:.0f} req/s vs LiteLLM {h['litellm_rps']:.0f} req/s"
            + _disturbed(_point(r, "b64_256", "mediagate", concurrency=1), lim)
            + _disturbed(_point(r, "b64_256", "litellm", concurrency=1), lim).replace("this point", "LiteLLM's point"))
    else:
        why = (r.get("litellm") or {}).get("error") or "LiteLLM not measured"
        row("saturation throughput >= 5x LiteLLM proxy (b64_256, 1 worker each)", "—", None, str(why)[:200])

    n4 = r.get("cases", {}).get("n4_latency", {}).get("mediagate")
    if n4 and n4.get("ratio") is not None:
        row("n=4 wall time <= 1.3x n=1 (dall-e-3, 200 ms upstream)", f"{n4['ratio']:.2f}x", n4["ratio"] <= 1.3,
            f"median n=4 {n4['n4_median_ms']:.0f} ms vs n=1 {n4['n1_median_ms']:.0f} ms")
    else:
        row("n=4 wall time <= 1.3x n=1 (dall-e-3, 200 ms upstream)", "—", None)

    rss = _point(r, "rss_200", "mediagate", concurrency=200)
    if rss:
        row("peak RSS < 300 MB with 200 concurrent 1024×1024 requests", f"{rss['peak_rss_mb']:.0f} MB",
            rss["peak_rss_mb"] < 300 and not rss.get("errors"),
            f"RSS before load {rss['rss_before_mb']:.0f} MB; {rss['throughput_rps']:.0f} req/s; {rss['errors']} errors"
            + _disturbed(rss, lim))
    else:
        row("peak RSS < 300 MB with 200 concurrent 1024×1024 requests", "—", None)

    fal = r.get("cases", {}).get("fal_async", {})
    if fal.get("notice_ms_max") is not None:
        row(f"poll completion noticed within 250 ms (job={fal['job_ms']} ms, the issue's case)",
            f"max {fal['notice_ms_max']:.0f} ms (median {fal['notice_ms_median']:.0f})",
            fal["notice_ms_max"] <= 250, f"{len(fal['samples'])} sequential jobs")
    else:
        row("poll completion noticed within 250 ms (job=300 ms)", "—", None)
    if fal.get("sweep_notice_ms_max") is not None:
        sweep = ", ".join(f"{s['job_ms']}→{_fmt(s.get('notice_ms'), 0)}" for s in fal["sweep"])
        row("poll completion noticed within 250 ms (job-length sweep, worst)",
            f"max {fal['sweep_notice_ms_max']:.0f} ms", fal["sweep_notice_ms_max"] <= 250,
            f"job ms→notice ms: {sweep}")
    return rows


def _case_table(case: str, c: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    gw = f"cpu{str(settings.get('gateway_cpus') or '').split(',')[0]}"
    aux = f"cpu{str(settings.get('aux_cpus') or '').split(',')[0]}"
    out = ["| system | load | throughput req/s | p50 ms | p99 ms | max ms | added p50 ms | added p99 ms | "
           "server CPU s / 1k req | peak RSS MB | errors | CPU busy % gw core / aux core | other processes % CPU |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
    for p in c.get("points", []):
        err = p.get("errors")
        kinds = p.get("error_kinds") or {}
        err_text = f"{err}" + (f" ({', '.join(f'{k}: {v}' for k, v in kinds.items())})" if kinds else "")
        busy = p.get("core_busy_pct", {})
        out.append(f"| {p['system']} | {p['load']} | {_fmt(p.get('throughput_rps'))} | {_fmt(p.get('p50_ms'), 2)} | "
                   f"{_fmt(p.get('p99_ms'), 2)} | {_fmt(p.get('max_ms'), 1)} | {_fmt(p.get('added_p50_ms'), 2)} | "
                   f"{_fmt(p.get('added_p99_ms'), 2)} | {_fmt(p.get('cpu_s_per_1k'), 3)} | "
                   f"{_fmt(p.get('peak_rss_mb'), 0)} | {err_text} | "
                   f"{_fmt(busy.get(gw), 0)} / {_fmt(busy.get(aux), 0)} | {_other(p, settings)} |")
    for system, why in c.get("unavailable", {}).items():
        out.append(f"| {system} | — | N/A | | | | | | | | | {why} | |")
    return out


def _other(p: dict[str, Any], settings: dict[str, Any]) -> str:
    v = p.get("other_cpu_pct")
    if v is None:
        return "—"
    mark = " ⚠" if v > settings.get("disturbed_pct", 25.0) else ""
    return f"{max(0.0, v):.0f}{mark}"


def _disturbed(p: dict[str, Any] | None, limit: float) -> str:
    if p and (p.get("other_cpu_pct") or 0) > limit:
        return f" ⚠ other processes used {p['other_cpu_pct']:.0f}% of a CPU during this point"
    return ""


def _error_samples(c: dict[str, Any]) -> list[str]:
    lines = []
    for p in c.get("points", []):
        for kind, sample in (p.get("error_samples") or {}).items():
            lines.append(f"- {p['system']} @ {p['load']}: `{kind}`: `{sample[:200]}`")
    for p in c.get("points", []):
        if p.get("restarted_after_server_exit"):
            k = p["restarted_after_server_exit"]
            lines.append(f"- {p['system']} @ {p['load']}: the server process exited during the first attempt (exit "
                         f"code {k['exit_code']}; negative = killed by that signal); it was restarted and the point "
                         f"measured again. First attempt: {k['first_attempt']}")
        elif p.get("server_alive") is False:
            lines.append(f"- {p['system']} @ {p['load']}: the server process was not running at the end of the point "
                         f"(exit code {p.get('server_exit_code')})")
    log = c.get("mediagate_log") or {}
    if log.get("request_statuses"):
        lines.append(f"- mediagate's own request log over this case: statuses {log['request_statuses']}; "
                     f"{log.get('problem_line_count', 0)} warning/error lines")
        for ln in log.get("problem_lines", [])[:5]:
            lines.append(f"  - `{ln[:200]}`")
    return lines


def markdown(r: dict[str, Any]) -> str:
    env = r.get("environment", {})
    s = r.get("settings", {})
    ll = r.get("litellm", {})
    h = headline(r)
    L: list[str] = ["# mediagate benchmark results", "",
                    "Generated by `bench/run.py`; do not edit by hand (re-run it). Raw numbers: `bench/results.json`.",
                    ""]
    L += ["## Headline", ""]
    if h["ratio"] is not None:
        L.append(f"**Saturation throughput on b64_256, one worker process each: mediagate {h['mediagate_rps']:.0f} "
                 f"req/s / LiteLLM proxy {h['litellm_rps']:.0f} req/s = {h['ratio']:.2f}x.**")
    else:
        L.append(f"LiteLLM proxy not measured: {ll.get('error')}")
    L += ["", "## Targets", "", "| target | measured | met? | detail |", "| --- | --- | --- | --- |"]
    for t in r.get("targets", []):
        L.append(f"| {t['target']} | {t['measured']} | {t['met']} | {t['detail']} |")
    L += ["", "## Run", "",
          f"- command: `{r.get('command')}`",
          f"- started {r.get('started')}, finished {r.get('finished')}, total {r.get('total_runtime_s')} s",
          f"- machine: {env.get('nproc')} CPUs ({env.get('cpu_model')}), {env.get('memory_gib')} GiB RAM, "
          f"Linux {env.get('kernel')}; load average at start {' '.join(env.get('loadavg_at_start', []))}",
          f"- Python {env.get('python')}; mediagate commit `{env.get('mediagate_commit')}`"
          f"{' (engine/sandbox/specs have uncommitted changes)' if env.get('mediagate_tree_dirty') else ''}; "
          f"main venv {env.get('main_venv')}",
          f"- LiteLLM proxy: `litellm[proxy]=={ll.get('version')}` in `bench/.venv-litellm` "
          f"({env.get('litellm_venv', {})})" if ll.get("version") else f"- LiteLLM proxy: not run ({ll.get('error')})",
          f"- workers: 1 process per gateway, pinned with taskset to CPU {s.get('gateway_cpus')}; the simulator, "
          f"the load generators and this harness share CPU {s.get('aux_cpus')} (the same for every system)"
          + (f"; every benchmark process runs at niceness {s.get('nice')}" if s.get("nice") else ""),
          f"- load: open loop at {', '.join(f'{x:g}' for x in s.get('rates', []))} req/s for {s.get('duration_s'):g} s "
          f"each (`bench/loadgen.py`, Python asyncio + aiohttp; latency counted from each request's scheduled send "
          f"time; at most {s.get('max_inflight')} outstanding, more count as `skipped_inflight_cap`; "
          f"{s.get('timeout_s'):g} s timeout); saturation closed loop with {s.get('saturation_concurrency')} "
          f"connections for {s.get('duration_s'):g} s ({env.get('wrk') or 'loadgen.py closed loop'}, status "
          f"codes only, no body check)",
          "- added latency = the system's percentile minus the direct call's percentile at the same rate (the "
          "direct call is the same request body sent straight to the simulator's OpenAI endpoint)",
          "- each gateway is restarted fresh for b64_256, png_1024, webp_1024 and rss_200; the simulator runs "
          "throughout",
          "- server CPU s / 1k req: user+system CPU of the server process tree (from /proc/PID/stat) over the "
          "point, per 1,000 answered requests; peak RSS: VmHWM of the server process tree, reset before each "
          "point (`/proc/PID/clear_refs`)"]
    acc = r.get("cpu_accounting", {})
    if acc:
        L.append(f"- CPU during the measurements: machine busy {acc.get('machine_busy_cpu_s')} CPU s, of which the "
                 f"benchmark's own processes {acc.get('benchmark_processes_cpu_s')} s (load generators "
                 f"{acc.get('loadgen_cpu_s')} s); not attributed to them (other processes on the machine, kernel "
                 f"softirq): {acc.get('unattributed_cpu_s')} s over {acc.get('measure_wall_s')} s")
    L += ["- other processes % CPU: machine busy time during the point minus the benchmark's own processes, in % of "
          "one CPU (approximate: kernel softirq time for loopback traffic lands here too; shown as 0 when the "
          "difference is negative). Before each point the harness waits (bounded) while it is above "
          f"{100 * s.get('quiet_threshold', 0.2):.0f}%; a point above {s.get('disturbed_pct', 25):g}% is measured "
          "again (bounded) and the least disturbed attempt kept; ⚠ marks points still above it.",
          "- mediagate's own log counts 499 for requests whose client went away: wrk closes its connections with "
          "requests still in flight when its time is up, and the open-loop generator abandons requests at its "
          "timeout; both show up there, not as gateway failures."]
    L.append("")
    for case in s.get("cases", []):
        c = r.get("cases", {}).get(case, {})
        L += [f"## {CASE_TITLES.get(case, case)}", ""]
        if "failed" in c:
            L += [f"Case failed: `{c['failed']}`", ""]
            continue
        if case in ("b64_256", "png_1024", "webp_1024", "rss_200"):
            L += _case_table(case, c, s)
            samples = _error_samples(c)
            if samples:
                L += ["", "Errors and logs:", ""] + samples
            L.append("")
        elif case == "n4_latency":
            mg = c.get("mediagate", {})
            L += ["| system | n=1 median ms | n=4 median ms | n=4 / n=1 | notes |", "| --- | ---: | ---: | ---: | --- |",
                  f"| mediagate | {_fmt(mg.get('n1_median_ms'))} | {_fmt(mg.get('n4_median_ms'))} | "
                  f"{_fmt(mg.get('ratio'), 2)} | {c.get('reps')} alternating sequential pairs; "
                  f"n=1 {mg.get('n1_ms')}, n=4 {mg.get('n4_ms')}"
                  f"{'; problems: ' + '; '.join(mg['problems']) if mg.get('problems') else ''} |"]
            d = c.get("direct", {})
            L.append(f"| direct (simulator) | {_fmt(d.get('n1_median_ms'))} | HTTP {d.get('n4_status')} | — | "
                     f"n=4 answer: `{(d.get('n4_answer') or '')[:160]}` |")
            lc = c.get("litellm")
            if lc:
                L.append(f"| litellm | {_fmt(lc.get('n1_median_ms'))} | HTTP {lc.get('n4_status')} "
                         f"({_fmt(lc.get('n4_ms'))} ms) | — | n=4 answer: `{(lc.get('n4_answer') or '')[:240]}` |")
            for system, why in c.get("unavailable", {}).items():
                L.append(f"| {system} | N/A | | | {why} |")
            L.append("")
        elif case == "fal_async":
            L += [f"Model `{c.get('model')}` through mediagate (the simulator's fal queue). \"Noticed\" = when the "
                  "gateway fetched the result (it does so right after the first COMPLETED status) minus the job's "
                  "completion time (submit time + job ms), both read from the simulator's request log. The poll "
                  "schedule is declared in providers.d/fal.yaml (first poll after 0.1 s, x1.5 backoff, at most 2 s "
                  "apart). LiteLLM: N/A — its fal_ai image provider calls the synchronous fal.run endpoint, there is "
                  "no poll to measure.", "",
                  "| run | job ms | e2e ms | e2e − job ms | notice ms | polls | poll times after submit (ms) | "
                  "result → client ms |", "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
            runs = [("sequential", x) for x in c.get("samples", [])] + [("sweep", x) for x in c.get("sweep", [])]
            for kind, smp in runs:
                L.append(f"| {kind} | {smp['job_ms']} | {_fmt(smp.get('e2e_ms'))} | "
                         f"{_fmt(smp['e2e_ms'] - smp['job_ms'] if smp.get('status') == 200 else None)} | "
                         f"{_fmt(smp.get('notice_ms'))} | {smp.get('polls', '—')} | {smp.get('poll_offsets_ms', '')} | "
                         f"{_fmt(smp.get('after_notice_ms'))} |"
                         + (f" HTTP {smp['status']}: {smp.get('answer', '')[:120]}" if smp.get("status") != 200 else ""))
            L += ["", f"Job {c.get('job_ms')} ms: notice median {_fmt(c.get('notice_ms_median'))} ms, max "
                  f"{_fmt(c.get('notice_ms_max'))} ms; end-to-end beyond the job median "
                  f"{_fmt(c.get('beyond_job_ms_median'))} ms. Sweep (one request per job length, concurrent): worst "
                  f"notice {_fmt(c.get('sweep_notice_ms_max'))} ms.", ""]
    L += ["## LiteLLM proxy configuration", "",
          "Shape of shared/reference/seeds/000 (`model_list`, `openai/<model>`, `api_key` from the environment, "
          "`api_base`), pointed at the same simulator; started as "
          "`litellm --config litellm_config.yaml --host 127.0.0.1 --port P --num_workers 1` with environment "
          f"`{ll.get('env')}`. The proxy refuses to start without a master key, so both gateways get the same "
          "bearer key (mediagate via `MEDIAGATE_API_KEYS`).", "", "```yaml", (ll.get("config") or "").rstrip(), "```",
          "", "mediagate: `python -m mediagate.cli serve --host 127.0.0.1 --port P` (the `mediagate serve` entry point) with `MEDIAGATE_SANDBOX=off`, "
          "`OPENAI_BASE_URL=<sim>/openai/v1`, `OPENAI_API_KEY=bench`, `FAL_QUEUE_URL=<sim>/fal/queue`, `FAL_KEY=bench`, "
          "`GEMINI_BASE_URL=<sim>/gemini`, `GEMINI_API_KEY=bench`, `MEDIAGATE_MEDIA_DIR=<tmp>`, "
          "`MEDIAGATE_RELOAD_SECONDS=0`, `MEDIAGATE_API_KEYS=<key>` (its default INFO log: one JSON line per request, "
          "to a file).", ""]
    return "\n".join(L) + "\n"
