"""Several gateway processes on one Redis (and one media store), clients going round-robin between them.

Each instance is a real process (tests/gateway_proc.py: create_app under uvicorn) with its providers on one
simulator that lives outside every gateway, like a real provider: killing an instance kills no upstream job.
The figures these tests print (takeover time, duplicates) are the ones docs/SCALING.md reports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import redis

from mediagate import webhooks
from mediagate.sandbox.testing import SimulatorThread
from tests import legacy
from tests.s3server import MotoServer
from tests.servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SORA_SUBMIT = "/openai/v1/videos"
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


class Instance:
    def __init__(self, name: str, env: dict[str, str], sim_url: str, tmp: Path) -> None:
        self.name, self.env, self.sim_url, self.tmp = name, env, sim_url, tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Instance":
        out = open(self.log, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.gateway_proc", str(self.port), self.sim_url], env=self.env,
                                     cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Hooks(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Hooks.lock:
            Hooks.received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture()
def hooks() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hooks.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()


@pytest.fixture()
def bucket(moto: MotoServer) -> str:
    return moto.new_bucket()


@pytest.fixture()
def cluster_env(redis_url: str, moto: MotoServer, bucket: str) -> dict[str, str]:
    """One Redis, one bucket, one signing key and webhook secret: what every instance of a cluster shares."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAGATE_", "AWS_")) and not k.endswith("_API_KEY")}
    env.update(moto.env(), MEDIAGATE_REDIS_URL=redis_url, MEDIAGATE_MEDIA_URL=f"s3://{bucket}/cluster",
               MEDIAGATE_SANDBOX="on", MEDIAGATE_FETCH_ALLOW="127.0.0.1",
               MEDIAGATE_SIGNING_KEY="shared-signing-key-for-the-cluster-0123456789",
               MEDIAGATE_WEBHOOK_SECRET=webhooks.new_secret(), MEDIAGATE_MEDIA_TTL_SECONDS="4",
               MEDIAGATE_RELOAD_SECONDS="0", PYTHONUNBUFFERED="1")
    return env


def start_cluster(names: str, env: dict[str, str], sim: SimulatorThread, tmp: Path) -> list[Instance]:
    out = []
    for name in names:
        e = {**env, "MEDIAGATE_STATE_DIR": str(tmp / f"state-{name}")}
        out.append(Instance(name, e, sim.base_url, tmp))
    for inst in out:
        inst.start()
    return out


@pytest.fixture()
def cluster(cluster_env: dict[str, str], sim: SimulatorThread, tmp_path: Path) -> Iterator[list[Instance]]:
    sim.reset()
    instances = start_cluster("abc", cluster_env, sim, tmp_path)
    yield instances
    for inst in instances:
        inst.stop()


def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status(inst: Instance, video_id: str) -> dict[str, Any]:
    return httpx.get(f"{inst.base}/v1/videos/{video_id}", timeout=10).json()


def lease_owner(redis_url: str, video_id: str) -> str | None:
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        return r.get(f"mg:lease:{video_id}")


def test_a_killed_instance_s_job_is_finished_by_another_once(cluster: list[Instance], sim: SimulatorThread, hooks: str,
                                                               redis_url: str) -> None:
    a, b, c = cluster
    video = httpx.post(a.base + "/v1/videos", json={"model": "sora-2", "prompt": "a long take [sim:job=5000]",
                                                    "webhook_url": hooks}, timeout=10).json()
    wait_for(lambda: status(b, video["id"])["status"] == "in_progress", 10, "in_progress seen on B")
    owner = lease_owner(redis_url, video["id"])
    assert owner is not None and f":{a.pid}:" in owner, owner
    a.kill()
    killed = time.monotonic()
    new_owner = wait_for(lambda: (o := lease_owner(redis_url, video["id"])) and f":{a.pid}:" not in o and o, 30,
                         "another instance taking the lease")
    takeover_s = time.monotonic() - killed
    done = wait_for(lambda: (s := status(c, video["id"]))["status"] in ("completed", "failed") and s, 30, "completion")
    assert done["status"] == "completed", done
    assert httpx.get(f"{c.base}/v1/videos/{video['id']}/content", timeout=10).content[4:8] == b"ftyp"
    wait_for(lambda: len(Hooks.received) >= 1, 10, "the webhook")
    time.sleep(1.5)  # a duplicate would come from another instance's delivery loop within a poll or two
    submissions = sim.post_counts().get(SORA_SUBMIT, 0)
    print(f"\nSCALING takeover_after_sigkill_s={takeover_s:.2f} submissions={submissions} webhooks={len(Hooks.received)}")
    assert submissions == 1, "the job was submitted exactly once"
    assert [h["body"]["type"] for h in Hooks.received] == ["video.completed"], "exactly one delivery"
    assert takeover_s < 10 + 2, "within one lease (10 s) and a scan"
    assert new_owner.split(":")[1] in (str(b.pid), str(c.pid))


