"""Operator tools: `explain` with placeholder inputs, spec problems reported by file and path (never a
traceback), loader messages that name the right files, every field checked in its own language, and a
cached reload that gives exactly the catalog a full load gives."""

from __future__ import annotations

import base64
import copy
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from PIL import Image

from mediagate import catalog, cli

PROVIDER: dict[str, Any] = {
    "id": "acme",
    "base_url": "https://api.acme.test/v1",
    "secrets": {"api_key": {"env": "ACME_API_KEY"}},
    "auth": {"headers": {"Authorization": "Bearer {{ secrets.api_key }}"}},
    "operations": {
        "generate": {
            "request": {"method": "POST", "path": "/images", "json": {"prompt": "{{ prompt }}", "size": "{{ shape.size }}"}},
            "outputs": {"items": "data", "item": {"b64": "b64_json"}},
            "blocked_when": [{"when": "error.blocked", "message": "Blocked ({{ match }})."}],
        },
        "edit": {
            "request": {"method": "POST", "path": "/edits", "json": {
                "prompt": "{{ prompt }}", "image": "{{ images[0].data_url }}",
                # only a non-default request reaches this branch, so the load-time dry render passes
                "third": "{{ images[2].b64 if params.get('quality') == 'high' else none }}"}},
            "outputs": {"items": "data", "item": {"b64": "b64_json"}},
        },
    },
    "errors": [{"status": 429, "code": "rate_limit_exceeded", "message": "error.message"}],
}
MODEL: dict[str, Any] = {
    "id": "acme-image", "aliases": ["acme-img"], "kind": "image", "operations": ["generate", "edit"],
    "shape": {"sizes": ["1024x1024", "512x512"], "default": {"size": "1024x1024"}},
    "params": {"quality": {"enum": ["low", "high"], "default": "low"}},
    "limits": {"input_images": 3},
    "routes": [{"provider": "acme", "upstream_model": "acme-v1"}],
}


def write(root: Path, models: dict[str, dict[str, Any]], providers: dict[str, dict[str, Any]]) -> Path:
    (root / "models.d").mkdir(parents=True, exist_ok=True)
    (root / "providers.d").mkdir(parents=True, exist_ok=True)
    for name, m in models.items():
        (root / "models.d" / f"{name}.yaml").write_text(yaml.safe_dump(m))
    for name, p in providers.items():
        (root / "providers.d" / f"{name}.yaml").write_text(yaml.safe_dump(p))
    return root


