"""Normalized upstream errors: provider rules first, engine defaults after, then the client's view.

A provider's rules map (status, body) to one of a small set of codes; the code decides whether the
router may fall back and what a client finally sees. An upstream refusing *our* credentials is
`upstream_auth_failed`: retryable, and never shown as the caller's 401.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from mediagate.errors import GatewayError, UpstreamError
from mediagate.paths import search, truthy
from mediagate.provider import ErrorRule

UPSTREAM_MESSAGE_MAX_CHARS = 500  # a relayed upstream message is cut here
# The OpenAI SDKs obey it instead of their own retry on 5xx (openai-python _base_client.py `_should_retry`):
# a request the provider may have billed is not resent by the client's SDK either
NO_RETRY_HEADER = "X-Should-Retry"

# code -> (client status, client type, retryable by default)
CODES: dict[str, tuple[int, str, bool]] = {
    "invalid_request_error": (400, "invalid_request_error", False),
    "content_policy_violation": (400, "invalid_request_error", False),
    "invalid_image": (400, "invalid_request_error", False),
    "rate_limit_exceeded": (429, "rate_limit_error", True),
    "upstream_auth_failed": (502, "upstream_error", True),
    "upstream_error": (502, "upstream_error", True),
    "upstream_timeout": (504, "timeout_error", True),
    "upstream_unavailable": (502, "upstream_error", True),
    "upstream_malformed": (502, "upstream_error", True),
    "upstream_model_not_found": (502, "upstream_error", True),
}

_DEFAULT_MESSAGES = {
    "invalid_request_error": "The provider rejected the request as invalid.",
    "content_policy_violation": "The request was blocked by the provider's content policy.",
    "invalid_image": "The provider could not use the input image.",
    "rate_limit_exceeded": "The provider is rate limiting requests.",
    "upstream_auth_failed": "The provider refused the gateway's credentials.",
    "upstream_error": "The provider failed to process the request.",
    "upstream_timeout": "The provider did not answer in time.",
    "upstream_unavailable": "The provider could not be reached.",
    "upstream_malformed": "The provider sent a reply the gateway could not read.",
    "upstream_model_not_found": "The provider does not know the configured upstream model.",
}

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?\s*$")


def default_code(status: int) -> str:
    if status == 429:
        return "rate_limit_exceeded"
    if status in (401, 403):
        return "upstream_auth_failed"
    if status == 404:
        return "upstream_model_not_found"
    if status in (408, 504):
        return "upstream_timeout"
    if status in (400, 413, 422):
        return "invalid_request_error"
    return "upstream_error"


def make(code: str, message: str | None = None, status: int | None = None, param: str | None = None,
         retryable: bool | None = None, retry_after_s: float | None = None, sent: bool = True,
         not_billed: bool = False) -> UpstreamError:
    return UpstreamError(code=code, message=message or _DEFAULT_MESSAGES[code],
                         retryable=CODES[code][2] if retryable is None else retryable,
                         status=status, param=param, retry_after_s=retry_after_s, sent=sent, not_billed=not_billed)


NOT_BILLED_STATUSES = frozenset({401, 429})


def _not_billed(rule: ErrorRule | None, status: int) -> bool:
    """A 429 refuses the request before running it and a 401 names no account that could be billed; any
    other reply proves nothing unless the provider's rule says so, after the provider's own docs."""
    if rule is not None and rule.not_billed is not None:
        return rule.not_billed
    return status in NOT_BILLED_STATUSES


def classify(rules: tuple[ErrorRule, ...], status: int, headers: Mapping[str, str], body: Any) -> UpstreamError:
    """The first matching rule, else the engine's default for the status."""
    for rule in rules:
        if rule.statuses is not None and status not in rule.statuses:
            continue
        if rule.when is not None and not truthy(search(rule.when, body)):
            continue
        message = _text(search(rule.message, body)) if rule.message is not None else None
        param = _text(search(rule.param, body)) if rule.param is not None else None
        if param is not None:
            param = rule.params.get(param, param)
        retryable = rule.retryable
        if rule.retryable_header and headers.get(rule.retryable_header, "").lower() in ("true", "false"):
            retryable = headers[rule.retryable_header].lower() == "true"
        return make(rule.code, message, status, param, retryable, _retry_after(rule, headers, body),
                    not_billed=_not_billed(rule, status))
    code = default_code(status)
    return make(code, None, status, None, None, _header_delay(headers, "retry-after", "s"),
                not_billed=_not_billed(None, status))


