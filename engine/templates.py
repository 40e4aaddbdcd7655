"""Typed Jinja2 templates over YAML structures.

A string that is exactly one `{{ expression }}` keeps the expression's native type (int, dict, list, None),
so a template can produce objects, not only text; any other string containing `{{` renders as text.
A value that comes out None drops its dict key or list item: optional upstream fields need no `if`.
Templates are compiled once at load; a syntax error is reported with its spec path.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import urllib.parse

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.S)


def _tojson(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _urlquote(value: Any) -> str:
    """Every character but A-Z a-z 0-9 - _ . ~ percent-encoded, `/` and `:` included: one path segment made
    of an identifier that contains them (an AWS ARN). Jinja2's `urlencode` keeps `/`."""
    return urllib.parse.quote(str(value), safe="-_.~")


def _make_env() -> jinja2.Environment:
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                        keep_trailing_newline=True)
    env.filters["tojson"] = _tojson
    env.filters["urlquote"] = _urlquote
    return env


ENV = _make_env()


class TemplateError(Exception):
    """A template failed to compile or render; `path` locates it in its spec."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


Renderer = Callable[[dict[str, Any]], Any]


def _is_single_expression(text: str) -> str | None:
    """The expression when Jinja's own lexer reads `text` as exactly one `{{ ... }}` (a nested dict literal's
    `}}` included), else None: a text check alone would render `{{ {'a': {'b': x}} }}` as the text of the dict."""
    m = _SINGLE_EXPR.match(text)
    if not m:
        return None
    try:
        kinds = [kind for _, kind, value in ENV.lex(text) if not (kind == "data" and not value.strip())
                 and kind != "whitespace"]
    except jinja2.TemplateSyntaxError:
        return None      # compiled as text below, where the syntax error is reported with its path
    if kinds[:1] != ["variable_begin"] or kinds[-1:] != ["variable_end"] or kinds.count("variable_begin") != 1:
        return None
    return m.group("expr")


@dataclass(frozen=True)
class _Const:
    value: Any

    def __call__(self, ctx: dict[str, Any]) -> Any:
        return self.value


def compile_value(value: Any, path: str = "$") -> Renderer:
    """Compile a YAML value (scalars, dicts, lists) into a renderer `ctx -> value`."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return _Const(value)
        try:
            expr = _is_single_expression(value)
            if expr is not None:
                compiled = _compiled_expression(expr)  # also checks the syntax
                return _ast_path(expr, path) or _expression(compiled, path)
            template = _compiled_template(value)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(path, f"template does not compile: {exc.message}") from None
        return _text(template, path)
    if isinstance(value, dict) and EACH in value:
        return _compile_each(value, path)
    if isinstance(value, dict):
        items = [(k, compile_value(v, f"{path}.{k}")) for k, v in value.items()]
        if all(isinstance(r, _Const) for _, r in items):
            return _Const(_drop_none(value))

        def render_dict(ctx: dict[str, Any]) -> Any:
            out = {}
            for key, renderer in items:
                v = renderer(ctx)
                if v is not None:
                    out[key] = v
            return out
        return render_dict
    if isinstance(value, list):
        elems = [compile_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if all(isinstance(r, _Const) for r in elems):
            return _Const(_drop_none(value))

        def render_list(ctx: dict[str, Any]) -> Any:
            out: list[Any] = []
            for r in elems:
                v = r(ctx)
                if isinstance(r, _Each):
                    out.extend(x for x in v if x is not None)
                elif v is not None:
                    out.append(v)
            return out
        return render_list
    return _Const(value)


MAX_COMPILED_SOURCES = 4096   # distinct template sources kept compiled, so a reload recompiles only new ones


@functools.lru_cache(maxsize=MAX_COMPILED_SOURCES)
def _compiled_expression(expr: str) -> Any:
    """Compiled once per source: Jinja compiled objects are immutable and shared safely."""
    return ENV.compile_expression(expr, undefined_to_none=False)


@functools.lru_cache(maxsize=MAX_COMPILED_SOURCES)
def _compiled_template(source: str) -> jinja2.Template:
    return ENV.from_string(source)


EACH = "$each"        # {$each: <expression giving a list>, $as: name, $value: <template>} inside a list
_EACH_KEYS = {EACH, "$as", "$value"}


class _Each:
    """Repeat `$value` for every element of the `$each` list, spliced into the enclosing list."""

    def __init__(self, source: Renderer, name: str, value: Renderer, path: str) -> None:
        self.source, self.name, self.value, self.path = source, name, value, path

    def __call__(self, ctx: dict[str, Any]) -> list[Any]:
        items = self.source(ctx)
        if items is None:
            return []
        if not isinstance(items, list):
            raise TemplateError(self.path, f"$each needs a list, got {type(items).__name__}")
        return [self.value({**ctx, self.name: item}) for item in items]


def _compile_each(value: dict[str, Any], path: str) -> Renderer:
    extra = set(value) - _EACH_KEYS
    if extra or "$value" not in value or not isinstance(value.get("$as", "item"), str):
        raise TemplateError(path, f"$each takes $as (a name) and $value, not {sorted(extra) or 'this'}")
    source = value[EACH]
    if not isinstance(source, str):
        raise TemplateError(f"{path}.$each", "$each is an expression such as '{{ images }}'")
    return _Each(compile_value(source if "{{" in source else "{{ " + source + " }}", f"{path}.$each"),
                 value.get("$as", "item"), compile_value(value["$value"], f"{path}.$value"), path)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


_MISSING = object()


def _lookup(ctx: Any, names: list[str], path: str, expr: str) -> Any:
    value = ctx
    for name in names:
        nxt = value.get(name, _MISSING) if isinstance(value, Mapping) else getattr(value, name, _MISSING)
        if nxt is _MISSING or name.startswith("_"):
            raise TemplateError(path, f"undefined value: {expr.strip()!r} has no {name!r}")
        value = nxt
    return value


Evaluator = Callable[[dict[str, Any]], Any]


def _ast_path(expr: str, path: str) -> Renderer | None:
    """Expressions built only of names, attributes, constants, `.get('k')`, `~`, `x if c else y`, `and`, `or` and
    `not` (`a.b.c`, `'Bearer ' ~ secrets.api_key if secrets.api_key else ''`), evaluated as plain Python closures over
    Jinja's own parse: the sandbox's per-call checks cost ~25 us an expression. Same results and strictness as
    Jinja (a missing name or key fails the render, evaluated lazily as Jinja does); anything else is left to it."""
    try:
        node = ENV.parse("{{ " + expr + " }}").body[0].nodes[0]   # type: ignore[attr-defined]
        ev = _evaluator(node, path, expr)
    except (jinja2.TemplateSyntaxError, _Unsupported, AttributeError, IndexError):
        return None

    def render(ctx: dict[str, Any]) -> Any:
        return _drop_none(ev(ctx))
    return render


class _Unsupported(Exception):
    """A node the plain evaluator does not take: the expression stays with Jinja."""


def _evaluator(node: Any, path: str, expr: str) -> Evaluator:
    from jinja2 import nodes
    if isinstance(node, nodes.Const):
        value = node.value
        return lambda ctx: value
    if isinstance(node, (nodes.Name, nodes.Getattr)):
        names: list[str] = []
        while isinstance(node, nodes.Getattr):
            names.insert(0, node.attr)
            node = node.node
        if not isinstance(node, nodes.Name) or node.name in ENV.globals:
            raise _Unsupported()
        names.insert(0, node.name)
        return lambda ctx: _lookup(ctx, names, path, expr)
    if (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) and node.node.attr == "get"
            and len(node.args) == 1 and isinstance(node.args[0], nodes.Const) and isinstance(node.args[0].value, str)
            and not node.kwargs and node.dyn_args is None and node.dyn_kwargs is None):
        container, key = _evaluator(node.node.node, path, expr), node.args[0].value

        def get(ctx: dict[str, Any]) -> Any:
            mapping = container(ctx)
            if not isinstance(mapping, Mapping):
                raise TemplateError(path, f"{expr.strip()!r}: .get on a {type(mapping).__name__}, not a mapping")
            return mapping.get(key)
        return get
    if isinstance(node, nodes.CondExpr) and node.expr2 is not None:
        test, yes, no = (_evaluator(n, path, expr) for n in (node.test, node.expr1, node.expr2))
        return lambda ctx: yes(ctx) if test(ctx) else no(ctx)
    if isinstance(node, nodes.Concat):
        parts = [_evaluator(n, path, expr) for n in node.nodes]
        return lambda ctx: "".join([str(p(ctx)) for p in parts])
    if isinstance(node, nodes.Or):
        left, right = _evaluator(node.left, path, expr), _evaluator(node.right, path, expr)
        return lambda ctx: left(ctx) or right(ctx)
    if isinstance(node, nodes.And):
        left, right = _evaluator(node.left, path, expr), _evaluator(node.right, path, expr)
        return lambda ctx: left(ctx) and right(ctx)
    if isinstance(node, nodes.Not):
        inner = _evaluator(node.node, path, expr)
        return lambda ctx: not inner(ctx)
    raise _Unsupported()


def _expression(compiled: Any, path: str) -> Renderer:
    def render(ctx: dict[str, Any]) -> Any:
        try:
            result = compiled(**ctx)
        except jinja2.UndefinedError as exc:
            raise TemplateError(path, f"undefined value: {exc.message}") from None
        except Exception as exc:  # a template bug must name its place, not crash the request blindly
            raise TemplateError(path, f"{type(exc).__name__}: {exc}") from None
        if isinstance(result, jinja2.Undefined):
            raise TemplateError(path, f"undefined value: {result._undefined_message}")
        return _drop_none(result)
    return render


def _text(template: jinja2.Template, path: str) -> Renderer:
    def render(ctx: dict[str, Any]) -> Any:
        try:
            return template.render(ctx)
        except jinja2.UndefinedError as exc:
            raise TemplateError(path, f"undefined value: {exc.message}") from None
        except Exception as exc:
            raise TemplateError(path, f"{type(exc).__name__}: {exc}") from None
    return render
