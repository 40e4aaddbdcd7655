"""Gateway keys: the CLI and the admin API on one store, and their enforcement on every endpoint
(401, 403, 429 with its headers, 402 before the spend), on SQLite and across instances on one Redis."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediagate import auth, keys
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin-secret-for-tests"
IMAGE = {"model": "gpt-image-1", "prompt": "a lighthouse"}


def cli(state: Path, *args: str, redis_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    env["MEDIAGATE_STATE_DIR"] = str(state)
    if redis_url:
        env["MEDIAGATE_REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "mediagate.cli", "keys", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def post(gw: GatewayThread, body: dict[str, Any], secret: str | None, path: str = "/v1/images/generations",
         **kw: Any) -> httpx.Response:
    headers = bearer(secret) if secret else {}
    return httpx.post(gw.base_url + path, json=body, headers=headers, timeout=60, **kw)


def admin_create(gw: GatewayThread, **fields: Any) -> str:
    r = httpx.post(gw.base_url + "/admin/keys", json=fields, headers=bearer(ADMIN), timeout=10)
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def test_cli_create_list_show_rotate_revoke(tmp_path: Path) -> None:
    made = cli(tmp_path, "create", "alice", "--team", "a", "--models", "gpt-image-*", "--rpm", "10",
               "--budget", "1", "--budget-period", "day", "--expires", "2099-01-01T00:00:00Z")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith(keys.SECRET_PREFIX) and len(secret) > 40
    listed = cli(tmp_path, "list")
    assert "alice" in listed.stdout and secret[:keys.DISPLAY_PREFIX_CHARS] in listed.stdout and secret not in listed.stdout
    shown = json.loads(cli(tmp_path, "show", "alice").stdout)
    assert shown["team"] == "a" and shown["limits"] == {"rpm": 10} and shown["budget"] == 1.0
    assert shown["budget_period"] == "day" and "hash" not in shown and secret not in json.dumps(shown)
    stored = (tmp_path / "keys.sqlite3").read_bytes()
    assert secret.encode() not in stored   # only the keyed hash and the prefix are kept
    rotated = cli(tmp_path, "rotate", shown["id"])
    new_secret = rotated.stdout.strip().splitlines()[-1]
    assert rotated.returncode == 0 and new_secret != secret and new_secret.startswith(keys.SECRET_PREFIX)
    assert cli(tmp_path, "create", "alice").returncode == 1            # names are unique
    assert cli(tmp_path, "create", "bob", "--rpm", "0").returncode == 2   # limits are whole numbers >= 1
    revoked = cli(tmp_path, "revoke", "alice")
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["state"] == "revoked"
    assert cli(tmp_path, "show", "nobody").returncode == 1


def test_cli_keys_enforced_by_a_running_gateway(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path) as gw:
        assert post(gw, IMAGE, None).status_code == 200        # no keys anywhere: open, as before
        secret = cli(tmp_path / "state", "create", "ci").stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 5
        while post(gw, IMAGE, None).status_code != 401:         # the gateway sees the new key within its cache time
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert post(gw, IMAGE, secret).status_code == 200
        cli(tmp_path / "state", "revoke", "ci")
        started = time.monotonic()
        while post(gw, IMAGE, secret).status_code != 401:
            assert time.monotonic() - started < 3
            time.sleep(0.05)
        assert time.monotonic() - started <= keys.KEY_CACHE_S + 1.0


def test_admin_api(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN) as gw:
        url = gw.base_url + "/admin/keys"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers=bearer("wrong")).status_code == 401
        r = httpx.post(url, json={"name": "svc", "team": "t1", "rpm": 5, "models": ["gpt-*"]}, headers=bearer(ADMIN))
        assert r.status_code == 201
        made = r.json()
        assert made["key"].startswith(keys.SECRET_PREFIX) and made["prefix"] == made["key"][:keys.DISPLAY_PREFIX_CHARS]
        listed = httpx.get(url, headers=bearer(ADMIN)).json()["data"]
        assert [k["name"] for k in listed] == ["svc"] and "key" not in listed[0] and "hash" not in listed[0]
        assert httpx.get(f"{url}/{made['id']}", headers=bearer(ADMIN)).json()["limits"] == {"rpm": 5}
        bad = httpx.post(url, json={"name": "x", "rpm": -1}, headers=bearer(ADMIN))
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm"
        assert httpx.post(url, json={"name": "svc"}, headers=bearer(ADMIN)).status_code == 409
        assert post(gw, IMAGE, made["key"]).status_code == 200
        rotated = httpx.post(f"{url}/{made['id']}/rotate", headers=bearer(ADMIN)).json()
        assert post(gw, IMAGE, made["key"]).status_code == 401     # the old secret stops at once on this instance
        assert post(gw, IMAGE, rotated["key"]).status_code == 200
        assert httpx.delete(f"{url}/{made['id']}", headers=bearer(ADMIN)).json()["revoked"] is True
        assert post(gw, IMAGE, rotated["key"]).status_code == 401
        assert httpx.get(f"{url}/key_nope", headers=bearer(ADMIN)).status_code == 404


def test_admin_api_off_without_admin_key(gateway: GatewayThread) -> None:
    r = httpx.get(gateway.base_url + "/admin/keys", headers=bearer("anything"))
    assert r.status_code == 401 and "MEDIAGATE_ADMIN_KEY" in r.json()["error"]["message"]


def test_invalid_keys_and_header_forms(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN, api_keys=frozenset({"legacy-key"})) as gw:
        secret = admin_create(gw, name="k")
        expired = admin_create(gw, name="old", expires="2001-01-01T00:00:00Z")
        for headers in ({"Authorization": f"Bearer {secret}"}, {"Authorization": f"bearer \t{secret}"},
                        {"Authorization": "Bearer legacy-key"}, {"api-key": "legacy-key"}):
            assert httpx.post(gw.base_url + "/v1/images/generations", json=IMAGE, headers=headers).status_code == 200, headers
        for headers in ({}, {"Authorization": secret},  # type: ignore[dict-item] {"Authorization": f"Bearer {secret}\xa0".encode("latin-1")},
                        {"api-key": f"{secret}\xa0".encode("latin-1")}, {"Authorization": f"Bearer {expired}"},
                        {"Authorization": "Bearer " + secret[:-1]}):
            r = httpx.post(gw.base_url + "/v1/images/generations", json=IMAGE, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", headers
        for path in ("/metrics", "/openapi.json", "/v1/models"):
            assert httpx.get(gw.base_url + path).status_code == 401
            assert httpx.get(gw.base_url + path, headers=bearer(secret)).status_code == 200
        assert httpx.get(gw.base_url + "/healthz").status_code == 200
        assert httpx.get(gw.base_url + "/readyz").status_code == 200


def test_wrong_keys_from_one_address_are_throttled(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, api_keys=frozenset({"good-key"})) as gw:
        statuses = [post(gw, IMAGE, f"wrong-{i}").status_code for i in range(auth.AUTH_FAILURES_PER_MIN + 1)]
        assert statuses == [401] * auth.AUTH_FAILURES_PER_MIN + [429]
        r = post(gw, IMAGE, "good-key")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_model_and_endpoint_scopes(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN) as gw:
        secret = admin_create(gw, name="imgs", models=["gpt-image-*"], endpoints=["images.*", "models.*"])
        assert post(gw, IMAGE, secret).status_code == 200
        r = post(gw, {"model": "dall-e-3", "prompt": "x"}, secret)
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
        r = post(gw, {"model": "sora-2", "prompt": "x", "seconds": 4}, secret, "/v1/videos")
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
        assert httpx.get(gw.base_url + "/v1/models", headers=bearer(secret)).status_code == 200


def test_rpm_at_limit_plus_one_with_headers(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN) as gw:
        secret = admin_create(gw, name="r", rpm=3)
        answers = [httpx.get(gw.base_url + "/v1/models", headers=bearer(secret)) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        last = answers[-1]
        assert last.json()["error"]["code"] == "rate_limit_exceeded" and last.headers["X-RateLimit-Limit"] == "3"
        assert 1 <= int(last.headers["Retry-After"]) <= 60 and last.headers["X-RateLimit-Reset"] == last.headers["Retry-After"]


def test_images_per_minute_counts_n(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN) as gw:
        secret = admin_create(gw, name="i", images_per_min=3)
        assert post(gw, {**IMAGE, "n": 2}, secret).status_code == 200
        r = post(gw, {**IMAGE, "n": 2}, secret)      # 2 + 2 > 3: refused, and not counted
        assert r.status_code == 429 and r.headers["X-RateLimit-Remaining"] == "1"
        assert post(gw, IMAGE, secret).status_code == 200   # exactly the third image


def test_video_seconds_per_minute(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN) as gw:
        secret = admin_create(gw, name="v", video_seconds_per_min=8)
        assert post(gw, {"model": "sora-2", "prompt": "a", "seconds": 8}, secret, "/v1/videos").status_code == 202
        r = post(gw, {"model": "sora-2", "prompt": "b", "seconds": 4}, secret, "/v1/videos")
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"


def _price(gw: GatewayThread, body: dict[str, Any], secret: str, path: str = "/v1/images/generations") -> int:
    r = httpx.post(gw.base_url + path + "?dryRun=true", json=body, headers=bearer(secret))
    return int(r.json()["total_cost_micros"])


def test_budget_refuses_before_the_request_that_would_cross_it(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN) as gw:
        probe = admin_create(gw, name="probe")
        unit = _price(gw, IMAGE, probe)
        assert unit > 0
        budget_micros = unit * 2 + unit // 2                       # room for two images, not three
        secret = admin_create(gw, name="b", budget=budget_micros / 1_000_000, budget_period="month")
        spent = 0.0
        for _ in range(2):
            r = post(gw, IMAGE, secret)
            assert r.status_code == 200
            spent += r.json()["metadata"]["cost"]
        r = post(gw, IMAGE, secret)
        assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_quota"
        # the charged spend is what the responses reported: room is left for nothing that costs `unit`
        assert round(spent * 1_000_000) == unit * 2


def test_ten_per_minute_over_three_instances_on_one_redis(sim: SimulatorThread, tmp_path: Path, redis_url: str) -> None:
    with GatewayThread(sim.base_url, tmp_path / "a", redis_url=redis_url, admin_key=ADMIN) as a, \
            GatewayThread(sim.base_url, tmp_path / "b", redis_url=redis_url, admin_key=ADMIN) as b, \
            GatewayThread(sim.base_url, tmp_path / "c", redis_url=redis_url, admin_key=ADMIN) as c:
        secret = admin_create(a, name="noisy", rpm=10)
        assert httpx.get(b.base_url + "/admin/keys", headers=bearer(ADMIN)).json()["data"][0]["name"] == "noisy"

        def one(i: int) -> int:
            gw = (a, b, c)[i % 3]
            return httpx.get(gw.base_url + "/v1/models", headers=bearer(secret), timeout=30).status_code
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(30)))
        assert statuses.count(200) == 10 and statuses.count(429) == 20
        # revoked on one instance: refused on the other within the cache time
        key_id = httpx.get(a.base_url + "/admin/keys", headers=bearer(ADMIN)).json()["data"][0]["id"]
        other = admin_create(b, name="other")
        assert httpx.get(a.base_url + "/v1/models", headers=bearer(other)).status_code == 200
        httpx.delete(f"{b.base_url}/admin/keys/{key_id}", headers=bearer(ADMIN))
        ids = httpx.get(b.base_url + "/admin/keys", headers=bearer(ADMIN)).json()["data"]
        other_id = next(k["id"] for k in ids if k["name"] == "other")
        httpx.delete(f"{b.base_url}/admin/keys/{other_id}", headers=bearer(ADMIN))
        started = time.monotonic()
        while httpx.get(a.base_url + "/v1/models", headers=bearer(other)).status_code != 401:
            assert time.monotonic() - started < 3
            time.sleep(0.05)
        assert time.monotonic() - started <= keys.KEY_CACHE_S + 0.5


def test_cli_on_redis(tmp_path: Path, redis_url: str) -> None:
    made = cli(tmp_path, "create", "shared", "--team", "t", redis_url=redis_url)
    assert made.returncode == 0, made.stderr
    assert "shared" in cli(tmp_path / "elsewhere", "list", redis_url=redis_url).stdout   # the store is Redis, not the dir
