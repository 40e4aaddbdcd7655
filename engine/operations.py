"""The interpreter's registry of request operations, one per model-spec keyword.

Like jsonschema's keyword functions: each operation is a small pure function `(arg, request) -> request`
where `arg` is the value of its keyword in the model spec (or the operation's default when the spec
omits the keyword) and `request` the canonical request so far. The canonical request is built by
folding every registered operation over the caller's body in registration order; adding a behaviour
means adding an operation and its meta-schema entry, never a branch on a provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from mediagate.canonical import Canonical

Operation = Callable[[Any, "Canonical"], "Canonical"]


@dataclass(frozen=True)
class Registered:
    keyword: str
    fn: Operation
    default: Any
    compile: Callable[[Any], Any] | None  # raw spec value -> what `fn` receives; runs once at load


REGISTRY: dict[str, Registered] = {}


def operation(keyword: str, default: Any = None,
              compile: Callable[[Any], Any] | None = None) -> Callable[[Operation], Operation]:
    """Register `fn` as the operation for model-spec `keyword`."""
    def register(fn: Operation) -> Operation:
        if keyword in REGISTRY:
            raise RuntimeError(f"operation {keyword!r} registered twice")
        REGISTRY[keyword] = Registered(keyword, fn, default, compile)
        return fn
    return register


def compile_keywords(spec: dict[str, Any]) -> dict[str, Any]:
    """Each registered keyword's argument, compiled once; defaults fill absent keywords."""
    out: dict[str, Any] = {}
    for reg in REGISTRY.values():
        raw = spec.get(reg.keyword, reg.default)
        out[reg.keyword] = reg.compile(raw) if reg.compile else raw
    return out


def apply_all(compiled: dict[str, Any], request: "Canonical") -> "Canonical":
    for reg in REGISTRY.values():
        request = reg.fn(compiled[reg.keyword], request)
    return request
