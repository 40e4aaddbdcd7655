"""The console's server side over real HTTP: its files (what, with which headers, nothing else), the catalog
details it reads, and `POST /v1/explain` — behind keys, the same answer as `mediagate explain`, no secret in it."""

from __future__ import annotations

import json
from typing import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediagate import api_console, catalog
from mediagate.explain import explain
from mediagate.sandbox.testing import SimulatorThread
from tests import test_fuzz_endpoints as fuzz
from tests import legacy
from tests.servers import GatewayThread
from tests.test_videos import _Hook, hook_server  # noqa: F401  (a webhook receiver on loopback)

KEY = "sk-console-http-test"
SECRET = "sk-upstream-secret-never-shown-123"


@pytest.fixture(scope="module")
def keyed(sim: SimulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", SECRET)   # a configured provider: its secret must never reach an explain
    try:
        with GatewayThread(sim.base_url, tmp_path_factory.mktemp("console-http"), api_keys=frozenset({KEY})) as gw:
            yield gw
    finally:
        mp.undo()


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def test_the_console_is_served_from_the_package_files(keyed: GatewayThread) -> None:
    root = api_console.asset_dir()
    names = sorted(p.name for p in root.iterdir() if p.suffix in api_console.MEDIA_TYPES)
    assert {"index.html", "app.js", "style.css", "form.js", "playground.js", "edit.js", "videos.js", "usage.js"} <= set(names)
    with httpx.Client(base_url=keyed.base_url) as c:
        page = c.get("/console/")           # no key needed for the page: it holds no data
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "connect-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        for name in names:
            r = c.get(f"/console/{name}")
            assert r.status_code == 200 and r.content == (root / name).read_bytes()
        assert c.get("/console/app.js").headers["content-type"].startswith("text/javascript")
        for path in ("/console", "/"):
            moved = c.get(path, follow_redirects=False)
            assert moved.status_code == 307 and moved.headers["location"] == "/console/"


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/..%2Fpyproject.toml", "/console/%2e%2e/app.py",
                                  "/console/README.md"])
def test_only_the_console_files_are_served(keyed: GatewayThread, path: str) -> None:
    r = httpx.get(keyed.base_url + path)
    assert r.status_code == 404
    assert r.json()["error"]["code"] in ("not_found",)


def test_every_module_the_page_imports_is_served() -> None:
    """A module missing from the package would break the page at run time, not at load: check the imports."""
    import re
    root = api_console.asset_dir()
    for js in root.glob("*.js"):
        for imported in re.findall(r"from '\./([^']+)'", js.read_text()):
            assert (root / imported).is_file(), f"{js.name} imports {imported}, which is not shipped"
    html = (root / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="/console/([^"]+)"', html):
        assert (root / ref).is_file(), ref


def test_model_details_say_where_each_route_goes(keyed: GatewayThread) -> None:
    with httpx.Client(base_url=keyed.base_url, headers=_auth()) as c:
        plain = c.get("/v1/models/gpt-image-1").json()
        assert "routes" not in plain and "price" not in plain
        got = c.get("/v1/models/gpt-image-1?detail=true").json()
        listed = {m["id"]: m for m in c.get("/v1/models?detail=true").json()["data"]}
    assert listed["gpt-image-1"]["routes"] == got["routes"]
    route = got["routes"][0]
    assert route["provider"] == "openai" and route["sandboxed"] is True and route["configured"] is True
    assert route["cooling_down"] is False and route["missing_env"] == []
    assert got["lifecycle"]["status"] == "retired"
    assert got["price"] == {"currency": "USD", "per_unit": {"image": {"min": 0.011, "max": 0.25}}}  # models.d/gpt-image-1.yaml


