#!/usr/bin/env python3
"""Run `mediagate serve` with an in-process watch on its event loop, for bench/memory.py.

    python bench/loopwatch.py OUT.json serve --host 127.0.0.1 --port 8080

Wall-clock probe latency (/healthz from another process) says how long a client waited, but on a loaded
machine it mostly measures the scheduler. This watch measures the loop's own work: a thread posts a ping to
the loop every PING_INTERVAL_S (`call_soon_threadsafe`) and, when the ping runs, reads how much CPU the loop
thread spent (its own clock, `pthread_getcpuclockid`) and the whole process spent between post and answer.
The loop thread's CPU in that window bounds the longest single step the loop took without yielding — time the
scheduler gave to other processes is not counted — and the process figure adds what other threads of the
gateway (the slice thread holding the GIL) did meanwhile. The loop thread's run-queue time from
/proc/self/task/TID/schedstat says how much of a late answer was the machine (runnable, no CPU free), and
for late pings each gateway thread's CPU ms is kept. For each ping later than LATE_S the loop
thread's Python stack is kept, so the worst steps name their code. Every ping is written to OUT.json
(timestamps in `time.time()`), rewritten every WRITE_EVERY_S, for the harness to cut to a case's window.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

PING_INTERVAL_S = 0.005
LATE_S = 0.015
WRITE_EVERY_S = 0.5
STACK_FRAMES = 12


class Watch:
    def __init__(self, loop: asyncio.AbstractEventLoop, out: Path) -> None:
        self.loop, self.out = loop, out
        self.loop_ident = threading.main_thread().ident or 0   # uvicorn.run drives the loop in the main thread
        self.clock = time.pthread_getcpuclockid(self.loop_ident)
        self.pings: list[list[Any]] = []   # [posted at, wall ms, loop-thread CPU ms, process CPU ms, loop ms queued
                                           # for a CPU, (late ones) {thread: CPU ms}]
        self.stacks: list[dict[str, Any]] = []      # for the late ones
        self.written_pings = self.written_stacks = 0
        self.collections: list[list[float]] = []    # [started at, generation, ms] of the slower garbage collections
        self._gc_t0 = 0.0
        gc.callbacks.append(self.on_gc)
        threading.Thread(target=self.run, name="loopwatch", daemon=True).start()

    def run(self) -> None:
        last_write = time.monotonic()
        while not self.loop.is_closed():
            done = threading.Event()
            sched0 = _schedstats()
            t0, c0, p0 = time.perf_counter(), time.clock_gettime(self.clock), time.process_time()
            posted = time.time()
            answered: list[float] = []

            def pong() -> None:
                answered.extend((time.perf_counter(), time.clock_gettime(self.clock), time.process_time()))
                done.set()
            try:
                self.loop.call_soon_threadsafe(pong)
            except RuntimeError:
                return
            captured = False
            while not done.wait(LATE_S):
                if not captured and len(self.stacks) < 2000:   # once per late ping: the watch's own cost stays small
                    captured = True
                    frames = sys._current_frames()
                    frame = frames.get(self.loop_ident)
                    stack = traceback.format_stack(frame, limit=STACK_FRAMES) if frame is not None else []
                    others = {t.name: [s.strip() for s in traceback.format_stack(frames[t.ident], limit=4)]
                              for t in threading.enumerate()
                              if t.ident in frames and t.ident not in (self.loop_ident, threading.get_ident())}
                    self.stacks.append({"at": time.time(), "stack": [s.strip() for s in stack], "others": others})
                if self.loop.is_closed():
                    return
            t1, c1, p1 = answered
            sched1 = _schedstats()
            loop_tid = threading.main_thread().native_id
            queued = (sched1.get(loop_tid, (0, 0, ""))[1] - sched0.get(loop_tid, (0, 0, ""))[1]) / 1e6
            ping = [posted, (t1 - t0) * 1000, (c1 - c0) * 1000, (p1 - p0) * 1000, round(queued, 2)]
            if t1 - t0 > LATE_S:   # who ran meanwhile: CPU ms per thread of the gateway
                names = {t.native_id: t.name for t in threading.enumerate()}
                ping.append({names.get(k, v[2]): round((v[0] - sched0[k][0]) / 1e6, 1) for k, v in sched1.items()
                             if k in sched0 and v[0] - sched0[k][0] > 1e6})
            self.pings.append(ping)
            if time.monotonic() - last_write > WRITE_EVERY_S:
                self.write()
                last_write = time.monotonic()
            time.sleep(PING_INTERVAL_S)

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        elif (ms := (time.perf_counter() - self._gc_t0) * 1000) >= 1.0:
            self.collections.append([time.time() - ms / 1000, info["generation"], round(ms, 1)])

    def write(self) -> None:
        """Append what is new (one JSON line each): rewriting the whole record would itself hold the GIL."""
        pings, stacks = self.pings[self.written_pings:], self.stacks[self.written_stacks:]
        self.written_pings += len(pings)
        self.written_stacks += len(stacks)
        with self.out.open("a") as f:
            f.writelines(json.dumps({"ping": p}) + "\n" for p in pings)
            f.writelines(json.dumps({"stack": s}) + "\n" for s in stacks)
            collections, self.collections = self.collections, []
            f.writelines(json.dumps({"gc": c}) + "\n" for c in collections)


def _schedstats() -> dict[int, tuple[int, int, str]]:
    """Per thread of this process: (ns on a CPU, ns runnable but waiting for one, name) from /proc."""
    out: dict[int, tuple[int, int, str]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            run, wait, _ = Path(f"/proc/self/task/{tid}/schedstat").read_text().split()
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except (OSError, ValueError):
            continue
        out[int(tid)] = (int(run), int(wait), name)
    return out


def summarise(path: Path, since: float, until: float) -> dict[str, Any]:
    """The pings posted in [since, until]: the largest wall wait, loop-thread CPU and process CPU, and the
    stacks seen during the window's worst loop-thread step."""
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return {}
    doc: dict[str, list[Any]] = {"pings": [x["ping"] for x in lines if "ping" in x],
                                 "stacks": [x["stack"] for x in lines if "stack" in x],
                                 "gc": [x["gc"] for x in lines if "gc" in x]}
    pings = [p for p in doc["pings"] if since <= p[0] <= until]
    if not pings:
        return {}
    worst = max(pings, key=lambda p: p[2])
    stacks = [s["stack"] for s in doc["stacks"] if worst[0] <= s["at"] <= worst[0] + worst[1] / 1000 + 0.05]
    waited = max(pings, key=lambda p: p[3] - p[2])   # the ping that waited longest on the gateway's other threads
    others = [s.get("others") for s in doc["stacks"] if waited[0] <= s["at"] <= waited[0] + waited[1] / 1000 + 0.05]
    cpu = sorted(p[2] for p in pings)
    # the watch thread itself late: the time between two posts beyond the previous ping's wait and the sleep is
    # time this thread could not run (the GIL held elsewhere, or the whole process stopped by the kernel)
    gaps = [((b[0] - a[0]) * 1000 - a[1] - PING_INTERVAL_S * 1000, b[0]) for a, b in zip(pings, pings[1:])]
    gap = max(gaps, default=(0.0, 0.0))
    return {"watch_gap_max_ms": round(gap[0], 1), "watch_gap_at": gap[1],
            "pings": len(pings), "loop_wall_max_ms": round(max(p[1] for p in pings), 1),
            "loop_cpu_max_ms": round(worst[2], 1), "loop_cpu_p99_ms": round(cpu[int(len(cpu) * 0.99) - 1], 1),
            "process_cpu_max_ms": round(max(p[3] for p in pings), 1),
            "loop_queued_max_ms": round(max(p[4] for p in pings), 1),
            "worst_wall_ping": max(pings, key=lambda p: p[1]), "worst_stacks": stacks[:3],
            "other_threads_max_ms": round(waited[3] - waited[2], 1), "other_threads_stacks": others[:3],
            "gc_max_ms": max((c[2] for c in doc["gc"] if since <= c[0] <= until), default=0.0),
            "gc_over_1ms": len([c for c in doc["gc"] if since <= c[0] <= until])}


