"""The OpenAPI document: complete (every mounted route, walked from the app), valid OpenAPI 3.1
(openapi-spec-validator), built from the schemas that validate, and 405s that say what is allowed."""

from __future__ import annotations

import copy
import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from starlette.routing import Mount, Route

from mediagate import catalog as catalog_mod
from mediagate import openapi, openapi_paths, shape
from mediagate.app import create_app
from mediagate.config import Settings
from mediagate.errors import GatewayError
from tests.servers import GatewayThread, image_bytes

CATALOG = catalog_mod.load(None)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _app(tmp: Path) -> Any:
    return create_app(Settings(media_dir=tmp / "media", state_dir=tmp / "state"), CATALOG)


def test_every_mounted_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    undocumented, unmounted = openapi.coverage(_app(tmp_path).routes)
    assert not undocumented, ("routes served but missing from mediagate/openapi_paths.PATHS (add a row, or list an HTML "
                              "page in UNDOCUMENTED):\n  " + "\n  ".join(undocumented))
    assert not unmounted, "operations documented but not served:\n  " + "\n  ".join(unmounted)


def test_the_coverage_check_catches_a_new_route(tmp_path: Path) -> None:
    async def handler(request: Any) -> Any:
        raise AssertionError
    routes = [*_app(tmp_path).routes, Route("/v1/undocumented", handler, methods=["GET"]),
              Route("/openai/v1/videos/{video_id}", handler, methods=["PATCH"]), Route("/console", handler, methods=["GET"]),
              Mount("/console/static", routes=[Route("/app.js", handler)]),
              Mount("/v1/other", routes=[Route("/{thing_id}/parts", handler, methods=["DELETE"])])]
    undocumented, _ = openapi.coverage(routes)
    # /console and its static files: excluded by name; a mount's API routes are checked like any other
    assert undocumented == ["DELETE /v1/other/{thing_id}/parts", "GET /v1/undocumented", "PATCH /v1/videos/{video_id}"]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_the_served_document_is_valid_openapi_3_1(gateway: GatewayThread) -> None:
    status, headers, raw = _get(gateway.base_url + "/openapi.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(raw)
    validate(doc)   # raises with the JSON path of the first problem
    assert doc["openapi"] == "3.1.0"
    ops = {(p, m) for p, item in doc["paths"].items() for m in item}
    assert ("/v1/images/edits", "post") in ops and ("/admin/keys/{key_id}/rotate", "post") in ops
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status_code, response in op["responses"].items():
                assert response.get("content"), f"{method} {path} {status_code} has no response schema"
            if path.startswith("/admin/"):
                assert op["security"] == openapi_paths.ADMIN_AUTH


def test_an_invalid_document_is_refused_by_the_validator() -> None:
    """The validator is not a rubber stamp: a broken reference and a path parameter left undeclared fail."""
    doc = openapi.document(CATALOG)
    broken = copy.deepcopy(doc)
    broken["paths"]["/v1/models/{model_id}"]["get"]["parameters"] = []
    with pytest.raises(OpenAPIValidationError):
        validate(broken)
    broken = copy.deepcopy(doc)
    broken["paths"]["/v1/videos"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {"type": 7}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


@pytest.mark.parametrize("component,operation", [(c, op) for c, (op, _) in openapi.BODIES.items()])
def test_request_bodies_are_the_compiled_validating_schemas(component: str, operation: str) -> None:
    """Each model's branch is its `?schema=true` schema: same properties (model narrowed to its names), same
    required fields, so what the document admits is what the gateway validates."""
    doc = openapi.document(CATALOG)
    schemas = doc["components"]["schemas"]
    served = [m for m in CATALOG.models.values() if operation in m.validators]
    assert served and len(schemas[component]["oneOf"]) == len(served)
    for model in served:
        branch = schemas[f"{component}.{model.id}"]
        compiled = model.validators[operation].schema
        for name, prop in compiled["properties"].items():
            if name in ("model", "input_reference") or (operation == "edit" and name in ("image", "mask")):
                continue
            expected = prop if name in compiled["required"] or component.endswith("Form") else openapi.nullable(prop)
            assert branch["properties"][name] == expected, (model.id, name)
        assert set(compiled["required"]) <= set(branch["required"])
        assert model.id in branch["properties"]["model"]["enum"]
        mapping = schemas[component]["discriminator"]["mapping"]
        for name in openapi.names(CATALOG, model):
            assert mapping[name] == f"#/components/schemas/{component}.{model.id}"
            assert CATALOG.resolve(name)[0] is model


def _example_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_405_names_the_allowed_methods(gateway: GatewayThread, tmp_path: Path) -> None:
    by_path: dict[str, set[str]] = {}
    for route in _app(tmp_path).routes:
        by_path.setdefault(_example_path(route.path.replace(":path", "")), set()).update(route.methods or ())
    checked = 0
    for path, allowed in sorted(by_path.items()):
        for method in METHODS:
            if method in allowed:
                continue
            req = urllib.request.Request(gateway.base_url + path, method=method, data=b"{}" if method != "GET" else None,
                                         headers={"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=30)
                raise AssertionError(f"{method} {path} was served")
            except urllib.error.HTTPError as e:
                assert e.code == 405, (method, path, e.code)
                assert set(e.headers["Allow"].split(", ")) == allowed, (method, path, e.headers["Allow"])
                body = json.loads(e.read())
                assert body["error"]["code"] == "method_not_allowed" and body["error"]["type"] == "invalid_request_error"
                assert e.headers["X-Request-Id"]
                checked += 1
    assert checked > 40


def _patterns(prop: str) -> set[str]:
    return {m.validators[op].schema["properties"][prop]["pattern"]
            for m in CATALOG.models.values() for op in m.validators if prop in m.validators[op].schema["properties"]}


@pytest.mark.parametrize("value", ["0:0", "0:1", "1:0", "0.0:2", "16:9:1", ":9", "16:"])
def test_the_aspect_ratio_pattern_refuses_what_the_gateway_refuses(value: str) -> None:
    (pattern,) = _patterns("aspect_ratio")
    assert re.search(pattern.replace("$", r"\Z"), value) is None
    with pytest.raises(GatewayError):
        shape._parse_request_ratio(value)


SHAPES = sorted({(m.id, op) for m in CATALOG.models.values() for op in m.validators if op != "chat"})


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(data=st.data())
def test_what_the_shape_patterns_admit_every_model_takes(data: st.DataObject) -> None:
    """Any size, aspect_ratio and resolution (alone or together) the served patterns admit is resolved by every
    model that takes it: a shape or an adjustment, never a 400 the document did not announce."""
    model_id, op = data.draw(st.sampled_from(SHAPES))
    model = CATALOG.models[model_id]
    props = model.validators[op].schema["properties"]
    fields = {name: data.draw(st.none() | st.from_regex(props[name]["pattern"], fullmatch=True), label=name)
              for name in ("size", "aspect_ratio", "resolution") if name in props}
    spec = shape.ShapeSpec.from_spec(model.spec.get("shape", {"bounds": {}, "default": {"size": "1024x1024"}}))
    resolved, _ = shape.resolve(spec, fields.get("size"), fields.get("aspect_ratio"), fields.get("resolution"))
    assert resolved.size is None or re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", resolved.size), resolved


@pytest.mark.parametrize("field,good,bad", [("size", "65536x1", "65537x1"), ("resolution", "64K", "64.1K"),
                                            ("resolution", "65536", "65537"), ("resolution", "0.01", "0"),
                                            ("aspect_ratio", "999.9:1", "1000:1")])
def test_shape_limits_at_the_limit_and_one_past(field: str, good: str, bad: str) -> None:
    (pattern,) = _patterns(field)
    parse = {"size": shape._parse_request_size, "resolution": shape._parse_request_tier,
             "aspect_ratio": shape._parse_request_ratio}[field]
    ecma = pattern.replace("$", r"\Z")
    assert re.search(ecma, good) and re.search(ecma, bad) is None and re.search(ecma, good + "\n") is None
    parse(good)


def test_the_field_name_pattern_is_the_gateways_rule() -> None:
    """The document's propertyNames pattern refuses exactly the characters mediagate.textcheck refuses in names."""
    from mediagate import textcheck
    pattern = re.compile(openapi.FIELD_NAME_PATTERN.replace("$", r"\Z"))   # ECMA's `$`: the very end
    for code in (*range(0, 0x300), 0x2028, 0xFEFF, 0x10FFFF):
        name = f"a{chr(code)}"
        refused = False
        try:
            textcheck.check({name: 1})
        except GatewayError:
            refused = True
        assert refused == (pattern.search(name) is None), hex(code)


def test_a_trailing_newline_is_refused_as_every_json_schema_tool_would() -> None:
    """Python's `$` also matches before a final newline; the gateway's validator uses ECMA's (the text's end)."""
    model = CATALOG.models["gpt-image-1"]
    validator = model.validators["generate"]
    validator.validate({"model": "gpt-image-1", "prompt": "x", "size": "1024x1024"})
    with pytest.raises(GatewayError) as refused:
        validator.validate({"model": "gpt-image-1", "prompt": "x", "size": "1024x1024\n"})
    assert refused.value.param == "size"


def test_what_schemathesis_found_the_document_admits_and_the_gateway_takes(gateway: GatewayThread) -> None:
    """Found by schemathesis's positive cases: a multipart `stream=false` (a form field is text) was refused as
    unsupported, and chat refused `"stream": null`, which the document (and OpenAI) take as "not given"."""
    import httpx
    png = image_bytes("png", 64, 64)
    r = httpx.post(gateway.base_url + "/v1/images/edits?dryRun=true", data={"model": "dall-e-2", "prompt": "x", "stream": "false"},
                   files={"image": ("a.png", png, "image/png")}, timeout=60)
    assert r.status_code == 200, r.text
    r = httpx.post(gateway.base_url + "/v1/images/edits?dryRun=true", data={"model": "dall-e-2", "prompt": "x", "stream": "true"},
                   files={"image": ("a.png", png, "image/png")}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"
    chat = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}], "stream": None, "max_tokens": None}
    assert httpx.post(gateway.base_url + "/v1/chat/completions?dryRun=true", json=chat, timeout=60).status_code == 200
    r = httpx.post(gateway.base_url + "/v1/chat/completions?dryRun=ture", json=chat, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "dryRun"


@pytest.mark.parametrize("body,passes", [({"extra": {"a\x01": 1}}, False), ({"extra": ["x\x00"]}, False),
                                         ({"extra": {"nested": [{"k": "v"}], "n": None}}, True)])
def test_passthrough_fields_are_documented_as_textcheck_takes_them(body: dict[str, Any], passes: bool) -> None:
    """Unknown fields go to the provider as they are, at any depth, unless textcheck refuses them (400): the
    document's PassthroughValue says the same."""
    import jsonschema
    from mediagate import textcheck
    doc = openapi.document(CATALOG)
    schema = {**doc["components"]["schemas"]["PassthroughValue"], "components": doc["components"]}
    valid = jsonschema.Draft202012Validator(schema).is_valid(body["extra"])
    try:
        textcheck.check(body)
        taken = True
    except GatewayError:
        taken = False
    assert valid == taken == passes
