"""The OpenAPI document's response objects: what each endpoint answers, as JSON Schema (OpenAPI 3.1).

These describe the objects built in mediagate.pipeline (images), mediagate.videos, mediagate.catalog (models),
mediagate.pricing (dry runs), mediagate.keys (admin) and mediagate.errors; schemathesis checks every answer
against them (tests/test_schemathesis.py), so a field added there and not here fails a test.
"""

from __future__ import annotations

from typing import Any

from mediagate.keys import MAX_BUDGET_USD, PERIODS

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more: Any) -> Schema:
    return {"type": [kind, "null"], **more}


def nullable(prop: Schema) -> Schema:
    """An optional request field also taking JSON null: the gateway reads null as "not given" (what the
    OpenAI SDKs send for a parameter left as None; RequestValidator.without_nulls), so the document admits it too."""
    if isinstance(prop.get("type"), str):
        return {**prop, "type": [prop["type"], "null"]}
    if "enum" in prop:
        return {**prop, "enum": [*prop["enum"], None]}
    if "anyOf" in prop:
        return {**prop, "anyOf": [*prop["anyOf"], {"type": "null"}]}
    return {"anyOf": [prop, {"type": "null"}]}


_STR, _INT, _NUM, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}

ERROR: Schema = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "description": "Every failure, whatever its cause: the OpenAI API's error object. No stack trace, secret or raw upstream body.",
    "properties": {"error": {"type": "object", "required": ["message", "type", "param", "code"], "additionalProperties": False,
                             "properties": {"message": _STR, "type": _STR, "param": _nullable("string"),
                                            "code": _nullable("string")}}}}

ADJUSTMENT: Schema = {
    "type": "object", "required": ["param", "requested", "applied", "reason"],
    "description": "A value the gateway changed on the caller's behalf (never silently).",
    "properties": {"param": _STR, "requested": {}, "applied": {}, "reason": _STR}}

ATTEMPT: Schema = {
    "type": "object", "required": ["provider", "outcome", "sent", "may_be_billed"],
    "description": "One try at one provider route, in the order tried.",
    "properties": {
        "provider": _STR, "upstream_model": _nullable("string"), "outcome": {"type": "string", "description": "ok, skipped, or a normalized error code"},
        "latency_ms": _NUM, "sent": _BOOL, "may_be_billed": _BOOL, "cost": _NUM, "cost_currency": _STR,
        "idempotent_retry": _BOOL, "sandbox": _BOOL, "cooldown": _BOOL, "reason": _STR, "adjustments": {"type": "array", "items": ref("Adjustment")},
        "error": {"type": "object", "required": ["code", "message", "retryable"],
                  "properties": {"code": _STR, "message": _STR, "retryable": _BOOL, "upstream_status": _INT}}}}

PRICE_COMPONENT: Schema = {
    "type": "object", "required": ["type", "metric", "quantity", "billable_quantity", "unit_price", "total_cost"],
    "properties": {"type": _STR, "metric": _STR, "quantity": _NUM, "billable_quantity": _NUM, "unit_price": _NUM,
                   "total_cost": _NUM}}

ESTIMATE: Schema = {
    "type": "object", "required": ["estimated", "model", "provider", "total_cost_micros", "currency", "components"],
    "description": "`?dryRun=true`: the request validated, routed and priced; nothing was sent to a provider.",
    "properties": {"estimated": {"const": True}, "model": _STR, "provider": _STR, "executed_model": _nullable("string"),
                   "total_cost_micros": _nullable("integer", description="null: this route has no price (unknown, not free)"),
                   "currency": _nullable("string"), "components": {"type": "array", "items": ref("PriceComponent")},
                   "adjustments": {"type": "array", "items": ref("Adjustment")},
                   "notes": {"type": "array", "items": _STR}}}

