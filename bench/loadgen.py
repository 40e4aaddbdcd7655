"""Open-loop (fixed-rate) HTTP load generator; prints one JSON summary on stdout.

Request i is *scheduled* at ``start + i / rate`` whatever happened to earlier requests, and its
latency is measured from that scheduled time to the last byte of the response, so a server that
stalls is charged for the whole stall (no coordinated omission). A request whose scheduled time
comes while ``--max-inflight`` requests are already outstanding is not sent and counts as an error
(``skipped_inflight_cap``); one that has not finished ``--timeout`` seconds after it was scheduled
counts as ``timeout``. The run therefore ends at most ``duration + timeout`` seconds after it starts.

Run it pinned to its own CPU (the harness uses ``taskset``); its CPU time is reported by the caller.

    python bench/loadgen.py --url URL --body-file F [--header 'K: V'] --rate 200 --duration 10

``--concurrency C`` instead of ``--rate`` runs closed-loop (C connections, each sending its next request
when the previous answer arrives): the fallback for saturation runs when ``wrk`` is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter
from typing import Any

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def summarize(latencies_s: list[float]) -> dict[str, float | None]:
    values = sorted(latencies_s)
    ms = lambda v: None if v is None else round(v * 1000.0, 3)  # noqa: E731
    return {
        "p50_ms": ms(percentile(values, 50)),
        "p90_ms": ms(percentile(values, 90)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(values[-1] if values else None),
        "mean_ms": ms(sum(values) / len(values) if values else None),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    body = open(args.body_file, "rb").read()
    headers = {"Content-Type": "application/json"}
    for h in args.header:
        key, _, value = h.partition(":")
        headers[key.strip()] = value.strip()
    expect = args.expect.encode() if args.expect else None
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=args.max_inflight, ttl_dns_cache=None, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=None)
    ok_latencies: list[float] = []
    send_lags: list[float] = []
    errors: Counter[str] = Counter()
    first_error: dict[str, str] = {}
    inflight = 0
    done_times: list[float] = []
    total = max(1, int(round(args.rate * args.duration)))

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                     skip_auto_headers=("User-Agent",)) as session:

        async def one(scheduled: float) -> None:
            nonlocal inflight
            send_lags.append(loop.time() - scheduled)
            kind = None
            try:
                remaining = args.timeout - (loop.time() - scheduled)
                async with asyncio.timeout(max(0.001, remaining)):
                    async with session.post(args.url, data=body, headers=headers) as resp:
                        data = await resp.read()
                        status = resp.status
                end = loop.time()
                if status != 200:
                    kind = f"http_{status}"
                    first_error.setdefault(kind, data[:300].decode("utf-8", "replace"))
                elif expect is not None and expect not in data:
                    kind = "bad_body"
                    first_error.setdefault(kind, data[:300].decode("utf-8", "replace"))
                else:
                    ok_latencies.append(end - scheduled)
                    done_times.append(end)
            except TimeoutError:
                kind = "timeout"
            except asyncio.CancelledError:
                kind = "timeout"  # still running when the run ended (scheduled + timeout has passed)
            except (aiohttp.ClientError, OSError) as exc:
                kind = type(exc).__name__
                first_error.setdefault(kind, str(exc)[:300])
            finally:
                inflight -= 1
            if kind is not None:
                errors[kind] += 1

        tasks: set[asyncio.Task[None]] = set()
        skipped = 0

        def launch(scheduled: float) -> None:
            nonlocal skipped, inflight
            if inflight >= args.max_inflight:
                skipped += 1
                return
            inflight += 1
            task = asyncio.ensure_future(one(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        # A separate thread keeps the schedule: time.sleep (clock_nanosleep) wakes within tens of microseconds,
        # where the event loop's own timers wake up to a millisecond late (epoll's millisecond timeout).
        # loop.time() is time.monotonic(), so both threads share one clock.
        sending_done = asyncio.Event()
        start = loop.time() + 0.05
        wall_start = time.time() + 0.05

        def sender() -> None:
            for i in range(total):
                scheduled = start + i / args.rate
                delay = scheduled - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                loop.call_soon_threadsafe(launch, scheduled)
            loop.call_soon_threadsafe(sending_done.set)

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        await sending_done.wait()
        thread.join()
        if skipped:
            errors["skipped_inflight_cap"] += skipped
        send_end = loop.time()
        if tasks:
            await asyncio.wait(set(tasks), timeout=args.timeout + 1.0)
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        end = loop.time()

    window = max(1e-9, (max(done_times) if done_times else end) - start)
    lags = sorted(send_lags)
    return {
        "mode": "open-loop",
        "rate": args.rate,
        "duration_s": args.duration,
        "scheduled": total,
        "ok": len(ok_latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "error_samples": first_error,
        "throughput_rps": round(len(ok_latencies) / window, 2),
        "window_s": round(window, 3),
        "send_window_s": round(send_end - start, 3),
        "wall_start": wall_start,
        "elapsed_s": round(end - start, 3),
        "send_lag_p50_ms": round((percentile(lags, 50) or 0) * 1000, 3),
        "send_lag_p99_ms": round((percentile(lags, 99) or 0) * 1000, 3),
        **summarize(ok_latencies),
    }


async def run_closed(args: argparse.Namespace) -> dict[str, Any]:
    body = open(args.body_file, "rb").read()
    headers = {"Content-Type": "application/json"}
    for h in args.header:
        key, _, value = h.partition(":")
        headers[key.strip()] = value.strip()
    expect = args.expect.encode() if args.expect else None
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=args.concurrency, ttl_dns_cache=None)
    ok_latencies: list[float] = []
    errors: Counter[str] = Counter()
    first_error: dict[str, str] = {}
    start = loop.time()
    stop_at = start + args.duration

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=args.timeout),
                                     auto_decompress=False, skip_auto_headers=("User-Agent",)) as session:
        async def worker() -> None:
            while loop.time() < stop_at:
                sent = loop.time()
                try:
                    async with session.post(args.url, data=body, headers=headers) as resp:
                        data = await resp.read()
                        status = resp.status
                    if status != 200:
                        errors[f"http_{status}"] += 1
                        first_error.setdefault(f"http_{status}", data[:300].decode("utf-8", "replace"))
                    elif expect is not None and expect not in data:
                        errors["bad_body"] += 1
                    else:
                        ok_latencies.append(loop.time() - sent)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    errors[type(exc).__name__] += 1
                    first_error.setdefault(type(exc).__name__, str(exc)[:300])

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    window = loop.time() - start
    return {"mode": "closed-loop", "concurrency": args.concurrency, "duration_s": args.duration,
            "ok": len(ok_latencies), "errors": sum(errors.values()), "error_kinds": dict(errors),
            "error_samples": first_error, "throughput_rps": round(len(ok_latencies) / window, 2),
            "window_s": round(window, 3), **summarize(ok_latencies)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--header", action="append", default=[])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rate", type=float, help="requests per second (open loop)")
    mode.add_argument("--concurrency", type=int, help="connections (closed loop)")
    p.add_argument("--duration", type=float, required=True, help="seconds of sending")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds after its scheduled time a request gives up")
    p.add_argument("--max-inflight", type=int, default=256)
    p.add_argument("--expect", default="b64_json", help="bytes a 200 body must contain to count as ok")
    args = p.parse_args(argv)
    sys.setswitchinterval(0.0005)  # the sender thread must not wait 5 ms for the GIL
    result = asyncio.run(run(args) if args.rate else run_closed(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
