"""The OpenAPI entry of every route the app mounts: one table, one row per (path, method).

A route added in mediagate.app without a row here fails tests/test_openapi.py (it walks the app's routes);
a page that is not an API (HTML) goes in UNDOCUMENTED instead. `/openai/v1/...` is an alias of `/v1/...`
and is documented once, under `/v1`. Request bodies driven by the model specs are `$ref`s to components
that mediagate.openapi builds from the compiled request schemas; response objects are in
mediagate.openapi_schemas.

Adding a route: one row, e.g. for `GET /v1/usage` (operationId = the endpoint's name in mediagate.endpoint)
    "/v1/usage": {"get": op("usage", "Usage per key, team, model, provider and day", "usage",
                            {200: ref("Usage")}, GUARDED, params=({"name": "from", "in": "query", ...},))},
and its response object as "Usage" in openapi_schemas.COMPONENTS; schemathesis then checks the answers.
"""

from __future__ import annotations

from typing import Any

from mediagate.canonical import MAX_N
from mediagate.endpoint import FLAG_WORDS
from mediagate.openapi_schemas import ref

Operation = dict[str, Any]
API_PREFIX = "/v1"
ALIAS_PREFIXES = ("/openai/v1",)       # served exactly like API_PREFIX; documented once
UNDOCUMENTED = ("/console", "/")       # HTML pages and the root's redirect to the console (a path, or a path prefix; "/" exactly)

GATEWAY_AUTH = [{"bearerAuth": []}, {"apiKeyHeader": []}]
ADMIN_AUTH = [{"adminBearer": []}, {"adminApiKey": []}]
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "A gateway key (MEDIAGATE_API_KEYS or `mediagate keys create`). Needed once any key exists."},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "api-key", "description": "The same key, in an `api-key` header."},
    "adminBearer": {"type": "http", "scheme": "bearer", "description": "MEDIAGATE_ADMIN_KEY; the admin API is off without it."},
    "adminApiKey": {"type": "apiKey", "in": "header", "name": "api-key", "description": "MEDIAGATE_ADMIN_KEY, in an `api-key` header."},
}

# Statuses any keyed, admitted endpoint may answer before its handler runs: a foreign Host (400), a key
# missing or wrong (401), a web origin or endpoint not allowed (403), the wrong-key throttle or the key's
# rpm (429), the gateway at its concurrency or upload budget (503).
GUARDED = (400, 401, 403, 429, 503)
BODY = (408, 413, 415)                  # a body that stalls, is too big, or is not JSON (or multipart)
SPEND = (402, 404, 502, 504)            # budget, unknown model, every provider failed, deadline
ADMIN = (401, 429, 503)                 # the admin key missing or wrong, its throttle, the gateway at its limit

DESCRIPTIONS = {200: "OK", 201: "Created", 202: "Accepted: the job is queued", 400: "Invalid request",
                401: "Missing or invalid key", 402: "The key's budget would be crossed", 403: "Not allowed for this key or origin",
                404: "Not found", 408: "The request body stopped arriving", 409: "Conflict", 410: "Expired and deleted",
                413: "Body or upload too large", 415: "Unsupported Content-Type", 429: "Rate limited (see Retry-After)",
                500: "A shipped spec cannot render this request (a spec error, logged)", 502: "Every provider route failed", 503: "The gateway is at a limit, or a store it needs is unavailable",
                504: "The deadline passed", 507: "No room left to store url media"}

REQUEST_ID = {"X-Request-Id": {"description": "The request id (the caller's X-Request-Id when well formed)",
                               "schema": {"type": "string"}}}
_FLAG = {"enum": list(FLAG_WORDS)}
DRY_RUN = {"name": "dryRun", "in": "query", "schema": _FLAG,
           "description": "validate, route and price the request without calling any provider (200 with the estimate)"}
SANDBOX = {"name": "X-Mediagate-Sandbox", "in": "header", "schema": _FLAG,
           "description": "1/true/on/yes: the built-in simulators serve this request (a test mode)"}
SCHEMA = {"name": "schema", "in": "query", "schema": _FLAG,
          "description": "add the compiled request schema of each operation (the same that validates requests)"}