SLOW_CALLBACK_CPU_S = 0.005


def _time_callbacks(out: Path) -> None:
    """Diagnosis (LOOPWATCH_ASYNCIO=1): on the standard asyncio loop, the loop thread's CPU time of every
    callback, and those over SLOW_CALLBACK_CPU_S with what they ran (asyncio's own slow-callback log
    times wall clock, which on a loaded machine is mostly other processes)."""
    run = asyncio.events.Handle._run
    slow = out.with_suffix(".slow")

    def timed(handle: asyncio.events.Handle) -> None:
        c0 = time.thread_time()
        run(handle)
        spent = time.thread_time() - c0
        if spent >= SLOW_CALLBACK_CPU_S:
            cb = getattr(handle, "_callback", None)
            task = getattr(cb, "__self__", None)
            coro = task.get_coro() if isinstance(task, asyncio.Task) else None
            where = repr(cb)[:200]
            if coro is not None:
                frames = []
                while coro is not None and hasattr(coro, "cr_code"):
                    frame = coro.cr_frame
                    frames.append(f"{coro.cr_code.co_name}:{frame.f_lineno if frame else '-'}")
                    coro = coro.cr_await
                where = " > ".join(frames)
            with slow.open("a") as f:
                f.write(json.dumps({"at": time.time(), "cpu_ms": round(spent * 1000, 1), "what": where}) + "\n")
    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def main() -> None:
    out = Path(sys.argv[1])
    import uvloop

    make = uvloop.new_event_loop
    if os.environ.get("LOOPWATCH_ASYNCIO"):
        make = asyncio.new_event_loop
        _time_callbacks(out)

    def watched() -> asyncio.AbstractEventLoop:   # uvicorn asks for uvloop.new_event_loop when it runs
        loop = make()
        Watch(loop, out)
        return loop
    uvloop.new_event_loop = watched  # type: ignore[assignment]
    from mediagate import cli
    sys.argv = ["mediagate", *sys.argv[2:]]
    raise SystemExit(cli.main())


if __name__ == "__main__":
    main()
