"""The declared path language: JMESPath, compiled once at load.

Specs use it to say where outputs sit in a reply and which reply means what (blocked, failed, rate
limited), so no provider's response layout is written in Python.
"""

from __future__ import annotations

from typing import Any

import jmespath
import jmespath.exceptions
from jmespath.parser import ParsedResult


class PathError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


_OPTIONS = jmespath.Options()


def compile_path(expression: str, path: str = "$") -> ParsedResult:
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        raise PathError(path, f"JMESPath expression does not compile: {exc}") from None


def search(compiled: ParsedResult, data: Any) -> Any:
    """Evaluate; a type mismatch inside the reply (a provider sent something odd) yields None."""
    try:
        return compiled.search(data, _OPTIONS)
    except jmespath.exceptions.JMESPathError:
        return None


def field_names(compiled: ParsedResult) -> set[str]:
    """Every field name the expression reads, at any depth (`a.b[?c]` reads a, b and c)."""
    names: set[str] = set()
    todo = [compiled.parsed]
    while todo:
        node = todo.pop()
        if node.get("type") == "field":
            names.add(node["value"])
        todo.extend(c for c in node.get("children", ()) if isinstance(c, dict))
    return names


def truthy(value: Any) -> bool:
    """JMESPath truth: empty list/dict/string, False and null are false."""
    return value not in (None, False, "", [], {})
