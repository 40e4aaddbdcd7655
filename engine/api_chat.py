"""POST /chat/completions: JSON, or server-sent events relayed as they arrive."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mediagate import auth, chat, history
from mediagate import endpoint as ep
from mediagate.endpoint import endpoint
from mediagate.runtime import Runtime


@endpoint("chat.completions")
async def chat_completions(request: Request, rt: Runtime) -> Response:
    body = await ep.read_json(request, rt.settings.max_body_bytes)
    if ep.dry_run(request):
        return ep.json_response(chat.estimate(rt, body, ep.sandbox_asked(request)))
    history.note_body(body)
    await auth.admit(request, rt, body, "chat", sandbox=ep.sandbox_asked(request))
    status, headers, reply = await chat.complete(rt, body, ep.sandbox_asked(request))
    history.note_result(reply)
    await auth.settle(request, rt, headers.get("X-Mediagate-Cost"))  # a stream: the estimate stands
    if isinstance(reply, (dict, list)):
        return ep.json_response(reply, status, headers)
    return StreamingResponse(reply, status, {**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                             media_type="text/event-stream")
