"""POST /images/generations and /images/edits: read and bound the body, admit, call the pipeline, shape the answer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mediagate import auth, forms, history, origin, pipeline
from mediagate import endpoint as ep
from mediagate.endpoint import endpoint
from mediagate.runtime import Runtime


@endpoint("images.generations")
async def images_generations(request: Request, rt: Runtime) -> Response:
    body = await ep.read_json(request, rt.settings.max_body_bytes)
    sandbox = ep.sandbox_asked(request)
    if ep.dry_run(request):
        return ep.json_response(await pipeline.estimate(rt, body, sandbox))
    history.note_body(body)
    await auth.admit(request, rt, body, "generate", sandbox=sandbox)
    result = await ep.unless_disconnected(request, pipeline.generate(rt, body, origin.base_url(request, rt.settings), sandbox))
    history.note_result(result.body)
    await auth.settle(request, rt, result.body["metadata"]["cost"])
    return ep.json_response(result.body, 200, result.headers)


@endpoint("images.edits")
async def images_edits(request: Request, rt: Runtime) -> Response:
    """Multipart (the SDKs' way: image / image[] / mask parts) or JSON with data: or https image URLs."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, images, mask = await forms.read_edit_form(request, rt)
    else:
        body = await ep.read_json(request, rt.settings.max_body_bytes, multipart_ok=True)
        body, images, mask = forms.split_edit_json(body)
    sandbox = ep.sandbox_asked(request)
    if ep.dry_run(request):
        return ep.json_response(await pipeline.estimate(rt, body, sandbox, "edit", images, mask))
    history.note_body(body)
    await auth.admit(request, rt, body, "edit", images, mask, sandbox)
    work = pipeline.generate(rt, body, origin.base_url(request, rt.settings), sandbox, "edit", images, mask)
    result = await ep.unless_disconnected(request, work)
    history.note_result(result.body)
    await auth.settle(request, rt, result.body["metadata"]["cost"])
    return ep.json_response(result.body, 200, result.headers)
