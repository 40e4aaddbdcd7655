"""Targets computed from the numbers, the size table with its least-squares slopes, and RESULTS.md."""

from __future__ import annotations

from typing import Any

PEERS = ("litellm", "portkey")
PEER_NAMES = {"litellm": "LiteLLM proxy", "portkey": "Portkey gateway"}
SYSTEM_ORDER = ("direct", "mediagate", "litellm", "portkey")
MB = 1024 * 1024
LINEAR_R2 = 0.95                # a fit this good or better is called linear
TARGET_RATIO = {"litellm": 20.0, "portkey": 3.0}   # saturation on b64_256, mediagate / peer
TARGET_ADDED_P50_MS = 1.0       # at 200 req/s, b64_256
TARGET_ADDED_P99_MS = 3.0
TARGET_RSS_200_MB = 400.0       # peak RSS, 200 concurrent 3 MB-PNG requests
TARGET_CONVERT_RATIO = 1.2      # gateway time per conversion / Pillow's own decode + encode
MODE_TITLES = {"b64": "base64 PNG passthrough", "url": "url answer", "webp": "converted to WebP by the gateway",
               "avif": "converted to AVIF by the gateway"}


def case_title(case: str) -> str:
    fixed = {
        "n4_latency": "n4_latency — n=4 on a one-image-per-call model (gemini-3-pro-image, fanned out) with 200 ms "
                      "upstream latency",
        "fal_async": "fal_async — fal queue model (submit + poll + result)",
        "rss_200": "rss_200 — peak RSS with 200 concurrent 1024×1024 noise-PNG requests (3.1 MB PNG, b64_json; "
                   "closed loop, c=200)",
    }
    if case in fixed:
        return fixed[case]
    mode, _, side = case.partition("_")
    return f"{case} — {side}×{side} noise PNG from bench-image, {MODE_TITLES.get(mode, mode)}"


def _point(r: dict[str, Any], case: str, system: str, rate: float | None = None,
           concurrency: int | None = None) -> dict[str, Any] | None:
    """The point of ``system`` at open-loop ``rate``, or at closed-loop ``concurrency``."""
    for p in r.get("cases", {}).get(case, {}).get("points", []):
        if p["system"] != system:
            continue
        if rate is not None and p.get("rate") == rate:
            return p
        if concurrency is not None and p.get("rate") is None and p.get("concurrency") == concurrency:
            return p
    return None


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def headline(r: dict[str, Any]) -> dict[str, Any]:
    """Saturation throughput on b64_256, one worker each, and mediagate's ratio to each peer."""
    conc = r.get("settings", {}).get("saturation_concurrency")
    out: dict[str, Any] = {}
    for system in SYSTEM_ORDER:
        p = _point(r, "b64_256", system, concurrency=conc)
        out[f"{system}_rps"] = p["throughput_rps"] if p else None
    mg = out.get("mediagate_rps")
    for peer in PEERS:
        peer_rps = out.get(f"{peer}_rps")
        out[f"ratio_{peer}"] = round(mg / peer_rps, 2) if mg and peer_rps else None
    return out


