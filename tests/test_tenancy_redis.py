"""Issue 11's "done when" for teams: two real gateway processes on one real redis-server, two teams' keys.
Team B cannot see team A's videos (read, list, content, delete), media (MEDIAGATE_MEDIA_ACCESS=team),
request records or usage, whichever instance it asks; `/v1/usage` read on one instance equals the sum of the `metadata.cost` answered by both.
Kept to one test: it starts two processes."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediagate.sandbox.testing import SimulatorThread
from tests.test_multi_instance import Instance

ADMIN = "admin-secret-for-tests"
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


def call(method: str, inst: Instance, path: str, secret: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, inst.base + path, headers={"Authorization": f"Bearer {secret}"}, timeout=60, **kw)


def test_two_teams_on_two_instances(sim: SimulatorThread, redis_url: str, tmp_path: Path) -> None:
    sim.reset()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_") and not k.endswith("_API_KEY")}
    env.update(MEDIAGATE_REDIS_URL=redis_url, MEDIAGATE_SANDBOX="on", MEDIAGATE_ADMIN_KEY=ADMIN, MEDIAGATE_MEDIA_ACCESS="team",
               MEDIAGATE_MEDIA_DIR=str(tmp_path / "media"),   # one media directory: one machine's shared disk
               MEDIAGATE_SIGNING_KEY="shared-signing-key-for-the-cluster-0123456789", MEDIAGATE_RELOAD_SECONDS="0",
               PYTHONUNBUFFERED="1")
    one, two = (Instance(n, {**env, "MEDIAGATE_STATE_DIR": str(tmp_path / f"state-{n}")}, sim.base_url, tmp_path)
                for n in ("one", "two"))
    try:
        one.start()
        two.start()
        keys = {}
        for name, team in (("alice", "red"), ("bob", "blue")):
            r = call("POST", one, "/admin/keys", ADMIN, json={"name": name, "team": team})
            assert r.status_code == 201, r.text
            keys[team] = r.json()["key"]
        red, blue = keys["red"], keys["blue"]

        costs = []
        r = call("POST", one, "/v1/images/generations", red, json={"model": "gpt-image-1", "prompt": "a fox", "n": 2})
        assert r.status_code == 200, r.text
        costs.append(r.json()["metadata"]["cost"])
        media = r.json()["data"][0]["url"][len(one.base):]            # minted on `one`, team-bound, asked of `two`
        assert call("GET", two, media, red).status_code == 200 and call("GET", two, media, blue).status_code == 404
        r = call("POST", two, "/v1/chat/completions", red,
                 json={"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20})
        costs.append(float(r.headers["x-mediagate-cost"]))
        video = call("POST", one, "/v1/videos", red, json={"model": "sora-2", "prompt": "boat [sim:job=200]", "seconds": "4",
                                                          "idempotency_key": "k1"}).json()
        deadline = time.monotonic() + 30
        while (done := call("GET", two, f"/v1/videos/{video['id']}", red).json())["status"] in ("queued", "in_progress"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert done["status"] == "completed"
        costs.append(done["metadata"]["cost"])
        r = call("POST", two, "/v1/images/generations", blue, json={"model": "gpt-image-1", "prompt": "blue's"})
        blue_cost = r.json()["metadata"]["cost"]
        same_key = call("POST", two, "/v1/videos", blue, json={"model": "sora-2", "prompt": "x [sim:job=100]",
                                                               "idempotency_key": "k1"})
        assert same_key.status_code == 202 and same_key.json()["id"] != video["id"]    # idempotency scoped by team

        records = call("GET", two, "/v1/requests", red).json()["data"]   # recorded on `one`, read on `two`
        for inst in (one, two):
            for method, path in (("GET", f"/v1/videos/{video['id']}"), ("GET", f"/v1/videos/{video['id']}/content"),
                                 ("DELETE", f"/v1/videos/{video['id']}"), ("GET", f"/v1/requests/{records[0]['id']}"),
                                 ("DELETE", f"/v1/requests/{records[0]['id']}/payloads")):
                assert call(method, inst, path, blue).status_code == 404, (inst.name, method, path)
            assert [v["id"] for v in call("GET", inst, "/v1/videos", blue).json()["data"]] == [same_key.json()["id"]]
            assert {x["team"] for x in call("GET", inst, "/v1/requests", blue).json()["data"]} == {"blue"}
            assert call("GET", inst, "/v1/usage?team=red", blue).status_code == 403
        assert call("GET", one, f"/v1/videos/{video['id']}/content", red).content[4:8] == b"ftyp"

        deadline = time.monotonic() + 10   # the other instance's queue, and the video's finish, land within moments
        while (u := call("GET", two, "/v1/usage?group_by=team", red).json())["total"]["video_seconds"] < 4 \
                or u["total"]["requests"] < 3:
            assert time.monotonic() < deadline, u
            time.sleep(0.1)
        assert u["data"] == [{"team": "red", **u["total"]}]
        assert (u["total"]["requests"], u["total"]["images"], u["total"]["cost"]) == (3, 2, round(sum(costs), 6))
        everyone = {row["team"]: row for row in call("GET", one, "/v1/usage?group_by=team", ADMIN).json()["data"]}
        assert set(everyone) == {"red", "blue"} and everyone["red"]["cost"] == round(sum(costs), 6)   # the admin sees all
        assert everyone["blue"]["requests"] == 2 and everyone["blue"]["cost"] >= blue_cost
    finally:
        one.stop()
        two.stop()
