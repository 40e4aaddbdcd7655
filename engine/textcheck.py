"""Text a request may carry: what every upstream encoding (a JSON body, multipart form fields) can hold.

A lone surrogate ("\\ud800", legal in JSON text) is not Unicode and cannot be written as UTF-8; NUL ends
strings in many servers; a control character (CR, LF, NUL, ...) in a field name breaks the headers of a
multipart part. Any of them would fail later, as a 500 or a failed video job, so they are refused here,
before any provider is called, with a 400 naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from mediagate.errors import GatewayError, invalid_request

MAX_PARAM_ECHO_CHARS = 100   # a refused field's path is quoted back at most this long


_BAD_IN_NAME = re.compile("[\ud800-\udfff\x00-\x1f\x7f-\x9f]")   # surrogates, C0 and C1 controls
_BAD_IN_VALUE = re.compile("[\ud800-\udfff\x00]")                   # surrogates, NUL


def _what(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return "a lone surrogate" if code >= 0xD800 else "a NUL character" if code == 0 else "a control character"


def _param(path: list[str]) -> str:
    out = ""
    for part in path:
        out += part if part.startswith("[") else (f".{part}" if out else part)
    return ascii(out)[1:-1][:MAX_PARAM_ECHO_CHARS] or "(body)"


def _refuse(path: list[str], what: str, where: str) -> GatewayError:
    param = _param(path)
    return invalid_request(f"'{param}' holds {what} in its {where}; it cannot be sent to a provider.", param,
                           "invalid_characters")


def check(value: Any) -> None:
    """Refuse (400, param = the field's path) any key or string no upstream encoding can carry."""
    stack: list[tuple[list[str], Any]] = [([], value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            bad = _BAD_IN_VALUE.search(node)
            if bad is not None:
                raise _refuse(path, _what(bad), "value")
        elif isinstance(node, dict):
            for key, child in node.items():
                bad = _BAD_IN_NAME.search(key) if isinstance(key, str) else None
                if bad is not None:
                    raise _refuse(path + [key], _what(bad), "name")
                stack.append((path + [str(key)], child))
        elif isinstance(node, list):
            stack.extend((path + [f"[{i}]"], child) for i, child in enumerate(node))
