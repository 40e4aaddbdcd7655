"""Extract outputs from a successful provider reply, or recognise it as a block.

Where the images sit, which reply means "blocked" and what an empty reply means are all declared in
the provider spec as JMESPath; this module only evaluates them.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from mediagate import errormap
from mediagate.errors import UpstreamError
from mediagate.paths import search, truthy
from mediagate.provider import Operation
from mediagate.templates import TemplateError


@dataclass(frozen=True)
class RawOutput:
    """One output as the provider gave it: inline base64 or a URL (data: URLs count as inline)."""

    b64: str | None
    url: str | None
    revised_prompt: str | None
    data: bytes | None = None          # the file itself, when the provider answered with it
    upstream: dict[str, Any] | None = None  # the call's `outputs.metadata` values (shared by its outputs)


METADATA_VALUE_MAX_CHARS = 256     # a surfaced reply field is an id or a seed, not a document
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def view(reply_view: bool, body: Any, headers: Mapping[str, str] | None = None, status: int = 200) -> Any:
    """What an operation's paths read: the body, or (`view: reply`) {body, headers, status}."""
    if not reply_view:
        return body
    return {"body": None if isinstance(body, bytes) else body, "headers": dict(headers or {}), "status": status}


def file_body(op: Operation, provider_name: str, content_type: str, body: bytes) -> bytes:
    """The reply of an `outputs.body: file` operation, when it is one of the declared types. Anything else is
    malformed and not retryable: the provider answered with success, so it made (and billed) the work."""
    assert op.file_types is not None
    ctype = content_type.split(";")[0].strip().lower()
    if not any(fnmatch.fnmatchcase(ctype, t) for t in op.file_types):
        raise errormap.make("upstream_malformed", f"{provider_name} answered with {ctype or 'no content type'}, "
                            f"not one of the declared {', '.join(op.file_types)}.", retryable=False)
    return body


def metadata(op: Operation, reply: Any, secrets: Iterable[str | None] = ()) -> dict[str, Any] | None:
    """`outputs.metadata` over the reply view: scalars only, strings cleaned and capped; a value that holds
    one of the provider's secrets is dropped (a reply echoing a key must not hand it to a client)."""
    if not op.metadata:
        return None
    hidden = [s for s in secrets if s]
    out: dict[str, Any] = {}
    for name, path in op.metadata.items():
        value = search(path, reply)
        if isinstance(value, str):
            value = _CONTROL.sub("", value)[:METADATA_VALUE_MAX_CHARS]
            if any(s in value for s in hidden):
                continue
        elif isinstance(value, float) and not math.isfinite(value):
            continue
        elif not isinstance(value, (int, float, bool)):
            continue   # objects, lists and null are not surfaced
        out[name] = value
    return out

def _blocked(op: Operation, body: Any) -> UpstreamError | None:
    """`body` is what the paths read (the reply view when the operation opted in)."""
    for rule in op.blocked:
        hit = search(rule.when, body)
        if truthy(hit):
            message = None
            if rule.message is not None:
                try:
                    message = str(rule.message({"body": body, "match": hit}))
                except TemplateError:
                    message = None
            return errormap.make("content_policy_violation", message)
    return None


def outputs(op: Operation, body: Any, headers: Mapping[str, str] | None = None, status: int = 200) -> list[RawOutput]:
    """The reply's outputs; raises the normalized error for blocks, empty and unreadable replies."""
    if isinstance(body, bytes) and op.reply_view:  # a file reply can still be blocked by what its headers say
        blocked = _blocked(op, view(True, body, headers, status))
        if blocked is not None:
            raise blocked
    if isinstance(body, bytes):
        if not body:
            raise errormap.make("upstream_malformed", "The provider sent an empty file.")
        return [RawOutput(None, None, None, body)]
    if not isinstance(body, (dict, list)):
        raise errormap.make("upstream_malformed")
    body = view(op.reply_view, body, headers, status)
    blocked = _blocked(op, body)
    if blocked is not None:
        raise blocked
    items = search(op.items, body)
    if items is None:
        items = []
    if not isinstance(items, list):
        items = [items]
    shared_prompt = search(op.response["revised_prompt"], body) if "revised_prompt" in op.response else None
    found: list[RawOutput] = []
    for item in items:
        b64 = search(op.item["b64"], item) if "b64" in op.item else None
        url = search(op.item["url"], item) if "url" in op.item else None
        if isinstance(item, str) and not op.item:
            url = item
        prompt = search(op.item["revised_prompt"], item) if "revised_prompt" in op.item else None
        if isinstance(url, str) and url.startswith("data:"):
            b64, url = url.partition(",")[2], None
        if not (isinstance(b64, str) and b64) and not (isinstance(url, str) and url):
            continue
        prompt = prompt if isinstance(prompt, str) and prompt else shared_prompt
        found.append(RawOutput(b64 if isinstance(b64, str) and b64 else None,
                               url if isinstance(url, str) and url else None,
                               prompt if isinstance(prompt, str) and prompt else None))
    if not found:
        if op.on_empty is not None:
            raise errormap.make(op.on_empty["code"], op.on_empty.get("message"))
        raise errormap.make("upstream_malformed", "The provider reply held no output.")
    return found