def test_a_url_minted_by_one_instance_is_served_by_the_others_then_refused_everywhere(
        cluster: list[Instance], moto: MotoServer, bucket: str) -> None:
    a, b, c = cluster
    r = httpx.post(b.base + "/v1/images/generations", json={"model": "dall-e-2", "prompt": "x", "size": "256x256"}, timeout=30)
    url = r.json()["data"][0]["url"]
    assert url.startswith(b.base)
    path = url[len(b.base):]
    hits = 0
    for inst in (a, b, c):
        got = httpx.get(inst.base + path, timeout=10)
        assert got.status_code == 200 and got.content[:8] == b"\x89PNG\r\n\x1a\n"
        hits += 1
    assert [k for k in moto.keys(bucket) if k.startswith("cluster/media/")], "stored once, in the bucket"
    time.sleep(4.5)  # the TTL (4 s) passes
    assert {httpx.get(inst.base + path, timeout=10).status_code for inst in (a, b, c)} == {410}
    wait_for(lambda: not [k for k in moto.keys(bucket) if k.startswith("cluster/media/")], 60,
             "the expired object gone from the bucket (each instance sweeps every 30 s +- 25 %)")
    print(f"\nSCALING cross_instance_media_hits={hits}/3")


def test_one_idempotency_key_sent_to_two_instances_at_once_makes_one_job(cluster: list[Instance], sim: SimulatorThread) -> None:
    a, b, _ = cluster
    body = {"model": "sora-2", "prompt": "same [sim:job=300]", "idempotency_key": "order-42"}
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(8)

    def send(inst: Instance) -> None:
        barrier.wait()
        results.append(httpx.post(inst.base + "/v1/videos", json=body, timeout=10).json())
    threads = [threading.Thread(target=send, args=(inst,)) for inst in (a, b) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["id"] for r in results}) == 1, results
    wait_for(lambda: status(a, results[0]["id"])["status"] == "completed", 20, "completion")
    assert sim.post_counts().get(SORA_SUBMIT, 0) == 1


def test_a_provider_cooled_on_one_instance_is_skipped_by_the_others(cluster: list[Instance], sim: SimulatorThread) -> None:
    a, b, c = cluster
    body = {"model": "gemini-3-pro-image", "prompt": "x", "response_format": "b64_json"}
    for _ in range(3):  # three retryable failures on A put gemini in cooldown (the request falls back)
        sim.inject("500", 1, "gemini")
        r = httpx.post(a.base + "/v1/images/generations", json={**body, "model": "gemini/gemini-3-pro-image"}, timeout=30)
        assert r.status_code == 502
    started = time.monotonic()
    for inst in (b, c):
        wait_for(lambda: httpx.get(inst.base + "/readyz").json()["provider_health"].get("gemini", {})
                 .get("cooldown_remaining_s", 0) > 0, 1.5, f"cooldown seen on {inst.name}")
    seen_s = time.monotonic() - started
    for inst in (b, c):
        r = httpx.post(inst.base + "/v1/images/generations", json=body, timeout=30)
        assert r.status_code == 200
        assert r.json()["metadata"]["provider"] != "gemini", "the cooled provider goes last"
    print(f"\nSCALING cooldown_seen_on_others_s<={seen_s:.2f}")