DETAIL = {"name": "detail", "in": "query", "schema": _FLAG,
          "description": "add each route (provider, configured, sandboxed, cooling down), the lifecycle and a price summary"}


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "string"}}}
GENERATED = {"X-Mediagate-Provider": {"description": "the provider that served the request", "schema": {"type": "string"}},
             "X-Mediagate-Model": {"description": "the catalog model id", "schema": {"type": "string"}}}


def _json(schema: Any, status: int, headers: dict[str, Any] | None = None) -> Operation:
    extra = RETRY_AFTER if status in (429, 503) else {}
    return {"description": DESCRIPTIONS[status], "headers": {**REQUEST_ID, **extra, **(headers or {})},
            "content": {"application/json": {"schema": schema}}}


def _links(target: str, param: str, *operation_ids: str) -> dict[str, Any]:
    """OpenAPI links: the id in a created object's body names the resource for the operations that read it."""
    return {op_id.replace(".", "_"): {"operationId": op_id, "parameters": {param: f"$response.body#/{target}"}}
            for op_id in operation_ids}


def _with_links(response: Operation, links: dict[str, Any]) -> Operation:
    return {**response, "links": links}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}, "description": description}


def op(operation_id: str, summary: str, tag: str, ok: dict[int, Any], errors: tuple[int, ...], *,
       body: dict[str, Any] | None = None, params: tuple[dict[str, Any], ...] = (), security: list[Any] | None = GATEWAY_AUTH,
       description: str | None = None) -> Operation:
    """One operation: `ok` maps success statuses to a schema (or a ready response object), `errors` lists the
    statuses answered with the OpenAI error object."""
    responses: dict[str, Any] = {}
    for status, schema in ok.items():
        responses[str(status)] = schema if "content" in schema else _json(schema, status)
    for status in sorted(set(errors)):
        responses[str(status)] = _json(ref("Error"), status)
    out: Operation = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": responses}
    if description:
        out["description"] = description
    if params:
        out["parameters"] = list(params)
    if body is not None:
        out["requestBody"] = {"required": True, "content": body}
    out["security"] = security if security is not None else []
    return out


def _json_body(component: str) -> dict[str, Any]:
    return {"application/json": {"schema": ref(component)}}


def _file(types: tuple[str, ...], status: int = 200) -> Operation:
    return {"description": DESCRIPTIONS[status], "headers": REQUEST_ID,
            "content": {t: {"schema": {"type": "string", "contentMediaType": t}} for t in types}}


IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/avif", "application/octet-stream")
VIDEO_TYPES = ("video/mp4", "video/webm", "video/quicktime")
_EDIT_FORM = {"multipart/form-data": {"schema": ref("ImageEditForm"),
                                      "encoding": {"image": {"contentType": "image/png, image/jpeg, image/webp"},
                                                   "mask": {"contentType": "image/png"}}}}
_VIDEO_FORM = {"multipart/form-data": {"schema": ref("VideoCreateForm"),
                                       "encoding": {"input_reference": {"contentType": "image/png, image/jpeg, image/webp"}}}}
_VIDEO_ID = _path("video_id", "a video id from POST /v1/videos")
_KEY_ID = _path("key_id", "a key's id or name")
_REQUEST_ID = _path("request_id", "a request record's id (GET /v1/requests)")
HISTORY_AUTH = GATEWAY_AUTH + ADMIN_AUTH   # a team's key sees its team; the admin key every team
_WHEN = "a UNIX time in seconds or an ISO 8601 date or date-time (UTC unless it names a zone)"
_RANGE = ({"name": "start", "in": "query", "schema": {"type": "string"}, "description": _WHEN},
          {"name": "end", "in": "query", "schema": {"type": "string"}, "description": _WHEN},
          {"name": "team", "in": "query", "schema": {"type": "string", "minLength": 1},
           "description": "the admin key: any team; a team's key: its own only (403 otherwise)"},
          {"name": "key", "in": "query", "schema": {"type": "string", "minLength": 1}, "description": "one key's name"})

