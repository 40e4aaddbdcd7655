"""Normalized upstream errors: provider rules first, engine defaults after, then the client's view.

A provider's rules map (status, body) to one of a small set of codes; the code decides whether the
router may fall back and what a client finally sees. An upstream refusing *our* credentials is
`upstream_auth_failed`: retryable, and never shown as the caller's 401.
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any, Mapping

from mediagate.errors import GatewayError, UpstreamError
from mediagate.paths import search, truthy
from mediagate.provider import ErrorRule

UPSTREAM_MESSAGE_MAX_CHARS = 500  # a relayed upstream message is cut here
MAX_RETRY_AFTER_S = 600           # a provider's Retry-After (either form) is capped here, read or relayed
REDACTED = "***"
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
    "submit_interrupted": (502, "upstream_error", False),
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
    "submit_interrupted": "The gateway stopped while submitting; the request was not sent again.",
}

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?\s*$")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\bFile \"[^\"]*\", line \d+")
# What a secret looks like in a provider's text: auth headers, key=value pairs, well-known key shapes,
# JWTs, and long runs of base64 / hex (tokens, signatures). Each match is replaced by REDACTED.
_SECRETS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)\b([a-z_\-]*(?:key|token|secret|password|passwd|signature|sig|credential)s?)"
                r"(\"?\s*=\s*\"?|\"\s*:\s*\")[^\s\"&,;]+"), r"\1\2" + REDACTED),
    (re.compile(r"\b(?:sk|pk|rk|ak)[-_][A-Za-z0-9_\-]{6,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), REDACTED),
)
_LONG_RUN = re.compile(r"[A-Za-z0-9+/_\-]{32,}={0,2}")


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
    return UpstreamError(code=code, message=sanitize(message) or _DEFAULT_MESSAGES[code],
                         retryable=CODES[code][2] if retryable is None else retryable,
                         status=status, param=param, retry_after_s=retry_after_s, sent=sent, not_billed=not_billed)


NOT_BILLED_STATUSES = frozenset({401, 429})


def _not_billed(rule: ErrorRule | None, status: int) -> bool:
    """A 429 refuses the request before running it and a 401 names no account that could be billed; any
    other reply proves nothing unless the provider's rule says so, after the provider's own docs."""
    if rule is not None and rule.not_billed is not None:
        return rule.not_billed
    return status in NOT_BILLED_STATUSES


def _applied(rule: ErrorRule, status: int, headers: Mapping[str, str], body: Any) -> UpstreamError:
    message = sanitize(search(rule.message, body)) if rule.message is not None else None
    param = sanitize(search(rule.param, body)) if rule.param is not None else None
    if param is not None:
        param = rule.params.get(param, param)
    retryable = rule.retryable
    if rule.retryable_header and headers.get(rule.retryable_header, "").lower() in ("true", "false"):
        retryable = headers[rule.retryable_header].lower() == "true"
    return make(rule.code, message, status, param, retryable, _retry_after(rule, headers, body),
                not_billed=_not_billed(rule, status))


def classify(rules: tuple[ErrorRule, ...], status: int, headers: Mapping[str, str], body: Any) -> UpstreamError:
    """The first matching rule, else the engine's default for the status."""
    for rule in rules:
        if rule.statuses is not None and status not in rule.statuses:
            continue
        if rule.when is not None and not truthy(search(rule.when, body)):
            continue
        return _applied(rule, status, headers, body)
    code = default_code(status)
    return make(code, None, status, None, None, _header_delay(headers, "retry-after", "s"),
                not_billed=_not_billed(None, status))


def on_success(rules: tuple[ErrorRule, ...], status: int, headers: Mapping[str, str], body: Any) -> UpstreamError | None:
    """An error reported inside a 2xx reply (some providers answer 200 with an error code in the body): only
    rules that name this 2xx status explicitly, and whose `when` holds, judge it; none matching, it is a success.
    A 2xx names no account that could not be billed, so `not_billed` must come from the rule."""
    for rule in rules:
        if rule.statuses is None or status not in rule.statuses:
            continue
        if rule.when is not None and not truthy(search(rule.when, body)):
            continue
        return _applied(rule, status, headers, body)
    return None


def sanitize(value: Any) -> str | None:
    """The one way provider text reaches a client: a string only (never an object), its first line,
    nothing from a traceback on, secrets and token-like runs masked, cut to UPSTREAM_MESSAGE_MAX_CHARS.
    None when nothing readable is left (the caller then uses its default message)."""
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        value = str(value[-1])
    if not isinstance(value, str):
        return None
    tb = _TRACEBACK.search(value)
    if tb is not None:
        value = value[:tb.start()]
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    if not lines:
        return None
    text = lines[0][: UPSTREAM_MESSAGE_MAX_CHARS * 2]
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    text = _LONG_RUN.sub(lambda m: REDACTED if _token_like(m.group(0)) else m.group(0), text)
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text[:UPSTREAM_MESSAGE_MAX_CHARS] or None


def _token_like(run: str) -> bool:
    """A long run mixing upper case, lower case and digits reads as a key; model ids and words do not."""
    return any(c.isupper() for c in run) and any(c.islower() for c in run) and any(c.isdigit() for c in run)


def _parse_duration(value: Any, unit: str) -> float | None:
    """Seconds (or ms) as a number, or an HTTP-date (RFC 9110 Retry-After); capped at MAX_RETRY_AFTER_S."""
    if value is None or isinstance(value, bool):
        return None
    m = _DURATION.match(str(value))
    if m:
        v = float(m.group(1))
        v = v / 1000 if (m.group(2) or unit) == "ms" else v
    else:
        try:
            when = email.utils.parsedate_to_datetime(str(value))
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:
            return None
        v = max(0.0, when.timestamp() - time.time())
    return min(v, float(MAX_RETRY_AFTER_S))


def retry_after_header(seconds: float | None) -> str:
    """The Retry-After value the gateway emits: whole seconds, at least 1, at most MAX_RETRY_AFTER_S."""
    return str(max(1, min(MAX_RETRY_AFTER_S, round(seconds or 1))))


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
    headers = {"Retry-After": retry_after_header(err.retry_after_s)} if status == 429 else {}
    return GatewayError(status, err.message, type_, err.code, err.param, headers)


def exhausted(attempts: list[dict[str, Any]], errors: list[UpstreamError]) -> GatewayError:
    """Every route failed: 429 when all were rate limits, 504 when all timed out, else 502 listing each."""
    listing = _listing(attempts)
    codes = {e.code for e in errors}
    if codes == {"rate_limit_exceeded"}:
        delays = [e.retry_after_s for e in errors if e.retry_after_s is not None]
        retry = retry_after_header(min(delays) if delays else None)
        return GatewayError(429, f"Every provider is rate limiting this model: {listing}", "rate_limit_error",
                            "rate_limit_exceeded", None, {"Retry-After": retry})
    if codes == {"upstream_timeout"}:
        return GatewayError(504, f"Every provider timed out: {listing}", "timeout_error", "upstream_timeout")
    if not errors:  # no route could be tried: none is configured
        return GatewayError(502, "No provider route is available for this model" + (f": {listing}" if listing else "."),
                            "upstream_error", "all_providers_exhausted")
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
