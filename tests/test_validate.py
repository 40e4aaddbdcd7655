"""`mediagate validate` and start-up checks: every broken spec is refused as `file: $.path: message`."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from mediagate import catalog

PROVIDER: dict[str, Any] = {
    "id": "acme",
    "base_url": "https://api.acme.test/v1",
    "secrets": {"api_key": {"env": "ACME_API_KEY"}},
    "auth": {"headers": {"Authorization": "Bearer {{ secrets.api_key }}"}},
    "operations": {"generate": {
        "request": {"method": "POST", "path": "/images", "json": {"prompt": "{{ prompt }}", "size": "{{ shape.size }}"}},
        "outputs": {"items": "data", "item": {"b64": "b64_json"}},
    }},
    "errors": [{"status": 429, "code": "rate_limit_exceeded"}],
}
MODEL: dict[str, Any] = {
    "id": "acme-image",
    "aliases": ["acme-img"],
    "kind": "image",
    "operations": ["generate"],
    "shape": {"sizes": ["1024x1024", "512x512"], "default": {"size": "1024x1024"}},
    "params": {"quality": {"enum": ["low", "high"], "default": "low"}},
    "thinking": {"levels": ["off", "on"], "default": "off"},
    "routes": [{"provider": "acme", "upstream_model": "acme-v1"}],
}


def write(root: Path, model: dict[str, Any], provider: dict[str, Any], extra_models: list[dict[str, Any]] = ()) -> Path:
    (root / "models.d").mkdir(parents=True, exist_ok=True)
    (root / "providers.d").mkdir(parents=True, exist_ok=True)
    (root / "models.d" / "acme-image.yaml").write_text(yaml.safe_dump(model))
    (root / "providers.d" / "acme.yaml").write_text(yaml.safe_dump(provider))
    for i, m in enumerate(extra_models):
        (root / "models.d" / f"extra{i}.yaml").write_text(yaml.safe_dump(m))
    return root


def problems(tmp_path: Path, mutate_model: Callable[[dict], Any] = lambda m: None,
             mutate_provider: Callable[[dict], Any] = lambda p: None, extra: list[dict[str, Any]] = ()) -> list[str]:
    m, p = copy.deepcopy(MODEL), copy.deepcopy(PROVIDER)
    mutate_model(m)
    mutate_provider(p)
    write(tmp_path, m, p, extra)
    try:
        catalog.load([tmp_path], env={})
    except catalog.SpecErrors as exc:
        return exc.problems
    return []


def test_the_base_specs_are_valid(tmp_path: Path) -> None:
    assert problems(tmp_path) == []


CASES: list[tuple[str, Callable[[dict], Any], Callable[[dict], Any], str, str]] = [
    ("unknown model key", lambda m: m.update(colour="red"), lambda p: None, "acme-image.yaml: $: unknown key", "'colour'"),
    ("unknown nested key", lambda m: m["shape"].update(sizez=[]), lambda p: None, "acme-image.yaml: $.shape: unknown key", "'sizez'"),
    ("wrong type", lambda m: m.update(operations="generate"), lambda p: None, "acme-image.yaml: $.operations:", "not of type 'array'"),
    ("route to a missing provider", lambda m: m["routes"].append({"provider": "nobody", "upstream_model": "x"}),
     lambda p: None, "acme-image.yaml: $.routes[1].provider:", "no provider 'nobody'"),
    ("template that does not compile", lambda m: None,
     lambda p: p["operations"]["generate"]["request"]["json"].update(size="{{ shape.size | }}"),
     "acme.yaml: $.operations.generate.request.json.size:", "does not compile"),
    ("template naming an undefined value fails the dry render", lambda m: None,
     lambda p: p["operations"]["generate"]["request"]["json"].update(size="{{ shape.sise }}"),
     "acme-image.yaml: $.routes[0]:", "undefined"),
    ("jmespath that does not compile", lambda m: None,
     lambda p: p["operations"]["generate"]["outputs"].update(items="data[?"), "acme.yaml: $.operations.generate.outputs.items:",
     "does not compile"),
    ("param default outside its enum", lambda m: m["params"]["quality"].update(default="ultra"), lambda p: None,
     "acme-image.yaml: $.params.quality.default:", "'ultra' is not one of enum"),
    ("thinking default outside its levels", lambda m: m["thinking"].update(default="high"), lambda p: None,
     "acme-image.yaml: $.thinking.default:", "not one of levels"),
    ("empty shape table", lambda m: m["shape"].update(sizes=[]), lambda p: None, "acme-image.yaml: $.shape.sizes:", "should be non-empty"),
    ("default size not in the table", lambda m: m["shape"].update(default={"size": "800x800"}), lambda p: None,
     "acme-image.yaml: $.shape.default.size:", "not one of sizes"),
    ("contradictory bounds", lambda m: m.update(shape={"bounds": {"min_width": 2048, "max_width": 1024}, "default": {"size": "1024x1024"}}),
     lambda p: None, "acme-image.yaml: $.shape.bounds:", "minimum is larger than its maximum"),
    ("dimension table with the wrong ratio", lambda m: m.update(shape={"aspect_ratios": ["1:1", "16:9"], "default": {"aspect_ratio": "1:1"},
                                                                      "dimensions": {"1:1": {"1K": "1024x1024"}, "16:9": {"1K": "1024x1024"}}}),
     lambda p: None, "acme-image.yaml: $.shape.dimensions.16:9.1K:", "does not have ratio 16:9"),
    ("sizes and ratios at once", lambda m: m["shape"].update(aspect_ratios=["1:1"]), lambda p: None,
     "acme-image.yaml: $.shape:", "two vocabularies"),
    ("inline secret instead of a reference", lambda m: None, lambda p: p["secrets"].update(api_key="sk-live-123"),
     "acme.yaml: $.secrets.api_key:", "not of type 'object'"),
    ("error rule with an unknown code", lambda m: None, lambda p: p["errors"].append({"status": 500, "code": "boom"}),
     "acme.yaml: $.errors[1].code:", "'boom' is not one of"),
    ("provider lacking an operation the model needs", lambda m: m["operations"].append("edit"), lambda p: None,
     "acme-image.yaml: $.routes[0].provider:", "has no 'edit' operation"),
    ("bad id", lambda m: m.update(id="Acme Image"), lambda p: None, "acme-image.yaml: $.id:", "does not match"),
    ("async condition that does not compile", lambda m: None,
     lambda p: p["operations"]["generate"].update({"async": {"poll": {"url": "urls.get"}, "done_when": "status =="}}),
     "acme.yaml: $.operations.generate.async.done_when:", "does not compile"),
    ("async step without url or path", lambda m: None,
     lambda p: p["operations"]["generate"].update({"async": {"poll": {"method": "GET"}, "done_when": "done"}}),
     "acme.yaml: $.operations.generate.async.poll:", "'url' is a required property"),
    ("token grant naming no secret", lambda m: None,
     lambda p: p.update(token={"from_secret": "nope", "token_url": "x", "key": "k", "claims": {}}),
     "acme-image.yaml: $.routes[0].provider:", "token.from_secret names no secret 'nope'"),
    ("route body template that does not compile", lambda m: m["routes"][0].update(body={"size": "{{ shape. }}"}), lambda p: None,
     "acme-image.yaml: $.routes[0].body.size:", "does not compile"),
    ("route mapped to a missing provider operation", lambda m: m["routes"][0].update(operations={"generate": "predict"}), lambda p: None,
     "acme-image.yaml: $.routes[0].provider:", "has no 'predict' operation"),
    ("pricing condition on an unknown value", lambda m: m.update(pricing={"components": [{"metric": "image", "unit_price": 1, "when": {"colour": "red"}}]}),
     lambda p: None, "acme-image.yaml: $.pricing.components[0].when.colour:", "unknown condition"),
    ("price with an unknown metric", lambda m: m.update(pricing={"components": [{"metric": "pixel", "unit_price": 1}]}),
     lambda p: None, "acme-image.yaml: $.pricing.components[0].metric:", "is not one of"),
    ("bounds no size can satisfy", lambda m: m.update(shape={"bounds": {"min_width": 100, "max_width": 120, "multiple_of": 64}, "default": {"size": "128x128"}}),
     lambda p: None, "acme-image.yaml: $.shape.bounds:", "no size on the multiple_of grid"),
    ("base_url template that does not compile", lambda m: None, lambda p: p.update(base_url="{{ config. }}"),
     "acme.yaml: $.base_url:", "does not compile"),
]


@pytest.mark.parametrize(("mm", "mp", "where", "what"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_spec_is_reported_with_file_and_path(tmp_path: Path, mm: Callable, mp: Callable, where: str, what: str) -> None:
    found = problems(tmp_path, mm, mp)
    assert any(where in line and what in line for line in found), found


def test_duplicate_id_and_alias(tmp_path: Path) -> None:
    dup_id = copy.deepcopy(MODEL) | {"aliases": []}
    dup_alias = copy.deepcopy(MODEL) | {"id": "other", "aliases": ["acme-img"]}
    found = problems(tmp_path, extra=[dup_id, dup_alias])
    assert any("extra0.yaml: $.id: 'acme-image' is used by both " in p and "acme-image.yaml and " in p for p in found), found
    assert any("extra1.yaml: $.aliases: 'acme-img' is used by both " in p and "acme-image.yaml ($.aliases) and " in p
               for p in found), found


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    write(tmp_path, MODEL, PROVIDER)
    f = tmp_path / "models.d" / "acme-image.yaml"
    f.write_text(f.read_text() + "kind: video\n")
    with pytest.raises(catalog.SpecErrors) as exc:
        catalog.load([tmp_path], env={})
    assert any("acme-image.yaml: $: not valid YAML: duplicate key 'kind'" in p for p in exc.value.problems)


def test_extends_cycle_and_missing_base(tmp_path: Path) -> None:
    found = problems(tmp_path, mutate_provider=lambda p: p.update(extends="ghost"))
    assert any("acme.yaml: $.extends: no provider 'ghost'" in p for p in found), found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, lambda m: (m.update(colour="red"), m["params"]["quality"].update(default="x")),
                     lambda p: p["errors"].append({"status": 500, "code": "boom"}))
    assert len(found) >= 2


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "mediagate.cli", "validate"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: ")
    bad = copy.deepcopy(MODEL)
    bad["routes"][0]["provider"] = "nobody"
    write(tmp_path, bad, PROVIDER)
    res = subprocess.run([sys.executable, "-m", "mediagate.cli", "validate", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 1
    assert f"{tmp_path}/models.d/acme-image.yaml: $.routes[0].provider: no provider 'nobody' in providers.d" in res.stderr