def test_redis_restarted_mid_run_loses_no_job_and_every_request_is_answered(
        cluster_env: dict[str, str], sim: SimulatorThread, tmp_path: Path, redis_server: RedisServer) -> None:
    sim.reset()
    instances = start_cluster("ab", cluster_env, sim, tmp_path)
    try:
        a, b = instances
        ids = [httpx.post((a, b)[i % 2].base + "/v1/videos", json={"model": "sora-2", "prompt": f"j{i} [sim:job=3000]"},
                          timeout=10).json()["id"] for i in range(6)]
        wait_for(lambda: all(status(a, i)["status"] == "in_progress" for i in ids), 15, "all in progress")
        redis_server.stop()
        answers = []
        for inst in instances:  # while Redis is down: images still work; jobs are a shaped 503
            img = httpx.post(inst.base + "/v1/images/generations", json={"model": "dall-e-2", "prompt": "x", "response_format": "b64_json"}, timeout=30)
            vid = httpx.post(inst.base + "/v1/videos", json={"model": "sora-2", "prompt": "x"}, timeout=30)
            ready = httpx.get(inst.base + "/readyz", timeout=10).json()
            answers += [img.status_code, vid.status_code]
            assert img.status_code == 200
            assert vid.status_code == 503 and vid.json()["error"]["code"] == "service_unavailable" and vid.headers["retry-after"]
            assert ready["status"] == "degraded" and ready["state_store"]["ok"] is False
        time.sleep(1.0)
        redis_server.start()  # AOF: everything written before the stop is back
        for i in ids:
            # while Redis loads its append-only file it answers "loading": the gateway's 503 until then
            done = wait_for(lambda: (s := status(b, i)).get("status") in ("completed", "failed") and s, 40, f"{i} finishing")
            assert done["status"] == "completed", done
        assert sim.post_counts().get(SORA_SUBMIT, 0) == len(ids), "no job submitted twice"
        assert set(answers) <= {200, 503}
    finally:
        for inst in instances:
            inst.stop()
        if redis_server.proc is None:
            redis_server.start()


def test_a_video_deleted_through_another_instance_is_cancelled_upstream(cluster: list[Instance], sim: SimulatorThread,
                                                                        redis_url: str) -> None:
    a, b, _ = cluster
    video = httpx.post(a.base + "/v1/videos", json={"model": "fal/veo-3.1", "prompt": "long one [sim:job=20000]",
                                                    "seconds": "4"}, timeout=10).json()
    wait_for(lambda: status(b, video["id"])["status"] == "in_progress", 10, "in_progress")
    assert f":{a.pid}:" in (lease_owner(redis_url, video["id"]) or "")
    assert httpx.delete(f"{b.base}/v1/videos/{video['id']}", timeout=10).json()["deleted"] is True
    assert httpx.get(f"{a.base}/v1/videos/{video['id']}", timeout=10).status_code == 404
    wait_for(lambda: any(q["method"] == "PUT" and q["path"].endswith("/cancel") for q in sim.requests("fal")), 10,
             "A cancelling the upstream job (at its next lease renewal)")


def test_a_gateway_killed_mid_submit_never_sends_the_job_twice(sim: SimulatorThread, tmp_path: Path) -> None:
    """SIGKILL while the submit is in flight (the simulator holds it 3 s): the provider got it once, and the
    restarted gateway, not knowing whether it was taken, fails the job with a clear error instead of resending."""
    sim.reset()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_") and not k.endswith("_API_KEY")}
    env.update(MEDIAGATE_SANDBOX="on", MEDIAGATE_STATE_DIR=str(tmp_path / "state"), MEDIAGATE_RELOAD_SECONDS="0",
               MEDIAGATE_JOB_LEASE_SECONDS="3", PYTHONUNBUFFERED="1")
    gw = Instance("solo", env, sim.base_url, tmp_path).start()
    try:
        video = httpx.post(gw.base + "/v1/videos", json={"model": "sora-2", "prompt": "x [sim:latency=3000]"}, timeout=10).json()
        wait_for(lambda: sim.post_counts().get(SORA_SUBMIT, 0) == 1, 5, "the submit reaching the provider")
        gw.kill()
        gw.start()
        done = wait_for(lambda: (s := status(gw, video["id"]))["status"] in ("completed", "failed") and s, 20, "an outcome")
        assert done["status"] == "failed" and done["error"]["code"] == "submit_interrupted", done
        assert "not sent again" in done["error"]["message"]
        time.sleep(1.0)
        assert sim.post_counts().get(SORA_SUBMIT, 0) == 1
    finally:
        gw.stop()



