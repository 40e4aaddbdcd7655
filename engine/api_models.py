"""GET /models and /models/{id}: OpenAI model objects; `?schema=true` adds the compiled request schemas."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mediagate import endpoint as ep
from mediagate.endpoint import endpoint
from mediagate.runtime import Runtime

def _wants_schema(request: Request) -> bool:
    return ep.flag(request.query_params.get("schema"), "schema")


@endpoint("models.list")
async def list_models(request: Request, rt: Runtime) -> Response:
    created = request.app.state.started
    data = []
    for model in sorted(rt.catalog.models.values(), key=lambda m: m.id):
        obj = model.to_openai(created)
        if _wants_schema(request):
            obj["schemas"] = model.schemas()
        data.append(obj)
    return ep.json_response({"object": "list", "data": data})


@endpoint("models.get")
async def get_model(request: Request, rt: Runtime) -> Response:
    model, _ = rt.catalog.resolve(request.path_params["model_id"])
    obj = model.to_openai(request.app.state.started)
    if "lifecycle" in model.spec:
        obj["lifecycle"] = model.spec["lifecycle"]
    if _wants_schema(request):
        obj["schemas"] = model.schemas()
    return ep.json_response(obj)
