"""The spec constructs of docs/SPEC-constructs.md, each carried through a simulated provider with no Python
naming it: a file reply, the reply view, surfaced metadata, host lists from config/env, route overrides."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mediagate import catalog as catalog_mod
from mediagate.imaging import identify
from mediagate.provider import ProviderSpecError, compile_provider
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

ROOT = Path(__file__).resolve().parent.parent
URL = "/v1/images/generations"
STABILITY = yaml.safe_load((ROOT / "providers.d" / "stability.yaml").read_text())


def post(gw: GatewayThread, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gw.base_url + URL, json=body, timeout=60)


def schema_errors(spec: dict[str, Any]) -> list[str]:
    return [e.message for e in catalog_mod._validator("provider.schema.json").iter_errors(spec)]


def with_op(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(STABILITY)
    spec["operations"]["generate"].update(changes)
    return spec


# ---------------------------------------------------------------- 1. a reply body that is the file

def test_file_reply_is_the_image_with_its_declared_type(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = post(gateway, {"model": "stable-image-core", "prompt": "a lighthouse", "size": "1344x768",
                       "output_format": "jpeg", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    info = identify(base64.b64decode(r.json()["data"][0]["b64_json"]))
    assert (info.format, info.width, info.height) == ("jpeg", 1344, 768)
    sent = sim_clean.requests("stability")[-1]
    assert sent["headers"]["accept"] == "image/*" and sent["path"].endswith("/generate/core")
    assert r.json()["metadata"]["provider"] == "stability"


def test_file_reply_of_an_undeclared_type_is_malformed_and_not_retried(gateway: GatewayThread,
                                                                         sim_clean: SimulatorThread) -> None:
    r = post(gateway, {"model": "stable-image-core", "prompt": "a lighthouse [sim:malformed]"})
    assert r.status_code == 502, r.text
    assert "text/html" in r.json()["error"]["message"]
    assert sim_clean.post_counts().get("stability", len(sim_clean.requests("stability"))) == 1 \
        or len(sim_clean.requests("stability")) == 1   # billed work is not asked for twice


def test_file_body_schema_and_load_checks() -> None:
    assert schema_errors(STABILITY) == []
    bad = with_op(outputs={"body": "file"})
    assert schema_errors(bad), "content_types is required with body: file"
    both = with_op(outputs={"body": "file", "content_types": ["image/png"], "items": "data"})
    assert schema_errors(both)
    no_view = with_op(view="body")
    with pytest.raises(ProviderSpecError, match=r"blocked_when.*view: reply"):
        compile_provider(no_view, "stability.yaml", {})
    op = compile_provider(STABILITY, "stability.yaml", {}).operations["generate"]
    assert op.file_types == ("image/png", "image/jpeg", "image/webp") and op.reply_view


# ---------------------------------------------------------------- 2. the reply view

def test_blocked_when_reads_a_reply_header(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = post(gateway, {"model": "stable-image-core", "prompt": "a lighthouse [sim:safety]"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "content_policy_violation" and "filtered" in err["message"]


def test_body_view_is_the_default_and_unchanged() -> None:
    spec = yaml.safe_load((ROOT / "providers.d" / "a1111.yaml").read_text())
    op = compile_provider(spec, "a1111.yaml", {}).operations["generate"]
    assert not op.reply_view
    from mediagate import extract
    png = "iVBORw0KGgo="
    assert extract.view(False, {"images": [png]}, {"x": "1"}, 200) == {"images": [png]}
    assert extract.outputs(op, {"images": [png]}, {"x": "1"})[0].b64 == png
    assert schema_errors(with_op(view="headers")), "only body or reply"


def test_failed_when_reads_the_poll_reply_view() -> None:
    """An async operation under `view: reply`: failed_when sees the poll reply's headers and status."""
    import asyncio
    from mediagate import polling
    from mediagate.errors import UpstreamError
    spec = {"id": "p", "base_url": "http://127.0.0.1:9", "operations": {"generate": {
        "view": "reply", "request": {"method": "POST", "path": "/x"},
        "outputs": {"items": "body.images", "item": {"b64": "@"}},
        "async": {"poll": {"path": "/p"}, "done_when": "body.done",
                  "failed_when": [{"when": "headers.\"x-state\" == 'failed'", "code": "upstream_error",
                                   "message": "headers.\"x-why\""}]}}}}
    assert schema_errors(spec) == []
    job = compile_provider(spec, "p.yaml", {}).operations["generate"].job
    assert job is not None and job.reply_view
    with pytest.raises(UpstreamError, match="quota gone"):
        asyncio.run(polling.follow(None, None, job, None, {}, {"done": False}, set(),  # type: ignore[arg-type]
                                   submitted_headers={"x-state": "failed", "x-why": "quota gone"}))


