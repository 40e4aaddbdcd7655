"""The /videos endpoints: create (JSON or multipart, 202), read, list, delete and stream the content."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mediagate import auth, errors, forms, history, lifecycle, pipeline, videos
from mediagate import endpoint as ep
from mediagate.endpoint import endpoint
from mediagate.errors import GatewayError
from mediagate.media import MediaGone
from mediagate.runtime import Runtime


@endpoint("videos.create")
async def videos_create(request: Request, rt: Runtime) -> Response:
    """JSON, or multipart with an input_reference file part; 202 with a queued video object."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, refs, mask = await forms.read_edit_form(request, rt, operation="video", image_keys=("input_reference",))
        reference = forms.video_reference_parts(refs, mask)
    else:
        body, reference = forms.video_reference_json(await ep.read_json(request, rt.settings.max_body_bytes, multipart_ok=True))
    if ep.dry_run(request):
        return ep.json_response(await pipeline.estimate(rt, body, ep.sandbox_asked(request), "video"))
    history.note_body(body)
    await auth.admit(request, rt, body, "video", sandbox=ep.sandbox_asked(request))
    status, video = await videos.create(rt, body, reference, ep.sandbox_asked(request), auth.job_fields(request))
    history.note_result(video)
    headers: dict[str, str] = {}
    if status == 202:
        history.note(video_id=video["id"])
        auth.job_kept(request)
        model = rt.catalog.models.get(video["model"])
        headers = lifecycle.announce(model) if model is not None else {}
    else:  # an existing job answered (idempotency key): nothing new to pay for
        await auth.release(request, rt)
    return ep.json_response(video, status, headers)


@endpoint("videos.get")
async def videos_get(request: Request, rt: Runtime) -> Response:
    return ep.json_response(videos.public(await videos.get(rt, request.path_params["video_id"], auth.team_of(request))))


@endpoint("videos.list")
async def videos_list(request: Request, rt: Runtime) -> Response:
    q = request.query_params
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        raise errors.invalid_request("'limit' must be a whole number.", "limit") from None
    return ep.json_response(await videos.page(rt, q.get("after"), limit, q.get("order", "desc"), auth.team_of(request)))


@endpoint("videos.delete")
async def videos_delete(request: Request, rt: Runtime) -> Response:
    return ep.json_response(await videos.delete(rt, request.path_params["video_id"], auth.team_of(request)))


@endpoint("videos.content")
async def videos_content(request: Request, rt: Runtime) -> Response:
    job = await videos.get(rt, request.path_params["video_id"], auth.team_of(request))
    variant = request.query_params.get("variant", "video")
    if variant != "video":
        raise errors.invalid_request(f"variant '{variant[:40]}' is not available; this gateway serves the video itself.",
                                     "variant", "unsupported_value")
    if job["status"] != "completed":
        raise GatewayError(409, f"Video '{job['id']}' is {job['status']}; its content exists once it is completed.",
                           "invalid_request_error", "video_not_ready")
    try:
        index = int(request.query_params.get("index", "0"))
        output = job.get("outputs", [])[index]
    except (ValueError, IndexError):
        raise errors.invalid_request("'index' names no output of this video.", "index") from None
    try:
        opened = await rt.videos_media.open_own(output["name"])
    except MediaGone:
        raise GatewayError(410, "This video's file has expired and was deleted.", "invalid_request_error", "media_expired") from None
    return ep.file_response(opened, output.get("mime", "video/mp4"))