IMAGE_RESPONSE: Schema = {
    "type": "object", "required": ["created", "size", "data", "metadata"],
    "properties": {
        "created": _INT, "size": {"type": "string", "pattern": "^[1-9][0-9]*x[1-9][0-9]*$", "description": "measured from the image made"},
        "output_format": _STR,
        "data": {"type": "array", "minItems": 1, "items": {
            "type": "object", "properties": {"url": {"type": "string", "description": "signed, expiring gateway URL"},
                                             "b64_json": _STR, "revised_prompt": _STR}}},
        "metadata": {"type": "object", "required": ["model", "provider", "attempts", "adjustments", "cost", "cost_currency"],
                     "properties": {"model": _STR, "executed_model": _nullable("string"), "provider": _STR,
                                    "attempts": {"type": "array", "items": ref("Attempt")},
                                    "adjustments": {"type": "array", "items": ref("Adjustment")},
                                    "cost": _nullable("number", description="every attempt that may have been billed; null: not priced"),
                                    "cost_currency": _nullable("string"),
                                    "upstream": {"type": "array", "items": {"type": "object"}}}}}}

VIDEO: Schema = {
    "type": "object", "required": ["id", "object", "model", "status", "progress", "created_at"],
    "properties": {
        "id": _STR, "object": {"const": "video"}, "model": _STR,
        "status": {"enum": ["queued", "in_progress", "completed", "failed"]}, "progress": {"type": "number", "minimum": 0, "maximum": 100},
        "created_at": _INT, "completed_at": _nullable("integer"), "expires_at": _nullable("integer"),
        "prompt": _nullable("string"), "seconds": _nullable("string"), "size": _nullable("string"),
        "error": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"code": _nullable("string"), "message": _STR}}]},
        "remixed_from_video_id": _nullable("string"),
        "metadata": {"type": "object", "properties": {
            "provider": _nullable("string"), "executed_model": _nullable("string"),
            "attempts": {"type": "array", "items": ref("Attempt")}, "adjustments": {"type": "array", "items": ref("Adjustment")},
            "cost": _nullable("number"), "cost_currency": _nullable("string"), "outputs": _INT,
            "prompt_truncated": _BOOL, "prompt_chars": _INT}}}}

VIDEO_LIST: Schema = {
    "type": "object", "required": ["object", "data", "first_id", "last_id", "has_more"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Video")},
                   "first_id": _nullable("string"), "last_id": _nullable("string"), "has_more": _BOOL}}

VIDEO_DELETED: Schema = {
    "type": "object", "required": ["id", "object", "deleted"],
    "properties": {"id": _STR, "object": {"const": "video.deleted"}, "deleted": {"const": True}}}

MODEL: Schema = {
    "type": "object", "required": ["id", "object", "created", "owned_by", "kind", "operations"],
    "properties": {
        "id": _STR, "object": {"const": "model"}, "created": _INT, "owned_by": _STR, "name": _STR,
        "kind": {"enum": ["image", "video", "chat"]}, "operations": {"type": "array", "items": _STR},
        "aliases": {"type": "array", "items": _STR}, "providers": {"type": "array", "items": _STR},
        "lifecycle": {"type": ["object", "null"]},
        "routes": {"type": "array", "description": "with ?detail=true: each route, its provider's state", "items": {"type": "object"}},
        "price": {"type": ["object", "null"], "description": "with ?detail=true: lowest and highest unit price per metric"},
        "schemas": {"type": "object", "description": "with ?schema=true: the compiled request schema of each operation, "
                    "the same that validates requests", "additionalProperties": {"type": "object"}}}}

