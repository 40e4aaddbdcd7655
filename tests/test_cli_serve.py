"""README's first command as a new user runs it: `mediagate serve` with no keys, driven by the openai SDK."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
from tests.servers import free_port as _free_port



@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("serve")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("MEDIAGATE_")}
    env.update(MEDIAGATE_MEDIA_DIR=str(tmp / "media"), MEDIAGATE_STATE_DIR=str(tmp / "state"), MEDIAGATE_MEDIA_TTL_SECONDS="3",
               PYTHONUNBUFFERED="1")
    log = tmp / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mediagate.cli", "serve", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("mediagate serve did not start:\n" + log.read_text())
            time.sleep(0.1)
        yield base, log
    finally:
        proc.terminate()
        proc.wait(10)


def test_startup_says_it_runs_on_the_sandbox(served: tuple[str, Path]) -> None:
    base, log = served
    text = log.read_text()
    assert "sandbox: simulators at http://127.0.0.1:" in text
    assert "gemini" in text and "openai" in text


def test_done_when_flow(served: tuple[str, Path]) -> None:
    base, _ = served
    client = openai.OpenAI(base_url=base + "/v1", api_key="anything", max_retries=0)
    res = client.images.generate(model="gemini-3-pro-image", prompt="a red fox", size="1792x1024",
                                 response_format="b64_json", extra_body={"output_format": "webp"})
    assert res.size == "1376x768"
    assert any(a["param"] == "size" and a["applied"] == "1376x768" for a in (res.model_extra or {})["metadata"]["adjustments"])
    assert len(client.images.generate(model="gemini-3-pro-image", prompt="x", n=3).data) == 3
    url = client.images.generate(model="gpt-image-2", prompt="x", response_format="url").data[0].url
    assert url is not None and httpx.get(url).status_code == 200
    time.sleep(3.2)
    assert httpx.get(url).status_code == 410
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="gpt-image-2", prompt="x", extra_body={"thinking": "high"})
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="nope", prompt="x")


def _start(port: int, tmp: Path, log_name: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("MEDIAGATE_")}
    env.update(MEDIAGATE_MEDIA_DIR=str(tmp / "media"), MEDIAGATE_STATE_DIR=str(tmp / "state"), PYTHONUNBUFFERED="1",
               MEDIAGATE_SANDBOX="on")
    out = open(tmp / log_name, "w")
    return subprocess.Popen([sys.executable, "-m", "mediagate.cli", "serve", "--port", str(port)], env=env, stdout=out,
                            stderr=subprocess.STDOUT)


def _ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("gateway did not start")


@pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")
def test_a_video_job_survives_kill_9(tmp_path: Path) -> None:
    """SIGKILL mid-job: nothing runs the shutdown path, yet the restarted gateway finishes the job.

    The simulators live inside the killed process, so the restarted one has a fresh simulator that never saw
    the job: the runner finds the upstream job gone, and falls back to submitting it again — the job is not lost."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(port, tmp_path, "first.log")
    try:
        _ready(base, proc)
        job = httpx.post(base + "/v1/videos", json={"model": "grok-imagine-video", "prompt": "a long take [sim:job=4000]"}).json()
        deadline = time.monotonic() + 10
        while httpx.get(base + f"/v1/videos/{job['id']}").json()["status"] != "in_progress" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(10)
    proc = _start(port, tmp_path, "second.log")
    try:
        _ready(base, proc)
        deadline = time.monotonic() + 60   # the dead process's lease runs out (10 s), then the 4 s job runs again
        status = None
        while time.monotonic() < deadline:
            status = httpx.get(base + f"/v1/videos/{job['id']}").json()
            if status["status"] in ("completed", "failed"):
                break
            time.sleep(0.2)
        assert status and status["status"] == "completed", status
        assert httpx.get(base + f"/v1/videos/{job['id']}/content").content[4:8] == b"ftyp"
        # the killed process's lease was still live at restart: the job is taken over once it runs out
        second = (tmp_path / "second.log").read_text()
        assert f"video job {job['id']}: taken over" in second or "resumed 1 unfinished video job" in second
    finally:
        proc.terminate()
        proc.wait(10)


def _children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (Linux /proc)."""
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


WORKERS_START_TIMEOUT_S = 90   # two interpreters importing everything and loading every spec, on a busy machine
WORKER_SPREAD_TRIES = 300   # fresh connections to /readyz until each worker has answered at least once


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts worker processes through /proc")
def test_workers_share_one_port_one_sandbox_and_one_signing_key(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("MEDIAGATE_")}
    env.update(MEDIAGATE_STATE_DIR=str(tmp_path / "state"), PYTHONUNBUFFERED="1", MEDIAGATE_SANDBOX="on")
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mediagate.cli", "serve", "--workers", "2", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _ready(base, proc, WORKERS_START_TIMEOUT_S)
        pids: set[int] = set()
        for _ in range(WORKER_SPREAD_TRIES):
            pids.add(httpx.get(base + "/readyz", headers={"Connection": "close"}).json()["worker_pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2 and pids <= _children(proc.pid), (pids, _children(proc.pid))
        # Media URLs minted by either worker download from whichever answers (one signing key for all of them).
        client = openai.OpenAI(base_url=base + "/v1", api_key="anything", max_retries=0)
        urls = [d.url for d in client.images.generate(model="gemini-3-pro-image", prompt="a fox", n=4).data]
        urls += [client.images.generate(model="gpt-image-2", prompt="x", response_format="url").data[0].url for _ in range(4)]
        assert all(u and u.startswith(base) for u in urls), urls
        assert [httpx.get(u, headers={"Connection": "close"}).status_code for u in urls] == [200] * len(urls)
        text = log.read_text()
        assert text.count("sandbox: simulators at") == 1, text
        assert "(2 workers)" in text
        sandbox_port = int(text.split("sandbox: simulators at http://127.0.0.1:")[1].split(";")[0])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        assert "mediagate: stopped" in log.read_text()
        for pid in pids:   # the workers went with it, and so did the simulators
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", sandbox_port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