# ---------------------------------------------------------------- 4. host lists from config and env

def _hosts_spec(output_hosts: Any, trusted: Any = None, config: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"request": {"method": "POST", "path": "/x"}, "outputs": {"items": "images", "item": {"url": "@"}}}
    if trusted is not None:
        op["async"] = {"poll": {"url": "status_url"}, "done_when": "done", "trusted_hosts": trusted}
    spec: dict[str, Any] = {"id": "h", "base_url": "https://api.example.test", "output_hosts": output_hosts,
                            "operations": {"generate": op}}
    if config:
        spec["config"] = config
    assert schema_errors(spec) == [], schema_errors(spec)
    return spec


def test_host_lists_from_env_config_and_templates() -> None:
    spec = _hosts_spec({"env": "H_OUT", "default": ["*.cdn.test"]}, {"config": "job_hosts"},
                       {"job_hosts": {"env": "H_JOBS", "default": "jobs.example.test"},
                        "region": {"env": "H_REGION", "default": "eu"}})
    p = compile_provider(spec, "h.yaml", {})
    assert p.output_hosts == ("*.cdn.test",)
    assert p.operations["generate"].job.trusted_hosts == frozenset({"jobs.example.test"})  # type: ignore[union-attr]
    p = compile_provider(spec, "h.yaml", {"H_OUT": "a.test, *.B.test", "H_JOBS": "j1.test,j2.test"})
    assert p.output_hosts == ("a.test", "*.b.test")
    assert p.operations["generate"].job.trusted_hosts == frozenset({"j1.test", "j2.test"})  # type: ignore[union-attr]
    templated = _hosts_spec(["files-{{ config.region }}.example.test"], config={"region": {"env": "H_REGION", "default": "eu"}})
    assert compile_provider(templated, "h.yaml", {"H_REGION": "us"}).output_hosts == ("files-us.example.test",)


@pytest.mark.parametrize("hosts, env, message", [
    (["files-{{ config.nope }}.test"], {}, r"\$\.output_hosts\[0\].*does not render"),
    ({"config": "missing"}, {}, r"\$\.output_hosts\.config: no config 'missing'"),
    ({"env": "H_OUT"}, {"H_OUT": "https://cdn.test/files"}, r"not a host pattern"),
    (["cdn.test:8443"], {}, r"not a host pattern"),
])
def test_host_lists_that_cannot_be_used_are_refused_at_load(hosts: Any, env: dict[str, str], message: str) -> None:
    with pytest.raises(ProviderSpecError, match=message):
        compile_provider(_hosts_spec(hosts, config={"region": {"default": "eu"}}), "h.yaml", env)


def test_shipped_fal_output_hosts_follow_the_environment() -> None:
    cat = catalog_mod.load(env={"FAL_OUTPUT_HOSTS": "files.proxy.example"})
    assert cat.providers["fal"].output_hosts == ("files.proxy.example",)
    assert "*.fal.media" in catalog_mod.load(env={}).providers["fal"].output_hosts


# ---------------------------------------------------------------- 5. route-level capability overrides

