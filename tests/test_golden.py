"""Golden cases for every model file: client request -> expected upstream request -> upstream reply -> client response.

Cases live in tests/golden/<model>.yaml. The gateway runs for real (uvicorn on loopback) with every provider
pointed at a scripted upstream that records what it received and answers what the case says.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image

from tests.servers import GatewayThread, Scripted, subset

GOLDEN = Path(__file__).parent / "golden"
MODELS = Path(__file__).resolve().parent.parent / "models.d"


def _cases() -> list[Any]:
    out = []
    for f in sorted(GOLDEN.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        for case in doc["cases"]:
            out.append(pytest.param(doc["model"], case, id=f"{f.stem}: {case['name']}"))
    return out


def test_every_model_file_has_golden_cases() -> None:
    models = {p.stem for p in MODELS.glob("*.yaml") if yaml.safe_load(p.read_text())["kind"] == "image"}
    golden = {yaml.safe_load(p.read_text())["model"] for p in GOLDEN.glob("*.yaml")}
    assert models <= golden, f"models without golden cases: {sorted(models - golden)}"


def _match_upstream(expected: list[dict[str, Any]], recorded: list[dict[str, Any]]) -> list[str]:
    if len(recorded) != len(expected):
        return [f"expected {len(expected)} upstream requests, got {len(recorded)}: {[r['path'] for r in recorded]}"]
    problems: list[str] = []
    free = list(range(len(expected)))
    for i, rec in enumerate(recorded):
        found = None
        for j in free:
            if not subset(expected[j].get("expect", {}), rec):
                found = j
                break
        if found is None:
            best = min(free, key=lambda j: len(subset(expected[j].get("expect", {}), rec)))
            problems += [f"upstream request {i}: {m}" for m in subset(expected[best].get("expect", {}), rec)]
        else:
            free.remove(found)
    return problems


def _image_of(item: dict[str, Any], client: httpx.Client) -> Image.Image:
    if "b64_json" in item:
        data = base64.b64decode(item["b64_json"])
    else:
        resp = client.get(item["url"])
        assert resp.status_code == 200, resp.text
        data = resp.content
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize(("model", "case"), _cases())
def test_golden(model: str, case: dict[str, Any], scripted: Scripted, scripted_gateway: GatewayThread) -> None:
    for step in case.get("upstream", []):
        scripted.replies.append(step["reply"])
    body = scripted.materialize({"model": model, **case["request"]})
    if body.get("prompt") == "$long":
        body["prompt"] = "x" * 100_000
    with httpx.Client(timeout=30) as client:
        endpoint = "/v1/images/" + case.get("endpoint", "generations")
        resp = client.post(scripted_gateway.base_url + endpoint, json=body, headers=case.get("headers", {}))
        want = case["response"]
        assert resp.status_code == want.get("status", 200), resp.text
        got = resp.json()
        problems = _match_upstream(case.get("upstream", []), scripted.requests)
        problems += [f"response {m}" for m in subset(want.get("json", {}), got)]
        problems += [f"response header {m}" for m in subset(want.get("headers", {}), {k.lower(): v for k, v in resp.headers.items()})]
        assert not problems, "\n".join(problems)
        images = want.get("images")
        if images:
            assert len(got["data"]) == images["count"]
            for item in got["data"]:
                im = _image_of(item, client)
                assert (im.format or "").lower() == images["format"]
                assert f"{im.width}x{im.height}" == got["size"] == images["size"]
