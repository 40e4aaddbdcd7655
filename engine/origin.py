"""Which hosts and web origins the gateway answers, and the base its media URLs are built on.

A media URL must never carry a host the caller made up (`Host: evil.example` would hand out links to
someone else's server). It is built from MEDIAGATE_PUBLIC_URL; else from the request's Host when that is
in MEDIAGATE_ALLOWED_HOSTS (a request naming any other host is refused, as Starlette's
TrustedHostMiddleware does — which also stops DNS rebinding); else from the address the connection
actually reached (the socket's, not a header). Browsers get CORS only for MEDIAGATE_CORS_ORIGINS, and a
request carrying another site's Origin may not spend the operator's money (CSRF), whatever its body.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request

from mediagate.config import Settings
from mediagate.errors import GatewayError

CORS_METHODS = ("GET", "POST", "DELETE")
CORS_EXPOSED_HEADERS = ("X-Request-Id", "X-Mediagate-Provider", "X-Mediagate-Model", "X-Mediagate-Cost",
                        "X-Mediagate-Cost-Currency", "Retry-After", "Deprecation", "Sunset", "X-Mediagate-Deprecated")
CORS_MAX_AGE_S = 600                 # how long a browser may cache a preflight answer
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _hostname(host_header: str) -> str:
    """`example.com:8400` -> `example.com`; `[::1]:8400` -> `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def host_allowed(host_header: str, patterns: tuple[str, ...]) -> bool:
    """TrustedHostMiddleware's rules: `*` any host, `*.example.com` its subdomains, else an exact name."""
    name = _hostname(host_header)
    for pattern in patterns:
        if pattern == "*" or name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def check_host(request: Request, settings: Settings) -> None:
    if settings.allowed_hosts and not host_allowed(request.headers.get("host", ""), settings.allowed_hosts):
        raise GatewayError(400, "This gateway does not answer for the host named in the request.",
                           "invalid_request_error", "invalid_host")


def _scheme(request: Request) -> str:
    """`request.url.scheme` without building the whole URL (host header parsing included) on every request."""
    return str(request.scope.get("scheme", "http")).lower()


def base_url(request: Request, settings: Settings) -> str:
    """Where media URLs point: the public URL, an allowed Host, or the address the client connected to."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scheme = _scheme(request)
    if settings.allowed_hosts:  # check_host already refused any other Host
        return f"{scheme}://{request.headers.get('host', '')}"
    server = request.scope.get("server")
    if not server:
        return f"{scheme}://localhost"
    host, port = server[0], server[1]
    host = f"[{host}]" if ":" in host else host
    default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    return f"{scheme}://{host}" if default or port is None else f"{scheme}://{host}:{port}"


def check_origin(request: Request, settings: Settings) -> None:
    """Refuse a state-changing request sent by a web page of another origin than the allowed ones.
    Browsers always send Origin on cross-origin POSTs; SDKs and servers send none."""
    origin = request.headers.get("origin")
    if origin is None or request.method not in UNSAFE_METHODS:
        return
    if "*" in settings.cors_origins or origin in settings.cors_origins:
        return
    own = {f"{_scheme(request)}://{request.headers.get('host', '')}"}
    if settings.public_url:
        own.add(settings.public_url.rstrip("/"))
    if origin in own:
        return
    raise GatewayError(403, "Requests from this web origin are not allowed (MEDIAGATE_CORS_ORIGINS).",
                       "invalid_request_error", "origin_not_allowed")


def middleware(settings: Settings) -> list[Middleware]:
    """CORS (preflight answered by Starlette's CORSMiddleware) only when origins are configured; off by default."""
    if not settings.cors_origins:
        return []
    return [Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=list(CORS_METHODS),
                       allow_headers=["*"], expose_headers=list(CORS_EXPOSED_HEADERS), max_age=CORS_MAX_AGE_S)]
