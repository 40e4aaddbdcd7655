"""A small OpenAPI document of the public surface; per-model request schemas live at /v1/models?schema=true."""

from __future__ import annotations

from typing import Any

from mediagate.catalog import Catalog

_ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": ["string", "null"]},
    "code": {"type": ["string", "null"]}}}}}


def document(catalog: Catalog) -> dict[str, Any]:
    image_models = sorted(m.id for m in catalog.models.values() if m.kind == "image")
    err = {"description": "OpenAI-shaped error", "content": {"application/json": {"schema": _ERROR}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mediagate", "version": "0.1.0",
                 "description": "OpenAI-compatible gateway for image, video and chat models. Served under /v1 and /openai/v1."},
        "paths": {
            "/v1/images/generations": {"post": {
                "summary": "Generate images",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["model", "prompt"],
                    "properties": {"model": {"type": "string", "enum": image_models}, "prompt": {"type": "string"}},
                    "additionalProperties": True,
                    "description": "Each model's full schema: GET /v1/models/{id}?schema=true"}}}},
                "responses": {"200": {"description": "images"}, "400": err, "401": err, "404": err, "413": err,
                              "429": err, "502": err, "504": err}}},
            "/v1/models": {"get": {"summary": "List models", "parameters": [
                {"name": "schema", "in": "query", "schema": {"type": "boolean"}}], "responses": {"200": {"description": "list"}}}},
            "/v1/models/{model_id}": {"get": {"summary": "One model", "parameters": [
                {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "schema", "in": "query", "schema": {"type": "boolean"}}],
                "responses": {"200": {"description": "model"}, "404": err}}},
        },
    }