MODEL_LIST: Schema = {
    "type": "object", "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}}}

CHAT_COMPLETION: Schema = {
    "type": "object", "description": "The provider's chat completion, relayed (the OpenAI API's chat.completion object).",
    "properties": {"id": _STR, "object": _STR, "choices": {"type": "array"}, "usage": {"type": "object"}}}

HEALTH: Schema = {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}

READY: Schema = {
    "type": "object", "required": ["status", "models", "providers", "state_store"],
    "properties": {"status": {"enum": ["ready", "degraded"]}, "models": _INT, "providers": _INT, "sandbox": _BOOL,
                   "state_store": {"type": "object", "required": ["backend", "ok"],
                                   "properties": {"backend": _STR, "ok": _BOOL, "error": _STR}},
                   "provider_health": {"type": "object"}, "worker_pid": _INT}}

_KEY_LIMITS = {"rpm": {"type": "integer", "minimum": 1}, "images_per_min": {"type": "integer", "minimum": 1},
               "video_seconds_per_min": {"type": "integer", "minimum": 1}, "max_concurrent_jobs": {"type": "integer", "minimum": 1}}

API_KEY: Schema = {
    "type": "object", "required": ["id", "object", "name", "team", "prefix", "created_at"],
    "description": "A gateway key as the admin API shows it: never its hash; the secret only when created or rotated.",
    "properties": {
        "id": _STR, "object": {"const": "api_key"}, "name": _STR, "team": _STR, "prefix": _STR,
        "models": {"type": "array", "items": _STR}, "endpoints": {"type": "array", "items": _STR},
        "limits": {"type": "object", "properties": _KEY_LIMITS}, "budget": _nullable("number"),
        "budget_period": {"enum": ["day", "month", None]}, "expires_at": _nullable("number"), "created_at": _INT,
        "revoked_at": _nullable("number"), "rotated_at": _INT, "revoked": _BOOL,
        "store_payloads": {"type": "boolean", "description": "its requests' prompts and outputs are kept in the request history"},
        "key": {"type": "string", "description": "the secret: shown once, by create and rotate"}}}

API_KEY_LIST: Schema = {
    "type": "object", "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ref("ApiKey")}}}

_NAME = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S"}
_GLOBS = {"type": "array", "items": {"type": "string", "minLength": 1}}

API_KEY_CREATE: Schema = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "description": "The same fields as `mediagate keys create`.",
    "if": {"required": ["budget_period"], "properties": {"budget_period": {"type": "string"}}},   # null: not given
    "then": {"required": ["budget"], "properties": {"budget": {"type": "number"}}},
    "properties": {"name": _NAME, **{k: nullable(v) for k, v in {
        "team": {"type": "string", "minLength": 1, "maxLength": 100}, "models": _GLOBS, "endpoints": _GLOBS, **_KEY_LIMITS,
        "budget": {"type": "number", "minimum": 0, "maximum": MAX_BUDGET_USD, "description": "USD per budget_period"},
        "budget_period": {"enum": list(PERIODS), "description": "only with budget (default month)"},
        "store_payloads": {"type": "boolean", "description": "keep this key's prompts and outputs in the request history"},
        "expires": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}, {"const": ""}],
                    "description": "ISO 8601 date or time (UTC when no zone is given); empty: never"}}.items()}}}

_SUMS: dict[str, Schema] = {
    "requests": _INT, "images": _INT, "video_seconds": _NUM, "cost": _nullable("number"), "cost_currency": _nullable("string"),
    "costs": {"type": "object", "additionalProperties": _NUM, "description": "per currency, when a group mixes currencies"}}
_SUMS_REQUIRED = ["requests", "images", "video_seconds", "cost", "cost_currency"]

USAGE: Schema = {
    "type": "object", "required": ["object", "start", "end", "group_by", "data", "total"],
    "description": "Sums over whole UTC days, per the `group_by` fields; equal to the sum of the responses' metadata.cost.",
    "properties": {
        "object": {"const": "usage"}, "start": {"type": "string", "format": "date"}, "end": {"type": "string", "format": "date"},
        "team": _nullable("string"), "key": _nullable("string"), "group_by": {"type": "array", "items": _STR},
        "data": {"type": "array", "items": {"type": "object", "required": _SUMS_REQUIRED, "properties": {
            **_SUMS, "day": _nullable("string"), "team": _nullable("string"), "key": _nullable("string"),
            "model": _nullable("string"), "provider": _nullable("string")}}},
        "total": {"type": "object", "required": _SUMS_REQUIRED, "properties": _SUMS}}}

