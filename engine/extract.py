"""Extract outputs from a successful provider reply, or recognise it as a block.

Where the images sit, which reply means "blocked" and what an empty reply means are all declared in
the provider spec as JMESPath; this module only evaluates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

def _blocked(op: Operation, body: Any) -> UpstreamError | None:
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


def outputs(op: Operation, body: Any) -> list[RawOutput]:
    """The reply's outputs; raises the normalized error for blocks, empty and unreadable replies."""
    if isinstance(body, bytes):
        if not body:
            raise errormap.make("upstream_malformed", "The provider sent an empty file.")
        return [RawOutput(None, None, None, body)]
    if not isinstance(body, (dict, list)):
        raise errormap.make("upstream_malformed")
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
