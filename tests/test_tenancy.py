"""Teams, usage and request history (issue 11 items 3 and 4) on the embedded store, in process:
videos and idempotency keys belong to the key's team; `/v1/usage` sums equal the `metadata.cost` of the
responses; `/v1/requests` lists, filters, pages and keeps payloads only for keys that opt in; refusals are
counted. The same over two real instances on one Redis is in tests/test_tenancy_redis.py."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mediagate import history, metrics
from mediagate.history_sqlite import SqliteHistory
from mediagate.sandbox.testing import SimulatorThread
from tests import legacy
from tests.servers import GatewayThread
from tests.test_billing import spec_root

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin-secret-for-tests"
ENV_KEY = "env-key-for-tests"
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def make_key(base: str, **fields: Any) -> str:
    r = httpx.post(base + "/admin/keys", json=fields, headers=bearer(ADMIN), timeout=10)
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def call(method: str, base: str, path: str, secret: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, base + path, headers=bearer(secret), timeout=60, **kw)


def video_done(base: str, secret: str, video_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        v = call("GET", base, f"/v1/videos/{video_id}", secret).json()
        if v["status"] not in ("queued", "in_progress") or time.monotonic() > deadline:
            return dict(v)
        time.sleep(0.1)


def team_cost(team: str) -> float:
    """mediagate_cost_total summed over every series labelled with `team` (this process's registry)."""
    return sum(s.value for fam in metrics.REGISTRY.collect() if fam.name == "mediagate_cost"
               for s in fam.samples if s.name == "mediagate_cost_total" and s.labels["team"] == team)


def usage_total(base: str, secret: str, **params: str) -> dict[str, Any]:
    r = call("GET", base, "/v1/usage", secret, params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_videos_and_idempotency_keys_belong_to_the_team(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN, api_keys=frozenset({ENV_KEY})) as gw:
        a, b = make_key(gw.base_url, name="a", team="red"), make_key(gw.base_url, name="b", team="blue")
        body = {"model": "sora-2", "prompt": "a paper boat [sim:job=300]", "seconds": "4", "idempotency_key": "same"}
        va = call("POST", gw.base_url, "/v1/videos", a, json=body)
        vb = call("POST", gw.base_url, "/v1/videos", b, json=body)
        assert va.status_code == vb.status_code == 202
        assert va.json()["id"] != vb.json()["id"]                     # one key, two teams: two jobs
        again = call("POST", gw.base_url, "/v1/videos", a, json=body)
        assert again.status_code == 200 and again.json()["id"] == va.json()["id"]   # within the team: the same job
        vid = va.json()["id"]
        assert video_done(gw.base_url, a, vid)["status"] == "completed"
        for method, path in (("GET", f"/v1/videos/{vid}"), ("GET", f"/v1/videos/{vid}/content"),
                             ("DELETE", f"/v1/videos/{vid}")):
            for other in (b, ENV_KEY):   # another team, and MEDIAGATE_API_KEYS (team "default")
                r = call(method, gw.base_url, path, other)
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path, r.text)
        assert [v["id"] for v in call("GET", gw.base_url, "/v1/videos", a).json()["data"]] == [vid]
        assert [v["id"] for v in call("GET", gw.base_url, "/v1/videos", b).json()["data"]] == [vb.json()["id"]]
        assert call("GET", gw.base_url, "/v1/videos", ENV_KEY).json()["data"] == []
        # a cursor from another team's list names nothing here
        assert call("GET", gw.base_url, f"/v1/videos?after={vid}", b).json()["data"] == []
        assert call("GET", gw.base_url, f"/v1/videos/{vid}/content", a).status_code == 200
        assert call("DELETE", gw.base_url, f"/v1/videos/{vid}", a).json()["deleted"] is True


def test_usage_equals_the_sum_of_metadata_cost(sim: SimulatorThread, tmp_path: Path) -> None:
    """Images (n=2), a chat, a video, a billed failure, and a fallback after a billed attempt: every cost the
    responses reported, and nothing else, is in /v1/usage; another team sees none of it."""
    sim.reset()
    # gpt-image-1.5 and sora-2 are retired upstream: served here as an operator whose upstream still has them would
    model = {**yaml.safe_load((legacy.root() / "gpt-image-1.5.yaml").read_text()), "fallback_after_send": True}
    roots = [ROOT, legacy.root(), spec_root(tmp_path / "specs", models={"gpt-image-1.5": model})]
    with GatewayThread(sim.base_url, tmp_path, roots, admin_key=ADMIN) as gw:
        a, b = make_key(gw.base_url, name="alice", team="red"), make_key(gw.base_url, name="bob", team="blue")
        metered_before = team_cost("red")
        costs: list[float] = []
        r = call("POST", gw.base_url, "/v1/images/generations", a, json={"model": "gpt-image-1", "prompt": "a fox", "n": 2})
        assert r.status_code == 200, r.text
        costs.append(r.json()["metadata"]["cost"])
        r = call("POST", gw.base_url, "/v1/chat/completions", a,
                 json={"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20})
        assert r.status_code == 200
        costs.append(float(r.headers["x-mediagate-cost"]))
        sim.inject("drop", 1, "openai")                  # opted-in fallback: the dropped attempt is billed too
        r = call("POST", gw.base_url, "/v1/images/generations", a,
                 json={"model": "gpt-image-1.5", "prompt": "a harbour", "response_format": "b64_json"})
        assert r.status_code == 200 and len(r.json()["metadata"]["attempts"]) == 2
        costs.append(r.json()["metadata"]["cost"])
        sim.inject("500", 1, "openai")                   # a billed failure: its cost is in the error's header
        r = call("POST", gw.base_url, "/v1/images/generations", a, json={"model": "gpt-image-1", "prompt": "x"})
        assert r.status_code == 502
        costs.append(float(r.headers["x-mediagate-cost"]))
        v = call("POST", gw.base_url, "/v1/videos", a, json={"model": "sora-2", "prompt": "boat [sim:job=200]", "seconds": "4"})
        done = video_done(gw.base_url, a, v.json()["id"])
        assert done["status"] == "completed"
        costs.append(done["metadata"]["cost"])
        call("POST", gw.base_url, "/v1/images/generations", b, json={"model": "gpt-image-1", "prompt": "b's"})
        assert all(c > 0 for c in costs)

        deadline = time.monotonic() + 10   # the video's finish is recorded by the job runner, a moment after
        while (u := usage_total(gw.base_url, a, group_by="team"))["total"]["video_seconds"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert u["data"] == [{"team": "red", **u["total"]}]
        assert u["total"]["cost"] == round(sum(costs), 6) and u["total"]["cost_currency"] == "USD"
        assert (u["total"]["requests"], u["total"]["images"], u["total"]["video_seconds"]) == (5, 3, 4.0)
        assert team_cost("red") - metered_before == pytest.approx(sum(costs))   # the cost metric's team label
        by_model = usage_total(gw.base_url, a, group_by="model,provider")["data"]
        assert {(row["model"], row["provider"]) for row in by_model} >= {("gpt-image-1", "openai"), ("sora-2", "openai")}
        assert usage_total(gw.base_url, b)["total"]["requests"] == 1          # bob's team sees bob's only
        everyone = usage_total(gw.base_url, ADMIN, group_by="team")            # the admin key sees every team
        assert {row["team"]: row["requests"] for row in everyone["data"]} == {"red": 5, "blue": 1}
        assert call("GET", gw.base_url, "/v1/usage?team=red", b).status_code == 403
        assert call("GET", gw.base_url, "/v1/usage?group_by=colour", a).json()["error"]["param"] == "group_by"

        listed = call("GET", gw.base_url, "/v1/requests", a).json()
        assert [x["endpoint"] for x in listed["data"]] == ["videos.create", "images.generations", "images.generations",
                                                          "chat.completions", "images.generations"]
        video_rec = listed["data"][0]
        assert (video_rec["status"], video_rec["video_id"], video_rec["cost"]) == ("succeeded", v.json()["id"], costs[-1])
        failed = call("GET", gw.base_url, "/v1/requests?status=failed", a).json()["data"]
        assert [(x["http_status"], x["error_code"], x["cost"]) for x in failed] == [(502, "all_providers_exhausted", costs[3])]
        assert round(sum(x["cost"] for x in listed["data"]), 6) == u["total"]["cost"]
        fallback = listed["data"][2]
        assert [t["provider"] for t in fallback["attempts"]] == ["openai", "fal"] and fallback["key"] == "alice"
        assert "payloads" not in fallback and fallback["payloads_stored"] is False
        assert call("GET", gw.base_url, f"/v1/requests/{fallback['id']}", b).status_code == 404   # another team's
        assert call("GET", gw.base_url, f"/v1/requests/{fallback['id']}", ADMIN).status_code == 200
        assert all(x["team"] == "blue" for x in call("GET", gw.base_url, "/v1/requests", b).json()["data"])
    sim.reset()


def test_requests_pages_filters_and_payloads(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN) as gw:
        plain = make_key(gw.base_url, name="plain", team="t")
        keeper = make_key(gw.base_url, name="keeper", team="t", store_payloads=True)
        for i in range(5):
            call("POST", gw.base_url, "/v1/images/generations", plain, json={"model": "gpt-image-1", "prompt": f"secret {i}"})
        r = call("POST", gw.base_url, "/v1/images/generations", keeper, json={"model": "gpt-image-1", "prompt": "kept prompt"})
        url = r.json()["data"][0]["url"]
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = call("GET", gw.base_url, "/v1/requests", plain,
                        params={"limit": 2, "summary": "true", **({"after": cursor} if cursor else {})}).json()
            seen += [x["id"] for x in page["data"]]
            assert all("attempts" not in x for x in page["data"])
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        assert len(seen) == len(set(seen)) == 6
        mine = call("GET", gw.base_url, "/v1/requests?key=plain", plain).json()["data"]
        assert len(mine) == 5
        full = call("GET", gw.base_url, f"/v1/requests/{mine[0]['id']}", plain).json()
        assert "secret" not in str(full) and full["payloads"] is None       # never a prompt unless the key opts in
        kept = call("GET", gw.base_url, "/v1/requests?key=keeper", plain).json()["data"][0]
        shown = call("GET", gw.base_url, f"/v1/requests/{kept['id']}", keeper).json()
        assert shown["payloads"]["request"]["prompt"] == "kept prompt" and shown["payloads"]["response"]["data"][0]["url"] == url
        gone = call("DELETE", gw.base_url, f"/v1/requests/{kept['id']}/payloads", keeper)
        assert gone.status_code == 200 and gone.json()["deleted"] is True
        assert call("GET", gw.base_url, f"/v1/requests/{kept['id']}", keeper).json()["payloads"] is None
        future = call("GET", gw.base_url, "/v1/requests", plain, params={"start": str(int(time.time()) + 3600)}).json()
        assert future["data"] == []
        bad = call("GET", gw.base_url, "/v1/requests?status=weird", plain)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"
        assert call("GET", gw.base_url, "/v1/requests?limit=101", plain).json()["error"]["param"] == "limit"
        assert httpx.get(gw.base_url + "/v1/requests").status_code == 401


def test_refusals_are_counted_by_reason(sim: SimulatorThread, tmp_path: Path) -> None:
    def refusals(gw: GatewayThread, reason: str) -> float:
        text = call("GET", gw.base_url, "/metrics", ENV_KEY).text
        for family in text_string_to_metric_families(text):
            if family.name == "mediagate_refusals":
                return sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels["reason"] == reason)
        return 0.0
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN, api_keys=frozenset({ENV_KEY})) as gw:
        key = make_key(gw.base_url, name="slow", rpm=1, models=["gpt-image-*"])
        before_rpm, before_model = refusals(gw, "rpm"), refusals(gw, "model_not_allowed")
        assert call("POST", gw.base_url, "/v1/chat/completions", key,
                    json={"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "x"}]}).status_code == 403
        assert call("GET", gw.base_url, "/v1/models", key).status_code == 429
        assert call("POST", gw.base_url, "/v1/images/generations", key,
                    json={"model": "gpt-image-1", "prompt": "x"}).status_code == 429
        assert refusals(gw, "rpm") == before_rpm + 2 and refusals(gw, "model_not_allowed") == before_model + 1
        # refused generations are in the key's history too (the models listing is not a generation)
        listed = call("GET", gw.base_url, "/v1/requests", ADMIN).json()["data"]
        assert [(x["endpoint"], x["http_status"], x["error_code"], x["key"]) for x in listed] == [
            ("images.generations", 429, "rate_limit_exceeded", "slow"), ("chat.completions", 403, "model_not_allowed", "slow")]


def test_sqlite_history_retention_sweep(tmp_path: Path) -> None:
    async def run() -> None:
        store = SqliteHistory(tmp_path / "h.sqlite3")
        now = time.time()
        old = {"id": "req_old", "created_at": now - 40 * history.DAY_S, "team": "t", "key": "k", "status": "succeeded",
               "model": "m", "provider": "p", "cost_micros": 5, "cost_currency": "USD", "images": 1}
        new = {**old, "id": "req_new", "created_at": now}
        await store.add([old, new])
        await store.sweep(now - 30 * history.DAY_S, history.day_of(now - history.USAGE_KEEP_DAYS * history.DAY_S))
        assert await store.get("req_old", None) is None and await store.get("req_new", "t") is not None
        assert await store.get("req_new", "other") is None
        rows = await store.usage("t", None, history.day_of(now - 50 * history.DAY_S), history.day_of(now))
        assert sum(r["value"] for r in rows if r["metric"] == "cost_micros:USD") == 10   # usage sums outlive records
        await store.close()
    asyncio.run(run())


def test_a_store_that_fails_never_fails_a_response(sim: SimulatorThread, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Records are written after the answer, off the request: with the history store down the request still
    succeeds, and the lost record is counted."""
    class Down:
        async def add(self, records: list[dict[str, Any]]) -> None:
            raise history.StoreUnavailable("test")

    def dropped() -> float:
        return metrics.REGISTRY.get_sample_value("mediagate_history_dropped_total") or 0.0
    monkeypatch.setattr(history, "STORE_RETRY_S", 0.01)
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN) as gw:
        key = make_key(gw.base_url, name="k")
        gw.runtime.history.store = Down()
        before = dropped()
        r = call("POST", gw.base_url, "/v1/images/generations", key, json={"model": "gpt-image-1", "prompt": "x"})
        assert r.status_code == 200
        deadline = time.monotonic() + 10
        while dropped() < before + 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_a_full_record_queue_drops_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "RECORD_QUEUE_MAX", 2)
    recorder = history.Recorder(SqliteHistory.__new__(SqliteHistory))   # never written: no loop runs
    before = metrics.REGISTRY.get_sample_value("mediagate_history_dropped_total") or 0.0
    for i in range(3):                                                                    # the limit, and one more
        recorder.submit("add", {"id": str(i)})
    assert recorder.queue.qsize() == 2
    assert metrics.REGISTRY.get_sample_value("mediagate_history_dropped_total") == before + 1


def test_usage_range_limits(gateway: GatewayThread) -> None:
    def ask(**params: str) -> httpx.Response:
        return httpx.get(gateway.base_url + "/v1/usage", params=params, timeout=10)
    assert ask(start="2026-01-01", end="2027-02-04").status_code == 200                 # 400 days
    over = ask(start="2026-01-01", end="2027-02-05")                                    # 401 days
    assert over.status_code == 400 and over.json()["error"]["param"] == "start"
    assert ask(start="2026-02-01", end="2026-01-01").json()["error"]["param"] == "start"
    assert ask(start="yesterday").json()["error"]["param"] == "start"


def test_cli_store_payloads_flag(tmp_path: Path) -> None:
    from tests.test_keys import cli
    made = cli(tmp_path, "create", "keeper", "--team", "t", "--store-payloads", "--json")
    assert made.returncode == 0, made.stderr
    shown = json.loads(made.stdout.splitlines()[0])
    assert shown["store_payloads"] is True and shown["team"] == "t"


@pytest.mark.parametrize("value", ["99999999999999999999", "1e309", "nan", "²", "-5", "10000-01-01", "2026-13-01"])
def test_bad_times_and_limits_are_400_naming_the_param(gateway: GatewayThread, value: str) -> None:
    for path in ("/v1/usage", "/v1/requests"):
        r = httpx.get(gateway.base_url + path, params={"start": value}, timeout=10)
        assert r.status_code == 400 and r.json()["error"]["param"] == "start", (path, value, r.text)
    r = httpx.get(gateway.base_url + "/v1/requests", params={"limit": value}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


def test_team_bound_media_urls(sim: SimulatorThread, tmp_path: Path) -> None:
    """MEDIAGATE_MEDIA_ACCESS=team: a url response opens only with a key of the team that made it."""
    with GatewayThread(sim.base_url, tmp_path, admin_key=ADMIN, api_keys=frozenset({ENV_KEY}), media_access="team") as gw:
        a, b = make_key(gw.base_url, name="a", team="red"), make_key(gw.base_url, name="b", team="blue")
        r = call("POST", gw.base_url, "/v1/images/generations", a, json={"model": "dall-e-2", "prompt": "x", "size": "256x256"})
        url = r.json()["data"][0]["url"]
        assert call("GET", url, "", a).content[:8] == b"\x89PNG\r\n\x1a\n"
        for other in (b, ENV_KEY):
            got = call("GET", url, "", other)
            assert got.status_code == 404 and got.json()["error"]["code"] == "not_found"
        assert httpx.get(url, timeout=10).status_code == 401
        forged = url.rsplit("sig=", 1)[0] + "sig=" + "0" * 64
        assert call("GET", forged, "", a).status_code == 404
        mine = call("POST", gw.base_url, "/v1/images/generations", ENV_KEY,
                    json={"model": "dall-e-2", "prompt": "x", "size": "256x256"}).json()["data"][0]["url"]
        assert call("GET", mine, "", ENV_KEY).status_code == 200 and call("GET", mine, "", a).status_code == 404


def test_team_bound_media_needs_gateway_links(tmp_path: Path) -> None:
    from mediagate.config import Settings
    from mediagate.media import MediaConfigError, open_media
    with pytest.raises(MediaConfigError, match="MEDIAGATE_MEDIA_ACCESS=team needs gateway links"):
        open_media(Settings(state_dir=tmp_path, media_dir=tmp_path / "m", media_access="team", media_links="presigned"), 60)
    with pytest.raises(MediaConfigError, match="MEDIAGATE_MEDIA_ACCESS must be url or team"):
        open_media(Settings(state_dir=tmp_path, media_dir=tmp_path / "m", media_access="keys"), 60)