def test_route_output_narrows_formats_and_the_gateway_converts(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    r = post(gateway, {"model": "fal/flux-1.1-pro", "prompt": "a fjord", "output_format": "webp",
                       "output_compression": 40, "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output_format"] == "webp"
    assert identify(base64.b64decode(body["data"][0]["b64_json"])).format == "webp"
    sent = [q for q in sim_clean.requests("fal") if q["method"] == "POST"][-1]["json"]
    assert sent.get("output_format") == "jpeg"
    notes = [a for a in body["metadata"]["adjustments"] if a["param"] == "output_format"]
    assert notes and notes[0]["requested"] == notes[0]["applied"] == "webp" and "gateway" in notes[0]["reason"]


def test_route_output_compression_is_applied_by_reencoding(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    sizes = []
    for q in (5, 95):
        r = post(gateway, {"model": "fal/flux-1.1-pro", "prompt": "a fjord", "output_format": "jpeg",
                           "output_compression": q, "response_format": "b64_json"})
        assert r.status_code == 200, r.text
        sizes.append(len(r.json()["data"][0]["b64_json"]))
    assert sizes[0] < sizes[1]


def test_route_output_may_not_widen_the_model() -> None:
    spec = yaml.safe_load((ROOT / "models.d" / "flux-1.1-pro.yaml").read_text())
    spec["routes"][1]["output"] = {"formats": ["avif"], "compression": False}
    spec["output"]["compression"] = False
    spec["routes"][0]["output"] = {"formats": ["png"], "compression": True}
    cat = catalog_mod.load(env={})
    problems = dict(catalog_mod._semantic_problems(spec, cat.providers))
    assert "not among the model's output formats" in problems["$.routes[1].output.formats"]
    assert "no native compression" in problems["$.routes[0].output.compression"]


# ------------------------------------------------------------------ route-level prompt limits

def _route_limited_root(tmp_path: Path, limit: int) -> Path:
    """imagen-4-fast with its first route (Vertex) taking at most `limit` prompt characters."""
    import yaml
    root = tmp_path / "specs"
    (root / "models.d").mkdir(parents=True)
    spec = yaml.safe_load((ROOT / "models.d" / "imagen-4-fast.yaml").read_text())
    spec["routes"][0].setdefault("limits", {})["prompt_chars"] = limit
    (root / "models.d" / "imagen-4-fast.yaml").write_text(yaml.safe_dump(spec))
    return root


def test_a_route_that_takes_shorter_prompts_is_skipped_never_sent(sim: Any, tmp_path: Path) -> None:
    sim.reset()
    root = _route_limited_root(tmp_path, 10)
    with GatewayThread(sim.base_url, tmp_path, [ROOT, root]) as gw:
        first = yaml_first_route(root)
        r = httpx.post(gw.base_url + "/v1/images/generations", timeout=60,
                       json={"model": "imagen-4-fast", "prompt": "a prompt longer than ten", "response_format": "b64_json"})
        assert r.status_code == 200, r.text
        attempts = r.json()["metadata"]["attempts"]
        assert attempts[0]["provider"] == first and attempts[0]["outcome"] == "skipped" and attempts[0]["sent"] is False
        assert r.json()["metadata"]["provider"] != first
        assert not [q for q in sim.requests(first) if q["method"] == "POST"], "the skipped route was never called"
        short = httpx.post(gw.base_url + "/v1/images/generations", timeout=60,
                           json={"model": "imagen-4-fast", "prompt": "short", "response_format": "b64_json"})
        assert short.json()["metadata"]["provider"] == first
        forced = httpx.post(gw.base_url + "/v1/images/generations", timeout=60,
                            json={"model": f"{first}/imagen-4-fast", "prompt": "a prompt longer than ten"})
        assert forced.status_code == 400
        assert (forced.json()["error"]["param"], forced.json()["error"]["code"]) == ("prompt", "string_above_max_length")


def yaml_first_route(root: Path) -> str:
    import yaml
    return str(yaml.safe_load((root / "models.d" / "imagen-4-fast.yaml").read_text())["routes"][0]["provider"])
