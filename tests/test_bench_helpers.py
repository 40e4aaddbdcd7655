"""The benchmark's own arithmetic and bookkeeping (bench/run.py, bench/report.py, bench/portkey_env.py): the slopes,
the added latency pairing, what counts as a correct answer, the conversion floor's process. No timing here."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import portkey_env  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402


def _encode(fmt: str, side: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 30)).save(buf, fmt)
    return buf.getvalue()


def test_least_squares_of_a_line_and_of_a_curve() -> None:
    line = report.least_squares([0.2, 3.0, 12.0, 48.0], [1.0 + 2 * x for x in (0.2, 3.0, 12.0, 48.0)])
    assert line is not None
    assert line["slope"] == pytest.approx(2.0) and line["intercept"] == pytest.approx(1.0)
    assert line["r2"] == pytest.approx(1.0)
    curve = report.least_squares([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 1.0, 1.0, 1.0, 30.0])
    assert curve is not None and curve["r2"] < report.LINEAR_R2
    assert report.least_squares([1.0], [2.0]) is None
    assert report.least_squares([2.0, 2.0], [1.0, 3.0]) is None


def _point(system: str, *, rate: float | None = None, concurrency: int | None = None, p50: float = 1.0,
           cpu: float = 1.0, peak: float = 100.0, before: float = 60.0) -> dict[str, Any]:
    return {"system": system, "rate": rate, "concurrency": concurrency, "p50_ms": p50, "p99_ms": p50 * 2,
            "throughput_rps": 10.0, "cpu_s_per_1k": cpu, "peak_rss_mb": peak, "rss_before_mb": before, "errors": 0,
            "load": "x"}


def test_added_latency_pairs_rates_and_single_connections_but_not_saturation() -> None:
    points = [_point("direct", rate=200.0, p50=1.0), _point("mediagate", rate=200.0, p50=1.75),
              _point("direct", concurrency=1, p50=2.0), _point("portkey", concurrency=1, p50=5.0),
              _point("direct", concurrency=64, p50=9.0), _point("mediagate", concurrency=64, p50=30.0)]
    run._add_overhead(points)
    assert points[1]["added_p50_ms"] == 0.75 and points[1]["added_p99_ms"] == 1.5
    assert points[3]["added_p50_ms"] == 3.0
    assert points[5]["added_p50_ms"] is None
    assert points[0]["added_p50_ms"] is None


def _size_results() -> dict[str, Any]:
    """mediagate's CPU per request = 0.5 + 2 ms per MB and RSS per in-flight = 3 MB per MB: exactly linear."""
    cases: dict[str, Any] = {}
    for side, mb in ((256, 0.25), (1024, 3.0), (2048, 12.0), (4096, 48.0)):
        conc = run.SIZE_LOAD[side][0]
        pts = [_point("direct", concurrency=1, p50=1.0), _point("mediagate", concurrency=1, p50=1.0 + mb),
               _point("direct", concurrency=conc), _point("mediagate", concurrency=conc, cpu=0.5 + 2 * mb,
                                                          peak=60.0 + 3 * mb * conc, before=60.0)]
        run._add_overhead(pts)
        cases[f"b64_{side}"] = {"points": pts, "side": side, "mode": "b64",
                                "answers": {"direct": {"image_bytes": int(mb * report.MB)}}}
    return {"settings": {"saturation_concurrency": 64}, "cases": cases}


def test_size_fits_find_the_slope_per_megabyte_and_call_it_linear() -> None:
    r = _size_results()
    fits = {(f["system"], f["metric"]): f for f in report.size_table(r)["fits"]}
    cpu, rss = fits[("mediagate", "cpu_ms_per_req")], fits[("mediagate", "rss_per_inflight_mb")]
    assert cpu["slope_per_mb"] == pytest.approx(2.0) and cpu["intercept"] == pytest.approx(0.5)
    assert rss["slope_per_mb"] == pytest.approx(3.0, abs=0.01)
    assert cpu["linear"] is True and cpu["points"] == 4
    assert fits[("mediagate", "added_p50_ms")]["slope_per_mb"] == pytest.approx(1.0)
    r["size_table"] = report.size_table(r)
    met = {t["target"]: t["met"] for t in report.targets(r)}
    assert met["CPU per request linear in payload bytes (mediagate, b64 256²-4096², R² >= 0.95)"] == "yes"
    assert "2.00 ms of CPU" in (report.size_summary(r) or "")