def test_explain_over_http_is_the_cli_s_answer_without_secrets(keyed: GatewayThread) -> None:
    body = {"operation": "edit", "request": {"model": "gpt-image-1", "prompt": "a cat", "size": "1000x700"},
            "images": ["640x480"], "mask": True}
    with httpx.Client(base_url=keyed.base_url) as c:
        assert c.post("/v1/explain", json=body).status_code == 401
        r = c.post("/v1/explain", json=body, headers=_auth())
    assert r.status_code == 200, r.text
    out = r.json()
    served = catalog.load([*catalog.default_spec_dirs(), legacy.root()])   # what GatewayThread serves (tests/legacy.py)
    expected = explain(served, "gpt-image-1", {"prompt": "a cat", "size": "1000x700"}, "edit", ["640x480"], True)
    assert out == expected
    request = out["routes"][0]["request"]
    assert request["url"] == "https://api.openai.com/v1/images/edits"
    assert request["headers"]["Authorization"] == "***"
    assert request["multipart"]["mask"].endswith("image/png>")
    assert SECRET not in r.text


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "gpt-image-1"}, "request"),
    ({"request": {"prompt": "p"}}, "model"),
    ({"request": {"model": "gpt-image-1", "prompt": "p"}, "operation": "video"}, "operation"),
    ({"request": {"model": "gpt-image-1", "prompt": "p"}, "operation": "edit", "images": ["9000x10"]}, "images"),
    ({"request": {"model": "gpt-image-1", "prompt": "p"}, "operation": "edit", "images": ["10x10"] * 17}, "images"),
    ({"request": {"model": "gpt-image-1", "prompt": "p"}, "mask": "yes"}, "mask"),
    ({"request": {"model": "gpt-image-1", "prompt": "p", "quality": "ultra"}}, "quality"),
])
def test_explain_refuses_what_it_cannot_render_with_the_param(keyed: GatewayThread, body: dict, param: str) -> None:
    r = httpx.post(keyed.base_url + "/v1/explain", json=body, headers=_auth())
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_explain_answers_404_for_an_unknown_model(keyed: GatewayThread) -> None:
    r = httpx.post(keyed.base_url + "/v1/explain", json={"request": {"model": "no-such-model", "prompt": "p"}}, headers=_auth())
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_same_origin_posts_from_the_console_pass_the_origin_check(keyed: GatewayThread) -> None:
    """The console is same-origin: its POSTs carry Origin = the gateway's own, which must pass; another
    site's must not (CSRF)."""
    body = {"request": {"model": "gpt-image-1", "prompt": "p"}}
    own = httpx.post(keyed.base_url + "/v1/explain", json=body, headers={**_auth(), "Origin": keyed.base_url})
    assert own.status_code == 200
    other = httpx.post(keyed.base_url + "/v1/explain", json=body, headers={**_auth(), "Origin": "https://evil.example"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "origin_not_allowed"



def test_a_video_shows_its_webhook_deliveries(sim: SimulatorThread, tmp_path_factory: pytest.TempPathFactory,
                                              hook_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console's job list shows each job's deliveries: their outcome is on the video object."""
    import time

    from mediagate import webhooks
    monkeypatch.setattr(webhooks, "RETRY_SCHEDULE_S", (0.2,))
    _Hook.fail_first = 1
    with GatewayThread(sim.base_url, tmp_path_factory.mktemp("hooks"), fetch_allow="127.0.0.1") as gw, \
            httpx.Client(base_url=gw.base_url) as c:
        vid = c.post("/v1/videos", json={"model": "sora-2", "prompt": "x [sim:job=200]",
                                         "webhook_url": hook_server + "?token=receiver-secret"}).json()["id"]
        deadline, seen = time.monotonic() + 15, []
        while time.monotonic() < deadline:
            hooks = c.get(f"/v1/videos/{vid}").json()["metadata"]["webhooks"]
            seen += [h["state"] for h in hooks]
            if hooks and hooks[0]["state"] == "delivered":
                break
            time.sleep(0.05)
        listed = c.get("/v1/videos").json()["data"][0]["metadata"]["webhooks"]
    assert len(hooks) == 1, hooks
    assert {k: hooks[0][k] for k in ("type", "state", "attempts", "last_status", "next_attempt_at")} == \
        {"type": "video.completed", "state": "delivered", "attempts": 2, "last_status": 200, "next_attempt_at": None}
    assert hooks[0]["id"] == _Hook.received[0][0]["webhook-id"]
    assert "retrying" in seen, seen     # the failed first try was shown before the retry succeeded
    assert listed == hooks
    assert "receiver-secret" not in json.dumps(hooks)   # the URL (and any token in it) is not shown


EXPLAIN_MODELS = ["dall-e-2", "gpt-image-1", "gemini-3-pro-image", "flux.1-schnell", "sora-2", "veo-3.1", "gpt-4.1-mini"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(EXPLAIN_MODELS) | fuzz.texts,
       operation=st.none() | st.sampled_from(["generate", "edit", "video", "chat"]) | fuzz.texts,
       fields=st.dictionaries(fuzz.keys, fuzz.values, max_size=5),
       images=st.none() | st.lists(st.sampled_from(["64x64", "1024x768", "0x5", "x"]) | fuzz.texts, max_size=3),
       mask=st.none() | st.booleans() | fuzz.texts)
def test_explain_answers_any_body_with_2xx_or_4xx(keyed: GatewayThread, model: str, operation: str | None,
                                                  fields: dict, images: list | None, mask: object) -> None:
    body: dict = {"request": {"prompt": "p", **fields, "model": model}}
    for name, value in (("operation", operation), ("images", images), ("mask", mask)):
        if value is not None:
            body[name] = value
    r = httpx.post(keyed.base_url + "/v1/explain", content=json.dumps(body), headers={**_auth(), "Content-Type": "application/json"})
    assert r.status_code < 500, (body, r.text)
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