def least_squares(xs: list[float], ys: list[float]) -> dict[str, float] | None:
    """y = slope * x + intercept, and R² (1 = a straight line); None below 2 points or with no spread in x."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"slope": slope, "intercept": intercept, "r2": r2, "points": n}


SIZE_METRICS = (("cpu_ms_per_req", "server CPU ms / request"), ("rss_per_inflight_mb", "peak RSS MB / request in flight"),
                ("added_p50_ms", "added p50 ms (1 connection)"))


def size_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per size or conversion case and system: the numbers the size table shows."""
    rows: list[dict[str, Any]] = []
    for case, c in r.get("cases", {}).items():
        if "side" not in c or case == "rss_200" or "points" not in c:
            continue
        payload = ((c.get("answers") or {}).get("direct") or {}).get("image_bytes")
        for system in SYSTEM_ORDER:
            one = next((p for p in c["points"] if p["system"] == system and p.get("concurrency") == 1
                        and p.get("rate") is None), None)
            many = [p for p in c["points"] if p["system"] == system and p.get("rate") is None
                    and (p.get("concurrency") or 0) > 1]
            if one is None and not many:
                continue
            top = max(many, key=lambda p: p["concurrency"]) if many else one
            assert top is not None
            growth = (top.get("peak_rss_mb") or 0) - (top.get("rss_before_mb") or 0)
            answer = ((c.get("answers") or {}).get(system) or {})
            rows.append({"case": case, "mode": c["mode"], "side": c["side"], "system": system,
                         "payload_bytes": payload, "answer_bytes": answer.get("answer_bytes"),
                         "image_bytes": answer.get("image_bytes"), "image_format": answer.get("image_format"),
                         "adjustments": answer.get("adjustments") or [],
                         "p50_ms": one and one.get("p50_ms"), "p99_ms": one and one.get("p99_ms"),
                         "added_p50_ms": one and one.get("added_p50_ms"),
                         "added_p99_ms": one and one.get("added_p99_ms"),
                         "concurrency": top.get("concurrency"), "throughput_rps": top.get("throughput_rps"),
                         "cpu_ms_per_req": top.get("cpu_s_per_1k"), "peak_rss_mb": top.get("peak_rss_mb"),
                         "rss_per_inflight_mb": round(growth / top["concurrency"], 2) if top.get("concurrency") else None,
                         "errors": (one or {}).get("errors", 0) + sum(p.get("errors") or 0 for p in many)})
    return rows