def test_an_idempotent_submit_interrupted_by_a_kill_is_sent_again_under_its_key(sim: SimulatorThread, tmp_path: Path) -> None:
    """The same kill against Bedrock's StartAsyncInvoke, which deduplicates by clientRequestToken: the restarted
    gateway sends the submission again under the same token, the provider answers with the one invocation it
    made, and the job completes — one upstream job, never two."""
    sim.reset()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIAGATE_", "AWS_")) and not k.endswith("_API_KEY")}
    env.update(MEDIAGATE_SANDBOX="on", MEDIAGATE_STATE_DIR=str(tmp_path / "state"), MEDIAGATE_RELOAD_SECONDS="0",
               MEDIAGATE_JOB_LEASE_SECONDS="3", PYTHONUNBUFFERED="1")
    gw = Instance("solo", env, sim.base_url, tmp_path).start()
    submit = "/bedrock/async-invoke"
    try:
        video = httpx.post(gw.base + "/v1/videos", json={"model": "nova-reel", "prompt": "x [sim:latency=3000] [sim:job=300]"},
                           timeout=10).json()
        wait_for(lambda: sim.post_counts().get(submit, 0) == 1, 5, "the submit reaching the provider")
        gw.kill()
        gw.start()
        done = wait_for(lambda: (s := status(gw, video["id"]))["status"] in ("completed", "failed") and s, 30, "an outcome")
        assert done["status"] == "completed", done
        posts = [q for q in sim.requests("bedrock") if q["method"] == "POST" and q["path"] == submit]
        assert len(posts) == 2 and posts[0]["json"]["clientRequestToken"] == posts[1]["json"]["clientRequestToken"]
        arns = {q["path"] for q in sim.requests("bedrock") if q["method"] == "GET"}
        assert len(arns) == 1, arns    # one invocation polled: the provider made the video once
    finally:
        gw.stop()

def test_workers_on_the_embedded_stores_run_each_job_once(sim: SimulatorThread, tmp_path: Path) -> None:
    """`serve --workers 2` on SQLite: 40 concurrent video jobs, each submitted once and run (polled) by one
    runner only, although both processes' schedulers scan for the same jobs."""
    import concurrent.futures
    import sqlite3
    sim.reset()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_") and not k.endswith("_API_KEY")}
    env.update(MEDIAGATE_SANDBOX="on", MEDIAGATE_SANDBOX_URL=sim.base_url, MEDIAGATE_STATE_DIR=str(tmp_path / "state"),
               MEDIAGATE_RELOAD_SECONDS="0", PYTHONUNBUFFERED="1",
               MEDIAGATE_SPEC_DIRS=str(legacy.root()))   # sora-2 as an operator still reaching it would serve it
    log = open(tmp_path / "workers.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mediagate.cli", "serve", "--workers", "2", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base), 60, "the workers")
        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            created = list(pool.map(lambda i: httpx.post(base + "/v1/videos", json={
                "model": "sora-2", "prompt": f"take {i} [sim:job=1500]"}, timeout=30).json(), range(40)))
        ids = [c["id"] for c in created]
        assert len(set(ids)) == 40
        for i in ids:
            done = wait_for(lambda: (s := httpx.get(f"{base}/v1/videos/{i}", timeout=10).json())["status"]
                            in ("completed", "failed") and s, 60, f"{i}")
            assert done["status"] == "completed", done
        assert sim.post_counts().get(SORA_SUBMIT, 0) == 40, "each job submitted exactly once"
        db = sqlite3.connect(tmp_path / "state" / "jobs.sqlite3")
        runners = [json.loads(doc).get("runners", []) for (doc,) in db.execute("SELECT doc FROM jobs")]
        db.close()
        assert all(len(r) == 1 for r in runners), "no job was taken over or run twice"
        pids = {r[0].split(":")[1] for r in runners}
        # which worker accepts a connection is the kernel's choice, and each process's scheduler races the
        # others for every job created without a live lease yet: that race is what this test exercises
        print(f"\nSCALING workers=2 jobs=40 submissions=40 runner_processes={len(pids)}")
        assert len({json.loads(httpx.get(base + "/readyz", timeout=5).text)["worker_pid"] for _ in range(20)}) >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
