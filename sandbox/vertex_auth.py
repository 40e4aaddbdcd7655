"""Google's OAuth2 token endpoint for service accounts, as the Vertex AI simulator needs it.

``POST /vertex/oauth2/token`` with ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``
and ``assertion=<JWT>`` (RFC 7523 §2.1), form-encoded, as google-auth sends it
(google/oauth2/_client.py ``jwt_grant``). The JWT must be RS256-signed by a trusted
service account (``vertex_keys``), with ``iss`` = its email, a short lifetime and ``aud``
= the token endpoint. google-auth always puts Google's canonical endpoint
(``https://oauth2.googleapis.com/token``) in ``aud`` whatever ``token_uri`` says
(google/oauth2/service_account.py ``_make_authorization_grant_assertion``), so that
audience is accepted as well as this endpoint's own URL.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from aiohttp import web

from .state import LOG_ENTRY, get_state
from .vertex_keys import TRUSTED_KEYS

TOKEN_PATH = "/vertex/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_AUDIENCES = frozenset({
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
})
TOKEN_LIFETIME_S = 3599  # what Google answers (the token lives an hour, minus a second)
MAX_JWT_LIFETIME_S = 3600
CLOCK_SKEW_S = 300
_TIMEFRAME = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check "
              "your iat and exp values in the JWT claim.")


class GrantError(Exception):
    """An OAuth error answer: ``{"error", "error_description"}`` (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _decode(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signing input and signature of a compact JWS."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise GrantError("invalid_grant", "Invalid JWT: not a three-part compact JWS.")
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
        signature = _b64url(parts[2])
    except (ValueError, binascii.Error):
        raise GrantError("invalid_grant", "Invalid JWT: header or claims are not base64url JSON.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise GrantError("invalid_grant", "Invalid JWT: header or claims are not JSON objects.")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def verify_assertion(assertion: str, token_url: str, now: float | None = None) -> dict[str, Any]:
    """Check a JWT-bearer assertion; returns its claims or raises ``GrantError``."""
    # Imported here: ``cryptography`` comes with google-auth (test extras), and the gateway
    # embeds the simulator without needing it until a JWT grant actually arrives.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    now = time.time() if now is None else now
    header, claims, signing_input, signature = _decode(assertion)
    if header.get("alg") != "RS256":
        raise GrantError("invalid_grant", f"Invalid JWT: unsupported algorithm {header.get('alg')!r}.")
    issuer = claims.get("iss")
    pem = TRUSTED_KEYS.get(issuer) if isinstance(issuer, str) else None
    if pem is None:
        raise GrantError("invalid_grant", "Invalid grant: account not found")
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    try:
        key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise GrantError("invalid_grant", "Invalid JWT Signature.") from None
    if claims.get("aud") not in GOOGLE_AUDIENCES | {token_url}:
        raise GrantError("invalid_grant", "Invalid JWT: Failed audience check. The audience must be the token "
                         f"endpoint, {token_url}.")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)):
        raise GrantError("invalid_grant", _TIMEFRAME)
    if iat > now + CLOCK_SKEW_S or exp <= now - CLOCK_SKEW_S or exp - iat > MAX_JWT_LIFETIME_S or exp <= iat:
        raise GrantError("invalid_grant", _TIMEFRAME)
    return claims


async def token(request: web.Request) -> web.Response:
    """``POST /vertex/oauth2/token``: exchange a signed JWT for a ``ya29.`` access token."""
    try:
        if request.content_type != "application/x-www-form-urlencoded":
            raise GrantError("invalid_request", "The request body must be form-encoded "
                             "(application/x-www-form-urlencoded).")
        form = await request.post()
        grant_type = str(form.get("grant_type", ""))
        assertion = str(form.get("assertion", ""))
        entry = request.get(LOG_ENTRY)
        if entry is not None:
            entry["form"] = {"grant_type": grant_type, "assertion": assertion[:24] + "..." if assertion else ""}
        if grant_type != JWT_GRANT:
            raise GrantError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        if not assertion:
            raise GrantError("invalid_request", "Missing required parameter: assertion")
        token_url = f"{request.scheme}://{request.host}{TOKEN_PATH}"
        claims = verify_assertion(assertion, token_url)
        if entry is not None:
            entry["form"]["iss"] = claims.get("iss")
        access = get_state(request).issue_token(TOKEN_LIFETIME_S)
        return web.json_response({"access_token": access, "expires_in": TOKEN_LIFETIME_S, "token_type": "Bearer"})
    except GrantError as exc:
        return exc.response()


def add_routes(app: web.Application) -> None:
    app.router.add_post(TOKEN_PATH, token)