def test_expected_format_keeps_png_for_avif_beyond_the_gateways_limit() -> None:
    big = run.imaging.AVIF_MAX_SIDE_PX + 64
    assert run.expected_format(run.case_body("avif_1024", "mediagate") or {}) == "avif"
    assert run.expected_format({"size": f"{big}x{big}", "output_format": "avif"}) == "png"
    assert run.expected_format(run.case_body("webp_4096", "mediagate") or {}) == "webp"
    assert run.expected_format(run.case_body("b64_4096", "direct") or {}) == "png"


def test_image_format_reads_real_encoder_output() -> None:
    assert run.image_format(_encode("PNG")) == "png"
    assert run.image_format(_encode("WEBP")) == "webp"
    assert run.image_format(_encode("AVIF")) == "avif"
    assert run.image_format(b"GIF89a....") != "png"


def test_case_bodies_give_direct_the_upstream_request_and_the_peers_no_conversion() -> None:
    mg = run.case_body("webp_1024", "mediagate")
    assert mg == {"model": "bench-image", "prompt": run.NOISE_PROMPT, "size": "1024x1024",
                  "response_format": "b64_json", "output_format": "webp"}
    assert run.case_body("webp_1024", "direct") == {k: v for k, v in mg.items() if k != "output_format"}
    assert run.case_body("avif_4096", "litellm") is None and run.case_body("webp_1024", "portkey") is None
    assert (run.case_body("url_2048", "portkey") or {})["response_format"] == "url"
    assert set(run.ALL_CASES) >= {"b64_256", "url_4096", "avif_4096", "rss_200", "n4_latency", "fal_async"}


def test_conversion_not_done_is_reported_with_pillows_time_not_as_met() -> None:
    r = {"settings": {}, "cases": {"avif_4096": {
        "side": 4096, "mode": "avif", "points": [_point("mediagate", concurrency=1, p50=3000.0),
                                                 _point("direct", concurrency=1, p50=2900.0)],
        "answers": {"mediagate": {"image_format": "png", "adjustments": [{"reason": "AVIF is limited"}]},
                    "direct": {"image_bytes": 50 * report.MB}},
        "floor": {"decode_s": 0.5, "encode_s": 9.0, "total_s": 9.5, "cpu_s": 9.4}}}}
    run._add_overhead(r["cases"]["avif_4096"]["points"])
    row = next(t for t in report.targets(r) if "avif_4096" in t["target"])
    assert row["met"] == "not measured" and row["measured"] == "not converted"
    assert "9500 ms" in row["detail"] and "AVIF is limited" in row["detail"]
    assert "not converted" in report.markdown({**r, "size_table": report.size_table(r)})


def test_floor_process_encodes_with_the_gateways_settings(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(_encode("PNG", 128))
    settings = run.floor_settings("webp")
    assert settings["quality"] == run.imaging.DEFAULT_QUALITY["webp"]
    assert settings["method"] == run.imaging.WEBP_METHOD
    out = subprocess.run([sys.executable, "-c", run.FLOOR_SCRIPT, str(src), "webp", json.dumps(settings), "2"],
                         capture_output=True, text=True, timeout=120, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["reps"] == 2 and res["webp_method"] == run.imaging.WEBP_METHOD and res["out_bytes"] > 0
    assert res["total_s"] >= res["encode_s"] > 0


def test_portkey_is_told_the_provider_the_host_and_the_key() -> None:
    h = portkey_env.headers("http://127.0.0.1:9/openai/v1", "k")
    assert h == {"x-portkey-provider": "openai", "x-portkey-custom-host": "http://127.0.0.1:9/openai/v1",
                 "Authorization": "Bearer k"}
    argv = portkey_env.argv(1234)
    assert argv[0] == "node" and argv[1].endswith("@portkey-ai/gateway/build/start-server.js")
    assert "--port=1234" in argv


def test_headline_ratios_against_both_peers() -> None:
    pts = [_point(s, concurrency=64) for s in ("direct", "mediagate", "litellm", "portkey")]
    for p, rps in zip(pts, (9000.0, 1500.0, 75.0, 300.0)):
        p["throughput_rps"] = rps
    r = {"settings": {"saturation_concurrency": 64}, "cases": {"b64_256": {"points": pts}}}
    h = report.headline(r)
    assert h["ratio_litellm"] == 20.0 and h["ratio_portkey"] == 5.0
    met = {t["target"]: t["met"] for t in report.targets(r)}
    assert met["saturation throughput >= 20x LiteLLM proxy (b64_256, 1 worker each)"] == "yes"
    assert met["saturation throughput >= 3x Portkey gateway (b64_256, 1 worker each)"] == "yes"