def problems(root: Path) -> list[str]:
    try:
        catalog.load([root], env={})
    except catalog.SpecErrors as exc:
        return exc.problems
    return []


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os
    return subprocess.run([sys.executable, "-m", "mediagate.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


# ------------------------------------------------------------------ explain with placeholder inputs

def test_explain_edit_sends_the_image_part_and_mask_cli() -> None:
    res = run_cli("explain", "gpt-image-1", '{"prompt": "a fox"}', "--operation", "edit", "--image", "64x48", "--mask")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    body = out["routes"][0]["request"]["multipart"]
    assert body["image"].endswith("bytes image/png>") and body["mask"].endswith("bytes image/png>"), body
    assert out["inputs"] == {"images": ["64x48"], "mask": True}
    two = json.loads(run_cli("explain", "gpt-image-1", '{"prompt": "a fox"}', "--operation", "edit",
                             "--image", "64x64", "--image", "32x32").stdout)
    parts = two["routes"][0]["request"]["multipart"]
    assert "image" not in parts and len(parts["image[]"]) == 2, parts


def test_explain_placeholders_are_real_pngs_of_the_asked_size() -> None:
    cat = catalog.load()
    out = cli.explain(cat, "gemini-3-pro-image", {"prompt": "p"}, "edit", ["40x30"])
    gemini = next(r for r in out["routes"] if r["provider"] == "gemini")
    data = gemini["request"]["json"]["contents"][0]["parts"][1]["inlineData"]["data"]
    img = Image.open(io.BytesIO(base64.b64decode(data)))
    assert (img.format, img.size) == ("PNG", (40, 30))


def test_explain_edit_follows_the_input_shape() -> None:
    out = cli.explain(catalog.load(), "gpt-image-1", {"prompt": "p"}, "edit", ["1536x1024"])
    assert out["shape"]["size"] == "1536x1024", out["shape"]


def test_explain_renders_every_shipped_edit_route() -> None:
    cat = catalog.load()
    edit_models = [m for m in cat.models.values() if "edit" in m.validators]
    assert len(edit_models) >= 5
    for model in edit_models:
        for images, mask in ((None, False), (["1376x768"], True), (["512x512"] * model.input_image_limit, False)):
            out = cli.explain(cat, model.id, {"prompt": "p"}, "edit", images, mask)
            assert sorted(r["provider"] for r in out["routes"]) == sorted(r.provider.id for r in model.routes), model.id
            for r in out["routes"]:
                assert r["request"].get("json") or r["request"].get("multipart"), (model.id, r)


@pytest.mark.parametrize(("args", "message"), [
    (["--operation", "edit", "--image", "12x"], "expected WxH"),
    (["--operation", "generate", "--image", "64x64"], "applies to edit and video"),
    (["--operation", "edit"] + ["--image", "8x8"] * 17, "at most 16 input image(s)"),
])
def test_explain_bad_input_arguments_are_one_line_errors(args: list[str], message: str) -> None:
    res = run_cli("explain", "gpt-image-1", '{"prompt": "p"}', *args)
    assert res.returncode == 1
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_explain_template_failure_is_file_and_path_not_a_traceback(tmp_path: Path) -> None:
    root = write(tmp_path, {"acme-image": MODEL}, {"acme": PROVIDER})
    env = {"MEDIAGATE_SHIPPED_SPECS": "off"}
    ok = run_cli("explain", "acme-image", '{"prompt": "p"}', "--operation", "edit", "--specs", str(root), env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["routes"][0]["request"]["json"]["image"].startswith("data:image/png;base64,")
    res = run_cli("explain", "acme-image", '{"prompt": "p", "quality": "high"}', "--operation", "edit",
                  "--specs", str(root), env=env)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith(f"{root}/providers.d/acme.yaml: $.operations.edit.request.json.third: "), res.stderr


def test_no_command_prints_a_traceback_for_a_broken_spec(tmp_path: Path) -> None:
    broken = copy.deepcopy(PROVIDER)
    broken["operations"]["generate"]["outputs"]["items"] = "{{ data }}"
    root = write(tmp_path, {"acme-image": MODEL}, {"acme": broken})
    for args in (["validate", str(root)], ["models", "--specs", str(root)], ["schema", "acme-image", "--specs", str(root)],
                 ["explain", "acme-image", "{}", "--specs", str(root)]):
        res = run_cli(*args, env={"MEDIAGATE_SHIPPED_SPECS": "off"})
        assert res.returncode == 1, args
        assert "Traceback" not in res.stderr, (args, res.stderr)
        assert f"{root}/providers.d/acme.yaml: $.operations.generate.outputs.items: " in res.stderr, (args, res.stderr)


# ------------------------------------------------------------------ loader messages

def test_a_clash_names_both_files(tmp_path: Path) -> None:
    older = copy.deepcopy(MODEL) | {"id": "zeta", "aliases": ["shared"]}
    newer = copy.deepcopy(MODEL) | {"id": "shared", "aliases": []}   # sorts first, so it is compiled first
    found = problems(write(tmp_path, {"zeta": older, "alpha": newer}, {"acme": PROVIDER}))
    clash = [p for p in found if "'shared' is used by both" in p]
    assert len(clash) == 1, found
    assert "alpha.yaml ($.id)" in clash[0] and "zeta.yaml ($.aliases)" in clash[0], clash


def test_a_duplicate_provider_id_names_both_files(tmp_path: Path) -> None:
    found = problems(write(tmp_path, {"acme-image": MODEL}, {"acme": PROVIDER, "acme-copy": PROVIDER}))
    assert any("provider id 'acme' is used by both" in p and "acme.yaml" in p and "acme-copy.yaml" in p for p in found), found


def test_models_held_back_by_a_broken_provider_are_named_in_one_line(tmp_path: Path) -> None:
    broken = copy.deepcopy(PROVIDER)
    broken["operations"]["generate"]["request"]["json"]["size"] = "{{ shape.size | }}"
    models = {f"m{i}": copy.deepcopy(MODEL) | {"id": f"m{i}", "aliases": []} for i in (3, 1, 2)}
    found = problems(write(tmp_path, models, {"acme": broken}))
    assert len(found) == 2, found
    assert "$.operations.generate.request.json.size: template does not compile" in found[0]
    assert found[1] == f"{tmp_path}/providers.d/acme.yaml: $: 3 models not loaded because this provider has errors: m1, m2, m3"


def test_json_and_multipart_together_are_refused(tmp_path: Path) -> None:
    both = copy.deepcopy(PROVIDER)
    both["operations"]["edit"]["request"]["multipart"] = {"image": "{{ images[0] }}"}
    found = problems(write(tmp_path, {"acme-image": MODEL}, {"acme": both}))
    assert any("acme.yaml: $.operations.edit.request: both json and multipart" in p for p in found), found


def _op(p: dict[str, Any]) -> dict[str, Any]:
    return p["operations"]["generate"]


LANGUAGE: list[tuple[str, Callable[[dict], Any], str, str]] = [
    ("undefined name in a blocked_when message", lambda p: _op(p)["blocked_when"][0].update(message="Blocked: {{ reply.reason }}"),
     "$.operations.generate.blocked_when[0].message", "undefined name 'reply': this template can use body, match"),
    ("JMESPath where a message template is expected", lambda p: _op(p)["blocked_when"][0].update(message="body.candidates[0].finishReason"),
     "$.operations.generate.blocked_when[0].message", "takes a Jinja2 template, not JMESPath"),
    ("a template where JMESPath is expected", lambda p: _op(p)["outputs"].update(items="{{ data }}"),
     "$.operations.generate.outputs.items", "takes JMESPath, not a Jinja2 template: write 'data'"),
    ("a template in a blocked condition", lambda p: _op(p)["blocked_when"][0].update(when="{{ error.blocked }}"),
     "$.operations.generate.blocked_when[0].when", "takes JMESPath, not a Jinja2 template"),
    ("a sentence where JMESPath is expected", lambda p: p["errors"][0].update(message="The provider is busy"),
     "$.errors[0].message", "not plain text: a fixed text is a raw string literal, 'The provider is busy'"),
    ("a template in plain text", lambda p: _op(p).update(on_empty={"code": "upstream_error", "message": "none for {{ prompt }}"}),
     "$.operations.generate.on_empty.message", "plain text, not a Jinja2 template"),
    ("an undefined name on a branch the dry render never takes",
     lambda p: _op(p)["request"]["json"].update(style="{{ stlye if n > 4 else none }}"),
     "$.operations.generate.request.json.style", "undefined name 'stlye'"),
    ("JMESPath where a request template is expected", lambda p: _op(p)["request"]["json"].update(size="shape.size"),
     "$.operations.generate.request.json.size", "write '{{ shape.size }}'"),
    ("a JMESPath job URL written as a template",
     lambda p: _op(p).update({"async": {"poll": {"url": "{{ urls.get }}"}, "done_when": "status == 'done'"}}),
     "$.operations.generate.async.poll.url", "takes JMESPath"),
    ("an undefined name in a poll path", lambda p: _op(p).update({"async": {"poll": {"path": "/jobs/{{ jobb.id }}"}, "done_when": "done"}}),
     "$.operations.generate.async.poll.path", "undefined name 'jobb'"),
]


@pytest.mark.parametrize(("mutate", "where", "what"), [c[1:] for c in LANGUAGE], ids=[c[0] for c in LANGUAGE])
def test_each_field_is_checked_in_its_language(tmp_path: Path, mutate: Callable[[dict], Any], where: str, what: str) -> None:
    p = copy.deepcopy(PROVIDER)
    mutate(p)
    found = problems(write(tmp_path, {"acme-image": MODEL}, {"acme": p}))
    assert any(f"acme.yaml: {where}: " in line and what in line for line in found), found


def test_a_route_body_is_checked_against_the_request_context(tmp_path: Path) -> None:
    m = copy.deepcopy(MODEL)
    m["routes"][0]["body"] = {"seed": "{{ param.seed }}"}
    found = problems(write(tmp_path, {"acme-image": m}, {"acme": PROVIDER}))
    assert any("acme-image.yaml: $.routes[0].body.seed: undefined name 'param'" in line for line in found), found


def test_the_shipped_specs_pass_every_language_check() -> None:
    catalog.load()


# ------------------------------------------------------------------ reload: libyaml and the cache

def test_yaml_is_parsed_by_libyaml_and_still_refuses_duplicate_keys(tmp_path: Path) -> None:
    if yaml.__with_libyaml__:
        assert issubclass(catalog._UniqueKeyLoader, yaml.CSafeLoader)
    root = write(tmp_path, {"acme-image": MODEL}, {"acme": PROVIDER})
    f = root / "models.d" / "acme-image.yaml"
    f.write_text(f.read_text() + "kind: video\n")
    assert any("not valid YAML: duplicate key 'kind'" in p for p in problems(root))


def _snapshot(cat: catalog.Catalog) -> dict[str, Any]:
    """Everything observable about a catalog, rendered requests included."""
    out: dict[str, Any] = {"files": sorted(cat.files), "names": {n: m.id for n, m in cat.names.items()},
                           "providers": {pid: (p.file, p.base_url, p.spec) for pid, p in cat.providers.items()}}
    for m in cat.models.values():
        routes = [(r.provider.id, r.upstream_model, r.priority, r.weight, r.values, r.native_n, r.pricing, r.op_names,
                   r.op_models) for r in m.routes]
        rendered = {}
        for op in m.validators:
            if op in ("generate", "edit"):
                explained = cli.explain(cat, m.id, {"prompt": "p"}, op)
                rendered[op] = sorted(json.dumps(r, sort_keys=True) for r in explained["routes"])
        out[m.id] = (m.file, m.spec, m.aliases, routes, m.schemas(), rendered)
    return out


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_a_cached_reload_gives_the_catalog_a_full_load_gives(tmp_path: Path) -> None:
    shutil.copytree(catalog.SHIPPED_MODELS, tmp_path / "models.d")
    shutil.copytree(catalog.SHIPPED_PROVIDERS, tmp_path / "providers.d")
    roots = [tmp_path]
    cache = catalog.LoadCache()
    first = catalog.load(roots, cache=cache)
    assert _snapshot(first) == _snapshot(catalog.load(roots))

    # a model edit recompiles only that model
    _edit(tmp_path / "models.d" / "dall-e-3.yaml", "name: DALL-E 3", "name: DALL-E 3 (edited)")
    second = catalog.load(roots, cache=cache)
    assert _snapshot(second) == _snapshot(catalog.load(roots))
    assert second.models["dall-e-3"].spec["name"] == "DALL-E 3 (edited)"
    assert second.models["dall-e-3"] is not first.models["dall-e-3"]
    assert second.models["gpt-image-1"] is first.models["gpt-image-1"]
    assert second.providers["openai"] is first.providers["openai"]

    # a provider edit recompiles it, the providers extending it and every model routing to those
    _edit(tmp_path / "providers.d" / "openai.yaml", "path: /images/generations", "path: /images/generations2")
    third = catalog.load(roots, cache=cache)
    assert _snapshot(third) == _snapshot(catalog.load(roots))
    assert "/images/generations2" in cli.explain(third, "openai/gpt-image-1", {"prompt": "p"})["routes"][0]["request"]["url"]
    assert third.providers["openai"] is not second.providers["openai"]
    assert third.providers["local-openai"] is not second.providers["local-openai"]   # extends openai
    assert third.models["gpt-image-1"] is not second.models["gpt-image-1"]
    assert third.models["imagen-4"] is second.models["imagen-4"]                       # routes elsewhere
    assert third.providers["gemini"] is second.providers["gemini"]

    # a broken edit is refused the same way, and fixing it serves the fixed catalog
    _edit(tmp_path / "models.d" / "sora-2.yaml", "kind:", "colour: red\nkind:")
    with pytest.raises(catalog.SpecErrors) as cached_err:
        catalog.load(roots, cache=cache)
    with pytest.raises(catalog.SpecErrors) as full_err:
        catalog.load(roots)
    assert cached_err.value.problems == full_err.value.problems
    _edit(tmp_path / "models.d" / "sora-2.yaml", "colour: red\n", "")
    assert _snapshot(catalog.load(roots, cache=cache)) == _snapshot(catalog.load(roots))

    # a deleted file is gone from both
    (tmp_path / "models.d" / "dall-e-2.yaml").unlink()
    fourth = catalog.load(roots, cache=cache)
    assert "dall-e-2" not in fourth.models
    assert _snapshot(fourth) == _snapshot(catalog.load(roots))
    assert not any("dall-e-2" in k for k in cache.files)


def test_cached_reload_keeps_root_overrides(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    over = copy.deepcopy(MODEL) | {"id": "gpt-image-1", "aliases": []}
    root = write(tmp_path, {"gpt-image-1": over}, {"acme": PROVIDER})
    roots = [catalog.shipped_root(), root]
    cache = catalog.LoadCache()
    with caplog.at_level("WARNING", logger="mediagate"):
        cat = catalog.load(roots, env={}, cache=cache)
        again = catalog.load(roots, env={}, cache=cache)
    assert cat.models["gpt-image-1"].routes[0].provider.id == "acme"
    assert again.models["gpt-image-1"] is cat.models["gpt-image-1"]
    assert sum("spec override: model 'gpt-image-1'" in r.message for r in caplog.records) == 2
