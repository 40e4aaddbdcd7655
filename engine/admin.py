"""The admin API under /admin/keys (list, create, show, revoke, rotate), authorised by MEDIAGATE_ADMIN_KEY:
the same operations as `mediagate keys`, on the same store."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mediagate import auth, keys, textcheck
from mediagate.errors import GatewayError, invalid_request, not_found
from mediagate.openapi_schemas import API_KEY_CREATE
from mediagate.request_schema import RequestValidator
from mediagate.runtime import Runtime

MAX_ADMIN_BODY_BYTES = 64 * 1024
CREATE_FIELDS = ("name", "team", "models", "endpoints", "rpm", "images_per_min", "video_seconds_per_min",
                 "max_concurrent_jobs", "budget", "budget_period", "expires", "store_payloads")
Handler = Callable[[Request, Runtime], Awaitable[Response]]
_CREATE = RequestValidator(API_KEY_CREATE)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, media_type="application/json")


def _shown(doc: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    out = keys.public(doc)
    if secret is not None:
        out["key"] = secret   # the only time the secret leaves the gateway
    return out


async def _body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/json":
        raise GatewayError(415, "This endpoint takes application/json.", "invalid_request_error", "unsupported_media_type")
    raw = await request.body()
    if len(raw) > MAX_ADMIN_BODY_BYTES:
        raise GatewayError(413, f"Request body is larger than {MAX_ADMIN_BODY_BYTES} bytes.", "invalid_request_error",
                           "request_too_large")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid_request("The request body is not valid JSON.", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", None, "invalid_json")
    textcheck.check(body)   # a lone surrogate or NUL could not be stored: 400 naming the field, not a 500
    unknown = sorted(set(body) - set(CREATE_FIELDS))
    if unknown:
        raise invalid_request(f"Unknown field '{unknown[0][:60]}'; the fields are {', '.join(CREATE_FIELDS)}.", unknown[0])
    body = _CREATE.without_nulls(body)
    _CREATE.validate(body)   # the schema /openapi.json serves: types and bounds, 400 naming the field
    return body


def _missing(ref: str) -> GatewayError:
    return not_found(f"No key with id or name '{ref[:100]}'.")


async def list_keys(request: Request, rt: Runtime) -> Response:
    await auth.check_admin(request, rt)
    return _json({"object": "list", "data": [_shown(d) for d in await rt.stores.keys.store.all()]})


async def create_key(request: Request, rt: Runtime) -> Response:
    await auth.check_admin(request, rt)
    body = await _body(request)
    if not isinstance(body.get("name"), str):
        raise invalid_request("'name' is required: a string.", "name")
    try:
        doc, secret = await rt.stores.keys.create(**body)
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        raise invalid_request(f"Invalid key: {exc}.", field if field in CREATE_FIELDS else None) from None
    except keys.KeyExists:
        raise GatewayError(409, f"A key named '{body['name'][:100]}' exists already.", "invalid_request_error", "key_exists") from None
    return _json(_shown(doc, secret), 201)


async def get_key(request: Request, rt: Runtime) -> Response:
    await auth.check_admin(request, rt)
    ref = request.path_params["key_id"]
    doc = await rt.stores.keys.store.get(ref)
    if doc is None:
        raise _missing(ref)
    return _json(_shown(doc))


async def revoke_key(request: Request, rt: Runtime) -> Response:
    await auth.check_admin(request, rt)
    ref = request.path_params["key_id"]
    doc = await rt.stores.keys.revoke(ref)
    if doc is None:
        raise _missing(ref)
    return _json({**_shown(doc), "revoked": True})


async def rotate_key(request: Request, rt: Runtime) -> Response:
    await auth.check_admin(request, rt)
    ref = request.path_params["key_id"]
    got = await rt.stores.keys.rotate(ref)
    if got is None:
        raise _missing(ref)
    return _json(_shown(*got))


def routes(endpoint: Callable[..., Callable[[Handler], Callable[[Request], Awaitable[Response]]]]) -> list[Route]:
    """`endpoint` is the app's wrapper (request id, error shape, metrics, log line); the admin key is checked here."""
    def wrapped(name: str, fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        return endpoint(f"admin.{name}", authenticated=False)(fn)
    return [
        Route("/admin/keys", wrapped("keys.list", list_keys), methods=["GET"]),
        Route("/admin/keys", wrapped("keys.create", create_key), methods=["POST"]),
        Route("/admin/keys/{key_id}", wrapped("keys.get", get_key), methods=["GET"]),
        Route("/admin/keys/{key_id}", wrapped("keys.revoke", revoke_key), methods=["DELETE"]),
        Route("/admin/keys/{key_id}/rotate", wrapped("keys.rotate", rotate_key), methods=["POST"]),
    ]
