"""OAuth2 JWT-bearer grant (RFC 7523): a signed assertion traded for a short-lived access token.

Generic: which credentials, claims, key and token URL are all templates in the provider spec; this module
only signs (RS256), posts the form, and caches the token until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from mediagate import errormap
from mediagate.provider import Provider
from mediagate.templates import TemplateError

TOKEN_LIFETIME_S = 3600         # asked for in the assertion (the grant's maximum at common issuers)
REFRESH_MARGIN_S = 300          # a cached token is renewed this long before it expires
FAILURE_HOLD_S = 10.0           # after a failed grant, callers get the same error this long instead of queueing retries
TOKEN_TIMEOUT_S = 30.0
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _credentials(raw: str) -> dict[str, Any]:
    text = raw.strip()
    if not text.startswith("{"):
        text = Path(text).read_text()
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("credentials must be a JSON object")
    return data


class TokenCache:
    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._failed: dict[str, tuple[Exception, float]] = {}

    async def token(self, provider: Provider, secrets: dict[str, str | None], session: aiohttp.ClientSession) -> str:
        assert provider.token is not None
        cached = self._tokens.get(provider.id)
        if cached and cached[1] - REFRESH_MARGIN_S > time.time():
            return cached[0]
        lock = self._locks.setdefault(provider.id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(provider.id)
            if cached and cached[1] - REFRESH_MARGIN_S > time.time():
                return cached[0]
            failed = self._failed.get(provider.id)
            if failed and failed[1] > time.monotonic():
                raise failed[0]
            try:
                token, expires = await self._fetch(provider, secrets, session)
            except Exception as exc:
                self._failed[provider.id] = (exc, time.monotonic() + FAILURE_HOLD_S)
                raise
            self._failed.pop(provider.id, None)
            self._tokens[provider.id] = (token, expires)
            return token

    async def _fetch(self, provider: Provider, secrets: dict[str, str | None],
                     session: aiohttp.ClientSession) -> tuple[str, float]:
        spec = provider.token
        assert spec is not None
        source = provider.spec["token"]["from_secret"]
        try:
            account = _credentials(secrets.get(source) or "")
            ctx = {"account": account, "config": provider.config}
            token_url = str(spec["token_url"](ctx))
            now = int(time.time())
            claims = {**spec["claims"](ctx), "iat": now, "exp": now + TOKEN_LIFETIME_S}
            key_id = spec["key_id"](ctx) if "key_id" in spec else None
            assertion = jwt.encode(claims, str(spec["key"](ctx)), algorithm="RS256",
                                   headers={"kid": str(key_id)} if key_id else None)
        except (OSError, ValueError, KeyError, jwt.PyJWTError, TypeError, TemplateError) as exc:
            raise errormap.make("upstream_auth_failed", f"{provider.name}: the service-account credentials are unusable "
                                f"({type(exc).__name__}).") from None
        try:
            async with session.post(token_url, data={"grant_type": GRANT_TYPE, "assertion": assertion},
                                    timeout=aiohttp.ClientTimeout(total=TOKEN_TIMEOUT_S)) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or not isinstance(body, dict) or "access_token" not in body:
                    raise errormap.make("upstream_auth_failed", f"{provider.name} refused the token grant ({resp.status}).")
                return str(body["access_token"]), time.time() + float(body.get("expires_in", TOKEN_LIFETIME_S))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            raise errormap.make("upstream_auth_failed", f"{provider.name}: the token endpoint could not be reached.") from None