def size_fits(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per system and mode (b64, url): each metric against the payload's bytes, least squares."""
    fits: list[dict[str, Any]] = []
    for mode in ("b64", "url"):
        for system in SYSTEM_ORDER:
            mine = [x for x in rows if x["mode"] == mode and x["system"] == system and x["payload_bytes"]]
            for key, label in SIZE_METRICS:
                pts = [(x["payload_bytes"] / MB, x[key]) for x in mine if x.get(key) is not None]
                fit = least_squares([p[0] for p in pts], [p[1] for p in pts])
                if fit is None:
                    continue
                fits.append({"mode": mode, "system": system, "metric": key, "label": label,
                             "slope_per_mb": round(fit["slope"], 4), "intercept": round(fit["intercept"], 3),
                             "r2": round(fit["r2"], 4), "points": fit["points"],
                             "linear": fit["r2"] >= LINEAR_R2 if fit["points"] > 2 else None})
    return fits


def conversions(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The gateway's time per conversion (added latency over the direct PNG call, one connection) against
    Pillow's own decode + encode of the same PNG in a bare process."""
    out = []
    for case, c in r.get("cases", {}).items():
        if c.get("mode") not in ("webp", "avif"):
            continue
        mg = next((p for p in c.get("points", []) if p["system"] == "mediagate" and p.get("concurrency") == 1
                   and p.get("rate") is None), None)
        floor = c.get("floor") or {}
        answer = (c.get("answers") or {}).get("mediagate") or {}
        converted = answer.get("image_format") == c["mode"]
        row: dict[str, Any] = {"case": case, "side": c["side"], "format": c["mode"], "converted": converted,
                               "answer_format": answer.get("image_format"), "adjustments": answer.get("adjustments"),
                               "gateway_added_ms": mg and mg.get("added_p50_ms"), "gateway_p50_ms": mg and mg.get("p50_ms"),
                               "gateway_cpu_ms": mg and mg.get("cpu_s_per_1k"),
                               "floor_decode_ms": _ms(floor.get("decode_s")), "floor_encode_ms": _ms(floor.get("encode_s")),
                               "floor_total_ms": _ms(floor.get("total_s")), "floor_cpu_ms": _ms(floor.get("cpu_s")),
                               "floor_webp_method": floor.get("webp_method"), "floor_error": floor.get("error"),
                               "out_bytes": answer.get("image_bytes"), "floor_out_bytes": floor.get("out_bytes")}
        if converted and row["gateway_added_ms"] is not None and row["floor_total_ms"]:
            row["ratio"] = round(row["gateway_added_ms"] / row["floor_total_ms"], 2)
        else:
            row["ratio"] = None
        # CPU: the gateway's whole request (passthrough included) against Pillow's decode + encode; steadier than
        # wall time on a busy machine, and it counts an encoder's extra threads on both sides
        if converted and row["gateway_cpu_ms"] is not None and row["floor_cpu_ms"]:
            row["cpu_ratio"] = round(row["gateway_cpu_ms"] / row["floor_cpu_ms"], 2)
        else:
            row["cpu_ratio"] = None
        out.append(row)
    return out


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000.0, 1)


def size_table(r: dict[str, Any]) -> dict[str, Any]:
    rows = size_rows(r)
    return {"rows": rows, "fits": size_fits(rows), "conversions": conversions(r)}


def size_summary(r: dict[str, Any]) -> str | None:
    """The size table in one line (for the README): mediagate's b64 cost per MB of payload."""
    fits = {(f["system"], f["mode"], f["metric"]): f for f in (r.get("size_table") or size_table(r))["fits"]}
    cpu, rss = fits.get(("mediagate", "b64", "cpu_ms_per_req")), fits.get(("mediagate", "b64", "rss_per_inflight_mb"))
    if not cpu or not rss:
        return None
    return (f"passing a PNG through as base64 costs mediagate {cpu['slope_per_mb']:.2f} ms of CPU and "
            f"{rss['slope_per_mb']:.2f} MB of peak RSS per request in flight per MB of PNG (256² to 4096², "
            f"R² {cpu['r2']:.2f} / {rss['r2']:.2f})")


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(target: str, measured: str, met: bool | None, detail: str = "") -> None:
        rows.append({"target": target, "measured": measured, "met": "yes" if met else ("no" if met is False else
                                                                                       "not measured"),
                     "detail": detail})

    lim = r.get("settings", {}).get("disturbed_pct", 25.0)
    conc = r.get("settings", {}).get("saturation_concurrency")
    h = headline(r)
    for peer in PEERS:
        name = f"saturation throughput >= {TARGET_RATIO[peer]:g}x {PEER_NAMES[peer]} (b64_256, 1 worker each)"
        ratio = h.get(f"ratio_{peer}")
        if ratio is not None:
            row(name, f"{ratio:.2f}x", ratio >= TARGET_RATIO[peer],
                f"mediagate {h['mediagate_rps']:.0f} req/s vs {h[f'{peer}_rps']:.0f} req/s"
                + _disturbed(_point(r, "b64_256", "mediagate", concurrency=conc), lim)
                + _disturbed(_point(r, "b64_256", peer, concurrency=conc), lim).replace("this point", f"{peer}'s point"))
        else:
            why = (r.get(peer) or {}).get("error") or f"{PEER_NAMES[peer]} not measured"
            row(name, "—", None, str(why)[:200])

    p200 = _point(r, "b64_256", "mediagate", rate=200.0)
    d200 = _point(r, "b64_256", "direct", rate=200.0)
    errs = p200 and p200.get("errors")
    name50 = f"added latency p50 <= {TARGET_ADDED_P50_MS:g} ms at 200 req/s (b64_256)"
    name99 = f"added latency p99 <= {TARGET_ADDED_P99_MS:g} ms at 200 req/s (b64_256)"
    if p200 and p200.get("added_p50_ms") is not None:
        row(name50, f"{p200['added_p50_ms']:.2f} ms", p200["added_p50_ms"] <= TARGET_ADDED_P50_MS and not errs,
            f"mediagate p50 {p200['p50_ms']:.2f} ms vs direct {p200['p50_ms'] - p200['added_p50_ms']:.2f} ms; "
            f"{errs} errors" + _disturbed(p200, lim) + _disturbed(d200, lim).replace("this point", "the direct point"))
        row(name99, f"{p200['added_p99_ms']:.2f} ms", p200["added_p99_ms"] <= TARGET_ADDED_P99_MS and not errs,
            f"mediagate p99 {p200['p99_ms']:.2f} ms vs direct {p200['p99_ms'] - p200['added_p99_ms']:.2f} ms")
    else:
        row(name50, "—", None)
        row(name99, "—", None)

    rss = _point(r, "rss_200", "mediagate", concurrency=200)
    name = f"peak RSS <= {TARGET_RSS_200_MB:g} MB with 200 concurrent 3 MB-PNG requests (rss_200)"
    if rss:
        row(name, f"{rss['peak_rss_mb']:.0f} MB", rss["peak_rss_mb"] <= TARGET_RSS_200_MB and not rss.get("errors"),
            f"RSS before load {rss['rss_before_mb']:.0f} MB, "
            f"{(rss['peak_rss_mb'] - rss['rss_before_mb']) / 200:.2f} MB per request in flight; "
            f"{rss['throughput_rps']:.0f} req/s; {rss['errors']} errors" + _disturbed(rss, lim))
    else:
        row(name, "—", None)

    fits = {(f["system"], f["mode"], f["metric"]): f for f in (r.get("size_table") or size_table(r))["fits"]}
    for metric, label in (("cpu_ms_per_req", "CPU per request"), ("rss_per_inflight_mb", "peak RSS per request in flight")):
        f = fits.get(("mediagate", "b64", metric))
        name = f"{label} linear in payload bytes (mediagate, b64 256²-4096², R² >= {LINEAR_R2})"
        if f and f["points"] > 2:
            row(name, f"R² {f['r2']:.3f}, slope {f['slope_per_mb']:.3f} per MB", f["r2"] >= LINEAR_R2,
                f"{f['points']} sizes; intercept {f['intercept']:.2f}")
        else:
            row(name, "—", None, "fewer than 3 b64 sizes measured")

    for cv in (r.get("size_table") or size_table(r))["conversions"]:
        name = f"conversion <= {TARGET_CONVERT_RATIO:g}x Pillow's own decode + encode ({cv['case']})"
        if not cv["converted"]:
            adj = "; ".join(a.get("reason", "") for a in cv.get("adjustments") or [])
            row(name, "not converted", None, f"the gateway answered {cv['answer_format']} ({adj or 'no adjustment'}); "
                f"Pillow would take {_fmt(cv['floor_total_ms'], 0)} ms (decode {_fmt(cv['floor_decode_ms'], 0)} + "
                f"encode {_fmt(cv['floor_encode_ms'], 0)})")
        elif cv["ratio"] is not None:
            row(name, f"{cv['ratio']:.2f}x", cv["ratio"] <= TARGET_CONVERT_RATIO,
                f"gateway +{cv['gateway_added_ms']:.0f} ms over the direct PNG call vs Pillow "
                f"{cv['floor_total_ms']:.0f} ms (decode {cv['floor_decode_ms']:.0f} + encode "
                f"{cv['floor_encode_ms']:.0f}); CPU {_fmt(cv.get('cpu_ratio'), 2)}x (gateway "
                f"{_fmt(cv['gateway_cpu_ms'], 0)} ms per request vs Pillow {_fmt(cv['floor_cpu_ms'], 0)} ms)")
        else:
            row(name, "—", None, str(cv.get("floor_error") or "")[:200])

    n4 = r.get("cases", {}).get("n4_latency", {}).get("mediagate")
    if n4 and n4.get("ratio") is not None:
        row("n=4 wall time <= 1.3x n=1 (gemini-3-pro-image fanned out, 200 ms upstream)", f"{n4['ratio']:.2f}x",
            n4["ratio"] <= 1.3, f"median n=4 {n4['n4_median_ms']:.0f} ms vs n=1 {n4['n1_median_ms']:.0f} ms")
    else:
        row("n=4 wall time <= 1.3x n=1 (gemini-3-pro-image fanned out, 200 ms upstream)", "—", None)

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


def _headline_lines(r: dict[str, Any]) -> list[str]:
    h = headline(r)
    if h.get("mediagate_rps") is None:
        return ["b64_256 saturation not measured."]
    parts = [f"mediagate {h['mediagate_rps']:.0f} req/s"]
    for peer in PEERS:
        if h.get(f"ratio_{peer}") is not None:
            parts.append(f"{PEER_NAMES[peer]} {h[f'{peer}_rps']:.0f} req/s (mediagate {h[f'ratio_{peer}']:.2f}x)")
        else:
            parts.append(f"{PEER_NAMES[peer]} not measured ({str((r.get(peer) or {}).get('error'))[:120]})")
    if h.get("direct_rps") is not None:
        parts.append(f"the simulator called directly {h['direct_rps']:.0f} req/s")
    out = [f"**Saturation throughput on b64_256 (a 256² noise PNG as base64), one worker process each: "
           f"{'; '.join(parts)}.**"]
    summary = size_summary(r)
    if summary:
        out += ["", f"**Sizes: {summary}.**"]
    return out


def _size_tables(r: dict[str, Any]) -> list[str]:
    st = r.get("size_table") or size_table(r)
    rows, fits = st["rows"], st["fits"]
    if not rows:
        return []
    L = ["## Cost against size", "",
         "One row per case and system. Latency columns: one connection, sequential (no queueing); added = minus the "
         "direct call's. Throughput, CPU and RSS: the closed-loop point at the given connections (b64_256: "
         "saturation). RSS per request in flight = (peak RSS − RSS before the point) / connections. Payload = the "
         "upstream's PNG.", "",
         "| case | system | payload MB | answer MB | p50 ms | added p50 ms | added p99 ms | connections | "
         "throughput req/s | CPU ms / request | peak RSS MB | RSS MB / request in flight | errors |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for x in rows:
        L.append(f"| {x['case']} | {x['system']} | {_fmt(_mb(x['payload_bytes']), 2)} | {_fmt(_mb(x['answer_bytes']), 2)} | "
                 f"{_fmt(x['p50_ms'], 2)} | {_fmt(x['added_p50_ms'], 2)} | {_fmt(x['added_p99_ms'], 2)} | "
                 f"{_fmt(x['concurrency'])} | {_fmt(x['throughput_rps'])} | {_fmt(x['cpu_ms_per_req'], 2)} | "
                 f"{_fmt(x['peak_rss_mb'], 0)} | {_fmt(x['rss_per_inflight_mb'], 2)} | {x['errors']} |")
    if fits:
        L += ["", f"Growth with payload bytes (least squares over the sizes measured; linear = R² ≥ {LINEAR_R2}, "
              "with 3 or more sizes):", "",
              "| mode | system | metric | slope per MB of PNG | intercept | R² | sizes | linear? |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for f in fits:
            lin = "—" if f["linear"] is None else ("yes" if f["linear"] else "no")
            L.append(f"| {f['mode']} | {f['system']} | {f['label']} | {f['slope_per_mb']:.4f} | {f['intercept']:.3f} | "
                     f"{f['r2']:.4f} | {f['points']} | {lin} |")
        if any(x["mode"] == "url" for x in rows):
            L += ["", "url: mediagate asks the upstream for base64 (bench-image's `values`), stores the image and "
                  "answers its own signed `/v1/media` URL, so the bytes pass through it; the peers and the direct call "
                  "ask the upstream for a URL and hand the simulator's URL on: no image bytes pass through them, and "
                  "their cost does not grow with the size."]
    conv = st["conversions"]
    if conv:
        L += ["", "### Conversions against Pillow's floor", "",
              "Gateway time per image = its p50 minus the direct PNG call's (one connection). Floor = Pillow alone in "
              "a bare Python process pinned to the gateway's CPU: decode the same PNG, encode it with the gateway's "
              "settings (engine/imaging.py), median of a few runs.", "",
              "| case | answered | gateway time per image ms | Pillow decode ms | Pillow encode ms | Pillow total ms | "
              "gateway / Pillow (time) | gateway CPU ms / request | Pillow CPU ms | gateway / Pillow (CPU) | "
              "output KB gateway / Pillow | note |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for cv in conv:
            note = ""
            if not cv["converted"]:
                note = "not converted: " + "; ".join(a.get("reason", "") for a in cv.get("adjustments") or [])
            elif cv.get("floor_webp_method") is not None:
                note = f"libwebp method {cv['floor_webp_method']} in the floor"
            if cv.get("floor_error"):
                note += f" floor failed: {cv['floor_error'][:120]}"
            L.append(f"| {cv['case']} | {cv['answer_format']} | {_fmt(cv['gateway_added_ms'], 0)} | "
                     f"{_fmt(cv['floor_decode_ms'], 0)} | {_fmt(cv['floor_encode_ms'], 0)} | "
                     f"{_fmt(cv['floor_total_ms'], 0)} | {_fmt(cv['ratio'], 2)} | {_fmt(cv['gateway_cpu_ms'], 0)} | "
                     f"{_fmt(cv['floor_cpu_ms'], 0)} | {_fmt(cv.get('cpu_ratio'), 2)} | "
                     f"{_fmt(_kb(cv['out_bytes']), 0)} / {_fmt(_kb(cv['floor_out_bytes']), 0)} | {note} |")
    L.append("")
    return L


def _g(v: float | None) -> str:
    return "—" if v is None else f"{v:g}"


def _mb(v: int | None) -> float | None:
    return None if v is None else v / MB


def _kb(v: int | None) -> float | None:
    return None if v is None else v / 1024


def markdown(r: dict[str, Any]) -> str:
    env = r.get("environment", {})
    s = r.get("settings", {})
    ll = r.get("litellm", {})
    pk = r.get("portkey", {})
    L: list[str] = ["# mediagate benchmark results", "",
                    "Generated by `bench/run.py`; do not edit by hand (re-run it). Raw numbers: `bench/results.json`.",
                    ""]
    L += ["## Headline", ""] + _headline_lines(r)
    L += ["", "## Targets", "", "| target | measured | met? | detail |", "| --- | --- | --- | --- |"]
    for t in r.get("targets", []):
        L.append(f"| {t['target']} | {t['measured']} | {t['met']} | {t['detail']} |")
    size_load = ", ".join(f"{k}²: {v['concurrency']} connections, {v['seconds']:g} s"
                          for k, v in (s.get("size_load") or {}).items())
    convert_load = ", ".join(f"{k}²: {v['concurrency']} connections, {v['seconds']:g} s"
                             for k, v in (s.get("convert_load") or {}).items())
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
          f"- Portkey gateway: `{pk.get('package')}@{pk.get('version')}` (npm, in `bench/.portkey`), Node "
          f"{env.get('node')}" if pk.get("version") else f"- Portkey gateway: not run ({pk.get('error')})",
          f"- workers: 1 process per gateway, pinned with taskset to CPU {s.get('gateway_cpus')}; the simulator, "
          f"the load generators and this harness share CPU {s.get('aux_cpus')} (the same for every system)"
          + (f"; every benchmark process runs at niceness {s.get('nice')}" if s.get("nice") else ""),
          f"- model: `bench-image` (bench/specs/bench-image.yaml: the `local-openai` provider, here the simulator), "
          f"prompt `bench [sim:noise]`: random pixels, so the PNGs are incompressible (256² 0.2 MB … 4096² 50 MB)",
          f"- b64_256: open loop at {', '.join(f'{x:g}' for x in s.get('rates', []))} req/s for "
          f"{_g(s.get('duration_s'))} s each (`bench/loadgen.py`, Python asyncio + aiohttp; latency counted from each "
          f"request's scheduled send time; at most {s.get('max_inflight')} outstanding, more count as "
          f"`skipped_inflight_cap`; {_g(s.get('timeout_s'))} s timeout); one connection; saturation closed loop with "
          f"{s.get('saturation_concurrency')} connections ({env.get('wrk') or 'loadgen.py closed loop'})",
          f"- size cases other than b64_256: one connection, then more ({size_load}); conversions: one connection, "
          f"then {convert_load}; all closed loop, per-request timeouts long enough for the big sizes (results.json "
          "settings)",
          "- added latency = the system's percentile minus the direct call's under the same load (the direct call is "
          "the same request body sent straight to the simulator's OpenAI endpoint)",
          "- each gateway is restarted fresh for every size case and rss_200; the simulator runs throughout",
          "- server CPU s / 1k req (= ms / request): user+system CPU of the server process tree (from /proc/PID/stat) "
          "over the point, per answered request; peak RSS: VmHWM of the server process tree, reset before each "
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
          "- mediagate's own log counts 499 for requests whose client went away: the closed-loop generators stop "
          "with requests still in flight when their time is up, and the open-loop generator abandons requests at "
          "its timeout; both show up there, not as gateway failures."]
    L.append("")
    L += _size_tables(r)
    for case in s.get("cases", []):
        c = r.get("cases", {}).get(case, {})
        L += [f"## {case_title(case)}", ""]
        if "failed" in c:
            L += [f"Case failed: `{c['failed']}`", ""]
            continue
        if "points" in c:
            L += _case_table(case, c, s)
            if c.get("note"):
                L += ["", str(c["note"])]
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
            for system, why in c.get("unavailable", {}).items():
                L.append(f"| {system} | N/A | | | {why} |")
            L.append("")
        elif case == "fal_async":
            L += [f"Model `{c.get('model')}` through mediagate (the simulator's fal queue). \"Noticed\" = when the "
                  "gateway fetched the result (it does so right after the first COMPLETED status) minus the job's "
                  "completion time (submit time + job ms), both read from the simulator's request log. The poll "
                  "schedule is declared in providers.d/fal.yaml (first poll after 0.1 s, x1.5 backoff, at most 2 s "
                  "apart). LiteLLM: N/A — its fal_ai image provider calls the synchronous fal.run endpoint, there is "
                  "no poll to measure. Portkey: N/A — it forwards one call and returns its answer; it does not "
                  "follow a queue.", "",
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
    L += ["## Peer configuration", "",
          "LiteLLM: shape of shared/reference/seeds/000 (`model_list`, `openai/<model>`, `api_key` from the "
          "environment, `api_base`), pointed at the same simulator; started as "
          "`litellm --config litellm_config.yaml --host 127.0.0.1 --port P --num_workers 1` with environment "
          f"`{ll.get('env')}`. The proxy refuses to start without a master key, so both mediagate and LiteLLM get the "
          "same bearer key (mediagate via `MEDIAGATE_API_KEYS`).", "", "```yaml", (ll.get("config") or "").rstrip(),
          "```", "",
          f"Portkey: `{' '.join(pk.get('argv') or [])}` with `{pk.get('env')}` (one Node process; `--headless`: no "
          "request-log web UI, as in production). Every request carries the headers "
          f"`{pk.get('headers')}`: Portkey forwards the bearer token to the upstream as its key. The open-source "
          "gateway has no gateway key of its own, so it authenticates nobody (mediagate and LiteLLM check theirs).", "",
          "mediagate: `python -m mediagate.cli serve --host 127.0.0.1 --port P --specs bench/specs` (the `mediagate "
          "serve` entry point) with `MEDIAGATE_SANDBOX=off`, `LOCAL_OPENAI_BASE_URL=<sim>/openai/v1`, "
          "`LOCAL_OPENAI_API_KEY=bench`, `OPENAI_BASE_URL=<sim>/openai/v1`, `OPENAI_API_KEY=bench`, "
          "`FAL_QUEUE_URL=<sim>/fal/queue`, `FAL_KEY=bench`, `GEMINI_BASE_URL=<sim>/gemini`, `GEMINI_API_KEY=bench`, "
          "`MEDIAGATE_MEDIA_DIR=<tmp>`, `MEDIAGATE_RELOAD_SECONDS=0`, `MEDIAGATE_API_KEYS=<key>` (its default INFO "
          "log: one JSON line per request, to a file).", ""]
    return "\n".join(L) + "\n"