# path -> method -> operation. /v1 paths are also served under every ALIAS_PREFIXES.
PATHS: dict[str, dict[str, Operation]] = {
    "/v1/images/generations": {"post": op(
        "images.generations", "Generate images", "images",
        {200: _json({"anyOf": [ref("ImageResponse"), ref("DryRunEstimate")]}, 200, GENERATED)}, GUARDED + BODY + SPEND + (507,),
        body=_json_body("ImageGenerationRequest"), params=(DRY_RUN, SANDBOX),
        description="The body is one model's request schema, chosen by `model` (an id, an alias, or provider/model "
                    "to force a provider). Unknown fields are passed through to the provider.")},
    "/v1/images/edits": {"post": op(
        "images.edits", "Edit images", "images",
        {200: _json({"anyOf": [ref("ImageResponse"), ref("DryRunEstimate")]}, 200, GENERATED)}, GUARDED + BODY + SPEND + (507,),
        body={**_EDIT_FORM, **_json_body("ImageEditRequest")}, params=(DRY_RUN, SANDBOX),
        description="Multipart (`image` / `image[]` file parts, optional `mask`, text fields: the OpenAI SDKs' way) "
                    "or JSON with the images as data: or https URLs.")},
    "/v1/chat/completions": {"post": op(
        "chat.completions", "Chat completion (passthrough)", "chat",
        {200: {"description": "The completion, or with stream: true server-sent events", "headers": REQUEST_ID,
               "content": {"application/json": {"schema": {"anyOf": [ref("ChatCompletion"), ref("DryRunEstimate")]}},
                           "text/event-stream": {"schema": {"type": "string"}}}}},
        GUARDED + BODY + SPEND, body=_json_body("ChatCompletionRequest"), params=(DRY_RUN, SANDBOX))},
    "/v1/videos": {
        "post": op("videos.create", "Create a video job", "videos",
                   {200: {"anyOf": [ref("Video"), ref("DryRunEstimate")],
                          "description": "dryRun's estimate, or the job an idempotency_key created before"},
                    202: _with_links(_json(ref("Video"), 202), _links("id", "video_id", "videos.get", "videos.content",
                                                                        "videos.delete"))},
                   GUARDED + BODY + SPEND, body={**_json_body("VideoCreateRequest"), **_VIDEO_FORM}, params=(DRY_RUN, SANDBOX)),
        "get": op("videos.list", "List video jobs", "videos", {200: ref("VideoList")}, GUARDED + (404,), params=(
            {"name": "after", "in": "query", "schema": {"type": "string"}, "description": "the last id of the previous page"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
            {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"], "default": "desc"}}))},
    "/v1/videos/{video_id}": {
        "get": op("videos.get", "Get a video job", "videos", {200: ref("Video")}, GUARDED + (404,), params=(_VIDEO_ID,)),
        "delete": op("videos.delete", "Cancel and delete a video job", "videos", {200: ref("VideoDeleted")},
                     GUARDED + (404,), params=(_VIDEO_ID,))},
    "/v1/videos/{video_id}/content": {"get": op(
        "videos.content", "Download a finished video", "videos", {200: _file(VIDEO_TYPES)}, GUARDED + (404, 409, 410),
        params=(_VIDEO_ID, {"name": "variant", "in": "query", "schema": {"enum": ["video"], "default": "video"}},
                {"name": "index", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_N - 1, "default": 0},
                 "description": "which output of an n > 1 job"}))},
    "/v1/models": {"get": op("models.list", "List models", "models", {200: ref("ModelList")}, GUARDED, params=(SCHEMA, DETAIL))},
    "/v1/models/{model_id}": {"get": op(
        "models.get", "Get a model", "models", {200: ref("Model")}, GUARDED + (404,),
        params=(_path("model_id", "an id, an alias or provider/model"), SCHEMA, DETAIL))},
    "/v1/explain": {"post": op(
        "explain", "Explain a request: the exact upstream request per route", "models", {200: ref("Explain")},
        GUARDED + BODY + (404, 500), body=_json_body("ExplainRequest"),
        description="What `mediagate explain` prints; nothing is sent to any provider and secrets are never shown.")},
    "/v1/providers": {"get": op("providers.list", "List providers: configured, sandboxed, cooling down", "models",
                                {200: ref("ProviderList")}, GUARDED)},
    "/v1/usage": {"get": op(
        "usage", "Usage per day, team, key, model and provider", "history", {200: ref("Usage")}, GUARDED,
        params=(*_RANGE, {"name": "group_by", "in": "query", "schema": {"type": "string"},
                          "description": "a comma-separated subset of day,team,key,model,provider (default all)"}),
        security=HISTORY_AUTH)},
    "/v1/requests": {"get": op(
        "requests.list", "The request history, newest first", "history", {200: ref("RequestList")}, GUARDED,
        params=(*_RANGE, {"name": "status", "in": "query", "schema": {"enum": ["succeeded", "failed", "pending", "cancelled"]}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                {"name": "after", "in": "query", "schema": {"type": "string", "minLength": 1},
                 "description": "next_cursor of the previous page"},
                {"name": "summary", "in": "query", "schema": _FLAG, "description": "leave out attempts and adjustments"}),
        security=HISTORY_AUTH)},
    "/v1/requests/{request_id}": {"get": op(
        "requests.get", "One request record (with its payloads when its key stores them)", "history",
        {200: ref("RequestRecord")}, GUARDED + (404,), params=(_REQUEST_ID,), security=HISTORY_AUTH)},
    "/v1/requests/{request_id}/payloads": {"delete": op(
        "requests.delete_payloads", "Delete a request's stored prompt and outputs", "history", {200: ref("PayloadsDeleted")},
        GUARDED + (404,), params=(_REQUEST_ID,), security=HISTORY_AUTH)},
    "/v1/media/{name}": {"get": op(
        "media", "Download url media", "operations", {200: _file(IMAGE_TYPES)}, (400, 404, 410, 503),
        params=(_path("name", "the file name in a signed media URL"),
                {"name": "sig", "in": "query", "schema": {"type": "string"}, "description": "the URL's signature"}),
        security=None, description="A signed URL is its own credential: no gateway key needed.")},
    "/healthz": {"get": op("healthz", "Liveness", "operations", {200: ref("Health")}, (), security=None)},
    "/readyz": {"get": op("readyz", "Readiness: stores and provider health", "operations", {200: ref("Ready")}, (), security=None)},
    "/metrics": {"get": op("metrics", "Prometheus metrics", "operations",
                           {200: {"description": "Prometheus text exposition format", "headers": REQUEST_ID,
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}}, (400, 401, 403, 429))},
    "/openapi.json": {"get": op("openapi", "This document", "operations", {200: {"type": "object"}}, GUARDED)},
    "/admin/keys": {
        "get": op("admin.keys.list", "List keys", "admin", {200: ref("ApiKeyList")}, ADMIN, security=ADMIN_AUTH),
        "post": op("admin.keys.create", "Create a key (its secret is in `key`, shown once)", "admin",
                   {201: _with_links(_json(ref("ApiKey"), 201), _links("id", "key_id", "admin.keys.get", "admin.keys.rotate",
                                                                      "admin.keys.revoke"))},
                   ADMIN + (400, 409, 413, 415), body=_json_body("ApiKeyCreate"), security=ADMIN_AUTH)},
    "/admin/keys/{key_id}": {
        "get": op("admin.keys.get", "Show a key", "admin", {200: ref("ApiKey")}, ADMIN + (404,), params=(_KEY_ID,),
                  security=ADMIN_AUTH),
        "delete": op("admin.keys.revoke", "Revoke a key", "admin", {200: ref("ApiKey")}, ADMIN + (404,), params=(_KEY_ID,),
                     security=ADMIN_AUTH)},
    "/admin/keys/{key_id}/rotate": {"post": op(
        "admin.keys.rotate", "Rotate a key's secret (the new one is in `key`, shown once)", "admin", {200: ref("ApiKey")},
        ADMIN + (404,), params=(_KEY_ID,), security=ADMIN_AUTH)},
}
