"""Every template and JMESPath string of a spec, checked in its own language at load.

A spec mixes three languages: Jinja2 templates (what is sent), JMESPath (where things sit in a reply,
which reply means what) and plain text. Each field takes exactly one, and the easy mistake is writing the
wrong one; this module knows which field takes which, compiles every string in its language, checks that
a template names only what its context holds, and says so plainly when a string is in the wrong language.

Template contexts (names a template may use):

| field | context |
| --- | --- |
| `base_url` | config |
| `operations.*.request.*`, `async.headers`, route `body` | the request context (mediagate.context) and config |
| `operations.chat.request.*` | route, values, model, extra, stream, config |
| `async.poll/result/cancel` `path`, `query`, `json`, `headers` | the operation's context, job (the submit reply) and last (the latest job reply) |
| `auth.headers`, `auth.query` | the operation's context, job, secrets |
| `auth.sigv4.*`, `endpoints.*.base_url` | secrets and config (sigv4), config (endpoints) |
| `blocked_when[].message` | body (the reply), match (what `when` found) |
| `token.*` | account (the parsed credentials), config |

`on_empty.message` is plain text; error-rule and `failed_when` messages are JMESPath (a fixed text there is
a raw string literal, `'like this'`).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterator

import jinja2
import jinja2.meta

from mediagate.paths import PathError, compile_path
from mediagate.templates import EACH, ENV, MAX_COMPILED_SOURCES

Problem = tuple[str, str]   # ($.path, message)

# A whole string that reads as a JMESPath path: dotted names with at least one index, slice or filter.
_JMES_INDEXED = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:-?\d*(?::-?\d*)*|\*|\?[^\]]+)\])*$")
_DOTTED = re.compile(r"^([A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)+$")
_PROSE = re.compile(r"^[A-Za-z][\w,'()-]*(?: +[\w,.'()!?:-]+)+[.!]?$")


@functools.cache
def request_names() -> frozenset[str]:
    """The request context's names (and config), read off mediagate.context itself so this list cannot
    go stale; computed on first use (mediagate.context imports what imports this module)."""
    from types import SimpleNamespace

    from mediagate import context
    from mediagate.canonical import Canonical
    route = SimpleNamespace(model_for=lambda op: "", provider=SimpleNamespace(id="", config={}), values={})
    return frozenset(context.build(Canonical(model_id="", operation="generate", body={}), route, 1)) | {"config"}  # type: ignore[arg-type]


@functools.cache
def chat_names() -> frozenset[str]:
    from types import SimpleNamespace

    from mediagate import chat
    route = SimpleNamespace(model_for=lambda op: "", provider=SimpleNamespace(id=""), values={})
    return frozenset(chat._ctx(SimpleNamespace(id=""), route, {})) | {"config"}  # type: ignore[arg-type]


_GLOBALS = frozenset(ENV.globals)
MESSAGE = frozenset({"body", "match"})
TOKEN = frozenset({"account", "config"})


def _is_template(s: str) -> bool:
    return "{{" in s or "{%" in s


def template(value: Any, path: str, names: frozenset[str]) -> list[Problem]:
    """A template field (a string, or a structure of them): compiles, names only `names`, and is not
    JMESPath by mistake."""
    out: list[Problem] = []
    for p, s, scope in _strings(value, path, names):
        if not _is_template(s):
            if _looks_like_jmespath(s, scope):
                out.append((p, f"this field takes a Jinja2 template, not JMESPath: write '{{{{ {s} }}}}' "
                               "(a plain string here is sent as it is)"))
            continue
        try:
            unknown = sorted(_names(s) - scope - _GLOBALS)
        except jinja2.TemplateSyntaxError as exc:
            out.append((p, f"template does not compile: {exc.message}"))
            continue
        if unknown:
            out.append((p, f"undefined name{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                           f"this template can use {', '.join(sorted(scope))}"))
    return out


@functools.lru_cache(maxsize=MAX_COMPILED_SOURCES)
def _names(source: str) -> frozenset[str]:
    """The names a template reads from its context (parsed once per distinct source)."""
    return frozenset(jinja2.meta.find_undeclared_variables(ENV.parse(source)))


def _strings(value: Any, path: str, names: frozenset[str]) -> Iterator[tuple[str, str, frozenset[str]]]:
    """Every string in a template structure with its path and the names in scope there ($each adds $as)."""
    if isinstance(value, str):
        yield path, value, names
    elif isinstance(value, dict) and EACH in value:
        source = value[EACH]
        if isinstance(source, str):
            yield f"{path}.$each", source if _is_template(source) else "{{ " + source + " }}", names
        as_name = value.get("$as", "item")
        inner = names | {as_name} if isinstance(as_name, str) else names
        yield from _strings(value.get("$value"), f"{path}.$value", inner)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}", names)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]", names)


def _looks_like_jmespath(s: str, names: frozenset[str]) -> bool:
    """The obvious cases only: `a.b[0]`, `data[*].url`, or a dotted path rooted at a context name."""
    if "[" in s and _JMES_INDEXED.match(s):
        return True
    m = _DOTTED.match(s)
    return bool(m and m.group(1) in names)


def jmespath(value: Any, path: str) -> list[Problem]:
    """A JMESPath field: compiles, and is not a Jinja2 template or a sentence by mistake."""
    if not isinstance(value, str):
        return []
    if _is_template(value):
        inner = value.strip().removeprefix("{{").removesuffix("}}").strip()
        return [(path, f"this field takes JMESPath, not a Jinja2 template: write {inner!r} without {{{{ }}}}")]
    try:
        compile_path(value, path)
    except PathError as exc:
        if _PROSE.match(value.strip()):
            return [(path, f"this field takes JMESPath, not plain text: a fixed text is a raw string literal, "
                           f"'{value}' in single quotes")]
        return [(exc.path, exc.message)]
    return []


def text(value: Any, path: str) -> list[Problem]:
    """A plain-text field: sent as written, so a template in it is a mistake."""
    if isinstance(value, str) and _is_template(value):
        return [(path, "this field is plain text, not a Jinja2 template: it is used as written")]
    return []


def provider(spec: dict[str, Any]) -> list[Problem]:
    """Every template, JMESPath and text field of a (merged, schema-valid) provider spec."""
    out: list[Problem] = []
    base = spec.get("base_url")
    if isinstance(base, str):
        out += template(base, "$.base_url", frozenset({"config"}))
    ops = spec.get("operations") or {}
    for name, op in ops.items():
        if isinstance(op, dict):
            out += _operation(op, f"$.operations.{name}", chat_names() if name == "chat" else request_names())
    every = request_names() | chat_names() | {"job", "last", "secrets"}
    for part in ("headers", "query"):
        out += template((spec.get("auth") or {}).get(part, {}), f"$.auth.{part}", every)
    for key, value in ((spec.get("auth") or {}).get("sigv4") or {}).items():
        if isinstance(value, str):   # rendered for every call, a media download too: no request context
            out += template(value, f"$.auth.sigv4.{key}", frozenset({"secrets", "config"}))
    for name, e in (spec.get("endpoints") or {}).items():
        if isinstance(e, dict) and isinstance(e.get("base_url"), str):
            out += template(e["base_url"], f"$.endpoints.{name}.base_url", frozenset({"config"}))
    for i, rule in enumerate(spec.get("errors", [])):
        out += _rule(rule, f"$.errors[{i}]", ("when", "message", "param"))
        for j, ra in enumerate(rule.get("retry_after", [])):
            out += jmespath(ra.get("path"), f"$.errors[{i}].retry_after[{j}].path")
            out += text(ra.get("header"), f"$.errors[{i}].retry_after[{j}].header")
    token = spec.get("token")
    if isinstance(token, dict):
        for key in ("token_url", "key", "key_id", "claims"):
            if key in token:
                out += template(token[key], f"$.token.{key}", TOKEN)
    return out


def _rule(rule: dict[str, Any], path: str, keys: tuple[str, ...]) -> list[Problem]:
    return [p for k in keys if k in rule for p in jmespath(rule[k], f"{path}.{k}")]


def _operation(op: dict[str, Any], path: str, names: frozenset[str]) -> list[Problem]:
    out: list[Problem] = []
    req = op.get("request", {})
    if "json" in req and "multipart" in req:
        out.append((f"{path}.request", "both json and multipart: a request has one body; keep the one the "
                                       "provider takes (multipart for form uploads)"))
    for key in ("path", "headers", "query", "json", "multipart"):
        if key in req:
            out += template(req[key], f"{path}.request.{key}", names)
    outputs = op.get("outputs", {})
    out += jmespath(outputs.get("items"), f"{path}.outputs.items")
    for group in ("item", "response"):
        for k, v in (outputs.get(group) or {}).items():
            out += jmespath(v, f"{path}.outputs.{group}.{k}")
    for i, b in enumerate(op.get("blocked_when", [])):
        out += jmespath(b.get("when"), f"{path}.blocked_when[{i}].when")
        if "message" in b:
            out += template(b["message"], f"{path}.blocked_when[{i}].message", MESSAGE)
    if isinstance(op.get("on_empty"), dict):
        out += text(op["on_empty"].get("message"), f"{path}.on_empty.message")
    job = op.get("async")
    if isinstance(job, dict):
        out += template(job.get("headers", {}), f"{path}.async.headers", names)
        for step in ("poll", "result", "cancel"):
            s = job.get(step)
            if isinstance(s, dict):
                out += jmespath(s.get("url"), f"{path}.async.{step}.url")
                for key in ("path", "query", "json", "headers"):
                    if key in s:
                        out += template(s[key], f"{path}.async.{step}.{key}", names | {"job", "last"})
        out += jmespath(job.get("done_when"), f"{path}.async.done_when")
        out += jmespath(job.get("progress"), f"{path}.async.progress")
        for i, r in enumerate(job.get("failed_when", [])):
            out += _rule(r, f"{path}.async.failed_when[{i}]", ("when", "message"))
    return out


def route_body(body: Any, path: str) -> list[Problem]:
    """A model route's `body`, merged over its provider operation's request template."""
    return template(body, path, request_names())
