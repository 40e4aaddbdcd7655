"""The typed template language and the path language in isolation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mediagate.paths import PathError, compile_path, search
from mediagate.provider import compile_provider
from mediagate.templates import TemplateError, compile_value
from mediagate.upstream import Target, render

ENGINE = Path(__file__).resolve().parent.parent / "engine"


def test_single_expression_keeps_its_native_type() -> None:
    r = compile_value({"n": "{{ n }}", "cfg": "{{ {'a': n * 2} }}", "text": "x={{ n }}", "lit": 5})
    assert r({"n": 3}) == {"n": 3, "cfg": {"a": 6}, "text": "x=3", "lit": 5}


def test_a_nested_dict_literal_is_still_one_typed_expression() -> None:
    """Jinja reads `{{ {'a': {'b': x}} }}` as one expression; it must not come out as the dict's text."""
    render = compile_value("{{ {'frame0': {'type': 'image', 'url': u}} if u else none }}")
    assert render({"u": "data:x"}) == {"frame0": {"type": "image", "url": "data:x"}}
    assert render({"u": None}) is None
    assert compile_value("{{ a }}*{{ b }}")({"a": 2, "b": 3}) == "2*3"        # two expressions: text
    assert compile_value("x{{ {'a': 1} }}")({}) == "x{'a': 1}"                  # text around: text


def test_none_drops_keys_and_list_items() -> None:
    r = compile_value({"a": "{{ none }}", "b": ["{{ none }}", "{{ 1 }}"], "c": {"d": "{{ x }}"}})
    assert r({"x": None}) == {"b": [1], "c": {}}


def test_undefined_is_an_error_naming_the_place() -> None:
    r = compile_value({"a": {"b": "{{ shape.widht }}"}})
    with pytest.raises(TemplateError) as exc:
        r({"shape": {"width": 1}})
    assert exc.value.path == "$.a.b"


def test_syntax_error_at_compile_time() -> None:
    with pytest.raises(TemplateError) as exc:
        compile_value({"a": "{{ 1 + }}"}, "$.json")
    assert exc.value.path == "$.json.a"


def test_templates_are_sandboxed() -> None:
    r = compile_value("{{ ''.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        r({})


# every expression shape the plain evaluator takes, and some it leaves to Jinja
SAME_AS_JINJA = ["output.format if values.get('output_format_param') else none",
                 "'Bearer ' ~ secrets.api_key if secrets.api_key else ''", "params.get('watermark') or false",
                 "config.region or config.aws_region", "none if shape.custom else shape.resolution ~ ' MP'",
                 "'custom' if shape.custom else shape.aspect_ratio", "not shape.custom and n", "n ~ 's'",
                 "shape.width if shape.custom else none", "missing if shape.custom else n", "params.get('a') ~ 1",
                 "images[0] if images | length == 1 else none", "n.get('x') if n else 0", "true and 0 or 'x'"]
CONTEXTS = [{"output": {"format": "png"}, "values": {"output_format_param": True}, "secrets": {"api_key": "k"},
             "params": {"watermark": 0, "a": None}, "config": {"region": "", "aws_region": "r"}, "images": ["i"],
             "shape": {"custom": False, "resolution": 2, "aspect_ratio": "1:1", "width": 5}, "n": 3},
            {"output": {"format": "png"}, "values": {}, "secrets": {"api_key": None}, "params": {}, "config": {},
             "images": [], "shape": {"custom": True, "width": 7}, "n": 0}]


@pytest.mark.parametrize("expr", SAME_AS_JINJA)
def test_plain_evaluator_gives_what_jinja_gives(expr: str) -> None:
    """The evaluator that skips the sandbox's per-call checks (templates._ast_path) must not change a result or
    an error: each expression against each context, both ways."""
    from mediagate import templates
    plain = templates.compile_value("{{ " + expr + " }}")
    jinja = templates._expression(templates._compiled_expression(expr), "$")
    for ctx in CONTEXTS:
        try:
            want: object = jinja(ctx)
        except TemplateError:
            want = TemplateError
        try:
            got: object = plain(ctx)
        except TemplateError:
            got = TemplateError
        assert (got, type(got)) == (want, type(want)), (expr, ctx)


def test_jmespath_compiles_once_and_tolerates_odd_replies() -> None:
    p = compile_path("candidates[0].content.parts[?inlineData && !thought].inlineData.data")
    assert search(p, {"candidates": [{"content": {"parts": [{"thought": True, "inlineData": {"data": "t"}},
                                                             {"inlineData": {"data": "d"}}]}}]}) == ["d"]
    assert search(compile_path("length(a)"), {"a": 5}) is None
    with pytest.raises(PathError):
        compile_path("a[?")


def test_optional_secret_absent_sends_no_auth_header() -> None:
    spec = {"id": "local", "base_url": "http://127.0.0.1:9/v1",
            "secrets": {"api_key": {"env": "LOCAL_KEY", "optional": True}}, "configured_when": [[]],
            "auth": {"headers": {"Authorization": "{{ 'Bearer ' ~ secrets.api_key if secrets.api_key else '' }}"}},
            "operations": {"generate": {"request": {"method": "POST", "path": "/images/generations", "json": {"p": "{{ prompt }}"}},
                                        "outputs": {"items": "data", "item": {"b64": "b64_json"}}}}}
    prov = compile_provider(spec, "local.yaml", env={})
    req = render(prov, prov.operations["generate"], {"prompt": "x", "extra": {}}, Target(prov.base_url, prov.secrets, False))
    assert "Authorization" not in req.headers
    assert prov.missing_secrets == []
    prov2 = compile_provider(spec, "local.yaml", env={"LOCAL_KEY": "k1"})
    req2 = render(prov2, prov2.operations["generate"], {"prompt": "x", "extra": {}}, Target(prov2.base_url, prov2.secrets, False))
    assert req2.headers["Authorization"] == "Bearer k1"
    assert req2.redacted()["headers"]["Authorization"] == "***"


PROVIDER_WORDS = re.compile(r"\b(fal|replicate|gemini|vertex|imagen|flux|dall-?e|sora|veo|seedream|kling|automatic1111|forge|openai|google)\b",
                            re.IGNORECASE)


def test_engine_holds_no_provider_or_model_names() -> None:
    hits = []
    for f in ENGINE.rglob("*.py"):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for m in PROVIDER_WORDS.finditer(code):
                # "OpenAI" names the public API shape we serve (OpenAI-compatible), not a provider
                if m.group(0).lower() == "openai" and ("OpenAI-" in code or "OpenAI " in code or "/openai/v1" in code or "openai/v1" in code):
                    continue
                hits.append(f"{f.name}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_job_and_output_urls_stay_on_trusted_hosts() -> None:
    from mediagate.upstream import same_origin_or
    base = "https://queue.example.test"
    assert same_origin_or("https://queue.example.test/jobs/1", base, ())
    assert not same_origin_or("http://queue.example.test/jobs/1", base, ())       # no downgrade
    assert not same_origin_or("https://evil.test/jobs/1", base, ())
    assert same_origin_or("https://v3.cdn.example.test/a.png", base, ("*.cdn.example.test",))
    assert not same_origin_or("http://v3.cdn.example.test/a.png", base, ("*.cdn.example.test",))
    assert not same_origin_or("file:///etc/passwd", base, ("*",))
