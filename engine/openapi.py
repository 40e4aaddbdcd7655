"""The OpenAPI 3.1 document served at /openapi.json: every route the app mounts, with request bodies built
from the compiled model schemas (the very ones that validate, mediagate.request_schema) and a response
schema for every status.

A generating endpoint's body is a `oneOf` over the models that serve it, one component per model, with a
`discriminator` on `model` (ids, aliases and provider/id forms mapped to their model's schema), so tools
and schemathesis pick a model and fill in that model's own fields, bounds and enums. The table of routes is
mediagate.openapi_paths; the response objects are mediagate.openapi_schemas.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Iterable

from starlette.routing import BaseRoute, Mount, Route

from mediagate import openapi_paths as paths
from mediagate.catalog import Catalog, Model
from mediagate.openapi_schemas import COMPONENTS, nullable, ref

TITLE = "mediagate"
VERSION = "0.1.0"
# component -> (model operation, body form): the model-driven request bodies
BODIES = {"ImageGenerationRequest": ("generate", "json"), "ImageEditRequest": ("edit", "json"),
          "ImageEditForm": ("edit", "multipart"), "VideoCreateRequest": ("video", "json"),
          "VideoCreateForm": ("video", "multipart"), "ChatCompletionRequest": ("chat", "json")}
_BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}
_IMAGE_REF = {"anyOf": [{"type": "string", "description": "a data: URL or an https URL"},
                        {"type": "object", "properties": {"image_url": {"anyOf": [{"type": "string"}, {"type": "object"}]},
                                                          "url": {"type": "string"}}}]}
FIELD_NAME_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"   # no control character in a field name (textcheck)
NO_NUL_PATTERN = "^[^\\u0000]*$"
# An unknown field is passed through as it is, at any depth, once mediagate.textcheck has found nothing a provider
# could not be sent: no control character in a name, no NUL (or lone surrogate) in a string.
PASSTHROUGH = {"anyOf": [{"type": ["number", "boolean", "null"]}, {"type": "string", "pattern": NO_NUL_PATTERN},
                         {"type": "array", "items": ref("PassthroughValue")},
                         {"type": "object", "propertyNames": {"pattern": FIELD_NAME_PATTERN},
                          "additionalProperties": ref("PassthroughValue")}]}
_CONVERTER = re.compile(r"\{([^}:]+):[^}]+\}")
_cached: tuple[Catalog, bytes] | None = None


def names(catalog: Catalog, model: Model) -> list[str]:
    """Every `model` value that resolves to this model: id, aliases, and provider/id for each of its providers."""
    own = [n for n, m in catalog.names.items() if m is model]
    return sorted(set(own) | {f"{r.provider.id}/{model.id}" for r in model.routes})


def _branch(catalog: Catalog, model: Model, operation: str, form: str) -> dict[str, Any]:
    """One model's request schema as served by `?schema=true`, with `model` narrowed to the names of this model
    and, for edits and videos, the image fields the handler takes out of the body before validating it."""
    schema = copy.deepcopy(model.validators[operation].schema)
    schema.pop("$schema", None)
    props = schema["properties"]
    for name in props:
        if name not in schema["required"] and form == "json":   # a form field is text: it has no null
            props[name] = nullable(props[name])
    props["model"] = {**props["model"], "enum": names(catalog, model)}
    schema["propertyNames"] = {"pattern": FIELD_NAME_PATTERN}
    if form == "json":
        schema["additionalProperties"] = ref("PassthroughValue")
    if operation == "edit":
        schema["required"] = [*schema["required"], "image"]
        if form == "multipart":
            props.update({"image": {**_BINARY, "description": "the image to edit (repeat as image[] for several)"},
                          "image[]": {"type": "array", "items": _BINARY}, "mask": _BINARY})
        else:
            props.update({"image": {"anyOf": [_IMAGE_REF, {"type": "array", "minItems": 1, "items": _IMAGE_REF}]},
                          "images": {"type": "array", "items": _IMAGE_REF}, "mask": _IMAGE_REF})
    if operation == "video" and form == "multipart":
        props["input_reference"] = {**_BINARY, "description": "an image to start from"}
    return schema


def _bodies(catalog: Catalog) -> dict[str, Any]:
    """The model-driven request bodies: for each, a oneOf over one component per model."""
    out: dict[str, Any] = {}
    for component, (operation, form) in BODIES.items():
        served = sorted((m for m in catalog.models.values() if operation in m.validators), key=lambda m: m.id)
        mapping: dict[str, str] = {}
        for model in served:
            name = f"{component}.{model.id}"
            out[name] = _branch(catalog, model, operation, form)
            mapping.update({n: f"#/components/schemas/{name}" for n in names(catalog, model)})
        out[component] = {"oneOf": [ref(f"{component}.{m.id}") for m in served],
                          "discriminator": {"propertyName": "model", "mapping": mapping},
                          "description": "One model's request schema, chosen by `model`; "
                                         "GET /v1/models/{id}?schema=true serves the same schema."}
    return out


def document(catalog: Catalog) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
                 "description": "OpenAI-compatible gateway for image, video and chat models. Every /v1 path is also "
                                f"served under {', '.join(paths.ALIAS_PREFIXES)} (the same operations, documented once). "
                                "Errors are the OpenAI API's error object."},
        "tags": [{"name": t} for t in ("images", "videos", "chat", "models", "operations", "admin")],
        "security": paths.GATEWAY_AUTH,
        "paths": _with_model_names(catalog, paths.PATHS),
        "components": {"securitySchemes": paths.SECURITY_SCHEMES,
                       "schemas": {**COMPONENTS, "PassthroughValue": PASSTHROUGH, **_bodies(catalog)}},
    }


def _with_model_names(catalog: Catalog, table: dict[str, Any]) -> dict[str, Any]:
    """The table, with GET /v1/models/{model_id} listing the names that resolve (any other is a 404)."""
    out = copy.deepcopy(table)
    every = sorted({n for m in catalog.models.values() for n in names(catalog, m)})
    for param in out[f"{paths.API_PREFIX}/models/{{model_id}}"]["get"]["parameters"]:
        if param["name"] == "model_id":
            param["schema"] = {"type": "string", "enum": every}
    return out


def rendered(catalog: Catalog) -> bytes:
    """The document as JSON bytes, built once per catalog (a spec reload makes a new catalog)."""
    global _cached
    if _cached is None or _cached[0] is not catalog:
        _cached = (catalog, json.dumps(document(catalog), separators=(",", ":")).encode())
    return _cached[1]


def documented_path(route_path: str) -> str | None:
    """Where a mounted path is documented: `{name:conv}` as `{name}`, an alias prefix as /v1; None if excluded."""
    if any(route_path == p or (p != "/" and route_path.startswith(p.rstrip("/") + "/")) for p in paths.UNDOCUMENTED):
        return None
    path = _CONVERTER.sub(r"{\1}", route_path)
    for alias in paths.ALIAS_PREFIXES:
        if path.startswith(alias + "/"):
            return paths.API_PREFIX + path[len(alias):]
    return path


def mounted(routes: Iterable[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """(documented path, lowercase method) of every route the app serves (HEAD is Starlette's own for GET);
    a Mount's routes under its path, unless the mount itself is UNDOCUMENTED (static files of an HTML page)."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            if documented_path(prefix + route.path) is not None:
                out |= mounted(route.routes, prefix + route.path)
            continue
        if not isinstance(route, Route):
            raise TypeError(f"{route!r}: a route kind the OpenAPI coverage check does not know")
        path = documented_path(prefix + route.path)
        if path is not None:
            out |= {(path, m.lower()) for m in (route.methods or ()) if m != "HEAD"}
    return out


def coverage(routes: Iterable[BaseRoute]) -> tuple[list[str], list[str]]:
    """(routes served but not documented, operations documented but not served)."""
    served = mounted(routes)
    listed = {(p, m) for p, ops in paths.PATHS.items() for m in ops}
    return _shown(served - listed), _shown(listed - served)


def _shown(pairs: set[tuple[str, str]]) -> list[str]:
    return sorted(f"{method.upper()} {path}" for path, method in pairs)
