"""Processes the harness starts, and what /proc says about them (CPU time, RSS, per-core busy time)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    return raw[raw.rindex(")") + 2:].split()


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (workers a server may fork)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """user + system CPU seconds of the given processes (all their threads)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / CLK_TCK


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pids: Sequence[int]) -> float:
    return sum(_status_kb(p, "VmRSS") for p in pids) / 1024.0


def peak_rss_mb(pids: Sequence[int]) -> float:
    """Sum of VmHWM (peak resident set) over the processes."""
    return sum(_status_kb(p, "VmHWM") for p in pids) / 1024.0


def reset_peak_rss(pids: Sequence[int]) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/PID/clear_refs``, Linux >= 4.0; needs privileges)."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def core_times() -> dict[str, tuple[int, int]]:
    """Per CPU (and ``cpu`` for all): (busy jiffies, total jiffies) since boot."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu"):
            name, *vals = line.split()
            nums = [int(v) for v in vals[:8]]
            idle = nums[3] + nums[4]  # idle + iowait
            out[name] = (sum(nums) - idle, sum(nums))
    return out


def core_busy(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Busy percentage per CPU between two ``core_times`` readings."""
    out = {}
    for name, (busy1, total1) in after.items():
        busy0, total0 = before.get(name, (0, 0))
        span = total1 - total0
        out[name] = round(100.0 * (busy1 - busy0) / span, 1) if span > 0 else 0.0
    return out


def http_ok(url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> bool:
    try:
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Server:
    """One server process, started pinned to ``cpus`` with stdout/stderr to ``log_path``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, health_url: str,
                 cpus: str | None = None, cwd: str | None = None, health_headers: dict[str, str] | None = None):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.health_url, self.health_headers, self.cpus, self.cwd = health_url, health_headers, cpus, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_s = 0.0
        self.final_cpu_s = 0.0

    def start(self, timeout_s: float = 120.0) -> float:
        """Start and wait until the health URL answers 2xx; returns the start-up time in seconds."""
        argv = (["taskset", "-c", self.cpus] if self.cpus else []) + self.argv
        log = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} while starting; "
                                   f"log tail:\n{self.log_tail()}")
            if http_ok(self.health_url, self.health_headers):
                self.started_s = time.monotonic() - t0
                return self.started_s
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.health_url} within {timeout_s:.0f} s; "
                           f"log tail:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        return tree_pids(self.pid) if self.alive() else []

    def cpu_s(self) -> float:
        return cpu_seconds(self.pids())

    def stop(self) -> None:
        """SIGTERM to its own process group (it and its workers), SIGKILL after 10 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.final_cpu_s = self.cpu_s()
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def run_measured(argv: list[str], out_path: Path, timeout_s: float) -> tuple[int, float, str]:
    """Run a load generator to completion; (exit code, its CPU seconds from wait4, its stdout)."""
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, out_path.read_text(errors="replace")