def _text(value: Any) -> str | None:
    """Only a provider's own message string is relayed: its first line, cut short; never an object."""
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        value = str(value[-1])
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().splitlines()[0][:UPSTREAM_MESSAGE_MAX_CHARS]


def _parse_duration(value: Any, unit: str) -> float | None:
    if value is None:
        return None
    m = _DURATION.match(str(value))
    if not m:
        return None
    v = float(m.group(1))
    return v / 1000 if (m.group(2) or unit) == "ms" else v


def _header_delay(headers: Mapping[str, str], name: str, unit: str) -> float | None:
    return _parse_duration(headers.get(name), unit)


def _retry_after(rule: ErrorRule, headers: Mapping[str, str], body: Any) -> float | None:
    for kind, where, unit in rule.retry_after:
        delay = _header_delay(headers, where, unit) if kind == "header" else _parse_duration(search(where, body), unit)
        if delay is not None:
            return delay
    return None


def to_client(err: UpstreamError) -> GatewayError:
    """A non-retryable upstream error as the caller sees it."""
    status, type_, _ = CODES[err.code]
    headers = {"Retry-After": str(max(1, round(err.retry_after_s or 1)))} if status == 429 else {}
    return GatewayError(status, err.message, type_, err.code, err.param, headers)


def exhausted(attempts: list[dict[str, Any]], errors: list[UpstreamError]) -> GatewayError:
    """Every route failed: 429 when all were rate limits, 504 when all timed out, else 502 listing each."""
    listing = _listing(attempts)
    codes = {e.code for e in errors}
    if codes == {"rate_limit_exceeded"}:
        delays = [e.retry_after_s for e in errors if e.retry_after_s is not None]
        retry = max(1, round(min(delays))) if delays else 1
        return GatewayError(429, f"Every provider is rate limiting this model: {listing}", "rate_limit_error",
                            "rate_limit_exceeded", None, {"Retry-After": str(retry)})
    if codes == {"upstream_timeout"}:
        return GatewayError(504, f"Every provider timed out: {listing}", "timeout_error", "upstream_timeout")
    if not errors:
        return GatewayError(502, "No provider route is available for this model.", "upstream_error",
                            "all_providers_exhausted")
    return GatewayError(502, f"All providers failed: {listing}", "upstream_error", "all_providers_exhausted")


def _listing(attempts: list[dict[str, Any]]) -> str:
    """Each failed attempt's normalized error, and whether the provider may have billed it."""
    parts = []
    for a in attempts:
        if not a.get("error"):
            continue
        note = ""
        if a.get("may_be_billed"):
            cost = a.get("cost")
            note = " [sent; may have been billed" + (f" {cost:g} {a.get('cost_currency') or ''}".rstrip() if cost else "") + "]"
        parts.append(f"{a['provider']}: {a['error']['code']} ({a['error']['message']}){note}")
    return "; ".join(parts)


def after_send(attempts: list[dict[str, Any]], errors: list[UpstreamError]) -> GatewayError:
    """A failure after the provider may have taken the work: returned at once, never resent elsewhere
    (nginx's `proxy_next_upstream` rule for non-idempotent requests), in the shape of `exhausted`, saying so,
    listing every attempt, and asking clients' SDKs not to resend it either."""
    client = exhausted(attempts, errors)
    client.message = ("The provider may have processed (and billed) the request before it failed, so it was not sent "
                      f"to another provider. {client.message}")
    client.headers[NO_RETRY_HEADER] = "false"
    return client
