"""GET /console: the web console, static ES modules and CSS shipped inside the package (no build step, nothing
fetched at run time). The page itself holds no data and needs no key; every call it makes goes to the
public API with the key the user types (kept in the tab's sessionStorage), so it can do nothing a key
can't. Only files listed at start-up are served, each with a strict Content-Security-Policy.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mediagate import errors
from mediagate.endpoint import endpoint
from mediagate.runtime import Runtime

CONSOLE_PATH = "/console"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Scripts and styles only from the gateway; images and videos also from media URLs (a bucket's presigned
# links) and blob: (a fetched video, a painted mask); calls only to the gateway itself.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data: blob: https: http:; media-src 'self' blob: https: http:; "
       "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}


def asset_dir() -> Path:
    """Package data in an installed wheel (`mediagate/console`), the repository's `console/` in a checkout."""
    packaged = importlib.resources.files("mediagate").joinpath("console")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "console"


def _assets(root: Path) -> dict[str, tuple[bytes, str]]:
    """Every servable file, read once (the whole console is tens of kilobytes)."""
    return {p.name: (p.read_bytes(), MEDIA_TYPES[p.suffix]) for p in sorted(root.iterdir())
            if p.is_file() and p.suffix in MEDIA_TYPES}


def routes() -> list[BaseRoute]:
    files = _assets(asset_dir())

    async def to_page(request: Request) -> Response:
        return RedirectResponse(CONSOLE_PATH + "/", 307)

    @endpoint("console", authenticated=False, admitted=False)
    async def page(request: Request, rt: Runtime) -> Response:
        name = request.path_params.get("name") or "index.html"
        if name not in files:
            raise errors.not_found(f"No console file '{name[:60]}'.")
        body, media_type = files[name]
        return Response(body, 200, HEADERS, media_type=media_type)

    # `/` has nothing else to say: a person who opens the gateway's address in a browser lands on the console
    return [Route("/", to_page, methods=["GET"]), Route(CONSOLE_PATH, to_page, methods=["GET"]),
            Route(CONSOLE_PATH + "/", page, methods=["GET"]),
            Route(CONSOLE_PATH + "/{name}", page, methods=["GET"])]