REQUEST_RECORD: Schema = {
    "type": "object", "required": ["id", "object", "created_at", "team", "endpoint", "status"],
    "description": "One generating request as the history keeps it: never its prompt or images unless the key opted in.",
    "properties": {
        "id": _STR, "object": {"const": "request"}, "created_at": _NUM, "request_id": _STR,
        "finished_at": _nullable("number", description="when a video job ended (null while it runs)"),
        "key": _nullable("string"), "key_id": _nullable("string"), "team": _STR, "endpoint": _STR,
        "model": _nullable("string"), "provider": _nullable("string"),
        "status": {"enum": ["succeeded", "failed", "pending", "cancelled"]}, "http_status": _nullable("integer"),
        "error_code": _nullable("string"), "cost": _nullable("number"), "cost_currency": _nullable("string"),
        "latency_ms": _nullable("number"), "attempts": {"type": "array", "items": {"type": "object"}},
        "adjustments": {"type": "array", "items": {"type": "object"}}, "images": _nullable("integer"),
        "video_seconds": _nullable("number"),
        "video_id": _nullable("string"), "payloads_stored": _BOOL,
        "payloads": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"request": {"type": "object"},
                                                                               "response": {"type": "object"}}}]}}}

REQUEST_LIST: Schema = {
    "type": "object", "required": ["object", "data", "has_more", "next_cursor"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ref("RequestRecord")},
                   "has_more": _BOOL, "next_cursor": _nullable("string")}}

PAYLOADS_DELETED: Schema = {
    "type": "object", "required": ["id", "object", "deleted"],
    "properties": {"id": _STR, "object": {"const": "request.payloads.deleted"}, "deleted": {"const": True}}}

PROVIDER: Schema = {
    "type": "object", "required": ["id", "object", "slug", "configured", "sandboxed", "cooling_down", "models"],
    "properties": {
        "id": _STR, "object": {"const": "provider"}, "slug": _STR, "name": _STR, "description": _nullable("string"),
        "configured": _BOOL, "missing_env": {"type": "array", "items": _STR}, "sandboxed": _BOOL, "cooling_down": _BOOL,
        "cooldown_remaining_s": _NUM, "consecutive_failures": _INT,
        "models": {"type": "array", "items": {"type": "object", "required": ["id"],
                                              "properties": {"id": _STR, "upstream_model": _STR}}}}}

PROVIDER_LIST: Schema = {
    "type": "object", "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Provider")}}}

EXPLAIN_REQUEST: Schema = {
    "type": "object", "required": ["request"],
    "description": "What `mediagate explain` takes: the request to explain (with its `model`), the operation, placeholder input sizes.",
    "properties": {"request": {"type": "object", "required": ["model"], "properties": {"model": _STR}},
                   "operation": {"type": ["string", "null"]}, "images": {"type": ["array", "null"], "items": _STR},
                   "mask": _BOOL}}

EXPLAIN: Schema = {
    "type": "object", "required": ["model", "routes"],
    "description": "Per route, the exact upstream request the engine would send (secrets as <NAME>), and every adjustment.",
    "properties": {"model": _STR, "shape": {"type": "object"}, "adjustments": {"type": "array", "items": ref("Adjustment")},
                   "lifecycle": {"type": "object"}, "inputs": {"type": "object"},
                   "routes": {"type": "array", "items": {"type": "object", "required": ["provider", "request"],
                                                         "properties": {"provider": _STR, "request": {"type": "object"}}}}}}

COMPONENTS: dict[str, Schema] = {
    "Usage": USAGE, "RequestRecord": REQUEST_RECORD, "RequestList": REQUEST_LIST, "PayloadsDeleted": PAYLOADS_DELETED,
    "Provider": PROVIDER, "ProviderList": PROVIDER_LIST, "ExplainRequest": EXPLAIN_REQUEST, "Explain": EXPLAIN,
    "Error": ERROR, "Adjustment": ADJUSTMENT, "Attempt": ATTEMPT, "PriceComponent": PRICE_COMPONENT,
    "DryRunEstimate": ESTIMATE, "ImageResponse": IMAGE_RESPONSE, "Video": VIDEO, "VideoList": VIDEO_LIST,
    "VideoDeleted": VIDEO_DELETED, "Model": MODEL, "ModelList": MODEL_LIST, "ChatCompletion": CHAT_COMPLETION,
    "Health": HEALTH, "Ready": READY, "ApiKey": API_KEY, "ApiKeyList": API_KEY_LIST, "ApiKeyCreate": API_KEY_CREATE,
}
