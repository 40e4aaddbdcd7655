"""AWS Signature Version 4: a provider declares `auth.sigv4` and every call to it is signed when sent.

Why our own ~100 lines instead of botocore's signer: botocore is a large runtime dependency (tens of MB of
service data, exact-version pins with its whole family) for what is one documented HMAC chain. The
signature here is checked against AWS's published test-suite vectors and against botocore's own
`SigV4Auth` / `S3SigV4Auth` on fixed inputs (tests/test_sigv4.py), so it cannot drift silently.

The signature covers the exact bytes sent: the URL is re-encoded here once (AWS's URI encoding, kept as
is by the transport), the Host header is set to what was signed, and the payload hash is taken over the
body's own serialised bytes (source: docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_HEADERS = frozenset({"authorization", "user-agent", "expect", "x-amzn-trace-id", "transfer-encoding",
                              "content-length"})   # botocore's blacklist, plus the length the transport sets
_UNRESERVED = "-_.~"                              # AWS URI encoding keeps only A-Z a-z 0-9 and these


@dataclass(frozen=True)
class Credentials:
    """What one signed call needs; rendered per call from the provider's templates (secrets by reference)."""

    access_key_id: str
    secret_access_key: str
    region: str
    service: str
    session_token: str | None = None
    content_sha256_header: bool = False   # S3 requires `x-amz-content-sha256` on every request
    path_encoded_once: bool = False       # S3 signs the path as sent; every other service URI-encodes it once more


@dataclass(frozen=True)
class Signed:
    url: str                  # the URL to send, path and query in AWS's encoding (send it as is)
    headers: dict[str, str]   # headers to add: host, x-amz-date, authorization, ...


def aws_quote(text: str) -> str:
    return quote(text, safe=_UNRESERVED)


def encode_path(path: str) -> str:
    """Each segment decoded once and encoded AWS's way, so `a:b`, `a%3Ab` and an encoded `/` inside an
    ARN (`%2F`) all reach the wire, and the signature, in one form."""
    return "/".join(aws_quote(unquote(segment)) for segment in (path or "/").split("/"))


def canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&") if query else []:
        key, _, value = part.partition("=")
        pairs.append((aws_quote(unquote(key.replace("+", " "))), aws_quote(unquote(value.replace("+", " ")))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _host(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def sign(method: str, url: str, headers: dict[str, str], payload_sha256: str, creds: Credentials,
         now: datetime.datetime | None = None) -> Signed:
    """The URL to send and the headers to add; `headers` are the request's own (all signed but the
    blacklisted). `payload_sha256` is the hex SHA-256 of the body bytes exactly as they will be sent."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    parts = urlsplit(url)
    path = encode_path(parts.path)
    query = canonical_query(parts.query)
    added = {"host": _host(url), "x-amz-date": amz_date}
    if creds.content_sha256_header:
        added["x-amz-content-sha256"] = payload_sha256
    if creds.session_token:
        added["x-amz-security-token"] = creds.session_token
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items() if k.lower() not in UNSIGNED_HEADERS}
    signed.update(added)
    names = sorted(signed)
    canonical_path = path if creds.path_encoded_once else aws_quote_path(path)
    canonical = "\n".join([method.upper(), canonical_path, query, "".join(f"{n}:{signed[n]}\n" for n in names),
                           ";".join(names), payload_sha256])
    scope = f"{date}/{creds.region}/{creds.service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    signature = hmac.new(signing_key(creds.secret_access_key, date, creds.region, creds.service),
                         to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    added["authorization"] = (f"{ALGORITHM} Credential={creds.access_key_id}/{scope}, "
                              f"SignedHeaders={';'.join(names)}, Signature={signature}")
    out_url = f"{parts.scheme}://{parts.netloc}{path}" + (f"?{query}" if query else "")
    return Signed(out_url, added)


def aws_quote_path(path: str) -> str:
    return quote(path, safe="/" + _UNRESERVED)
