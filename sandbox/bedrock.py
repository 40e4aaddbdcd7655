"""Amazon Bedrock runtime (``/bedrock/...``) and the S3 bucket its async jobs write to (``/bedrock-s3/...``).

Wire shapes from botocore's service model ``bedrock-runtime`` 2023-09-30 (rest-json, SigV4 signing name
``bedrock``): ``POST /model/{modelId}/invoke`` (body = the model's own JSON), ``POST /async-invoke``
(StartAsyncInvoke: ``modelId``, ``modelInput``, ``outputDataConfig.s3OutputDataConfig.s3Uri``,
``clientRequestToken``) -> ``{"invocationArn"}``, ``GET /async-invoke/{invocationArn}`` -> ``status``
InProgress | Completed | Failed, ``failureMessage``, ``outputDataConfig``, ``submitTime``, ``endTime``.
Errors: the type in the ``x-amzn-ErrorType`` header and a ``{"message"}`` body (ValidationException 400,
AccessDeniedException 403, ResourceNotFoundException 404, ThrottlingException 429, InternalServerException
500, ServiceUnavailableException 503). Every request must carry a valid SigV4 signature (access key
``sandbox``, secret ``sandbox``, as the gateway's sandbox secrets are), checked over the raw path, query,
signed headers and body received: a bad one gets AWS's 403 InvalidSignatureException.

Model bodies (AWS Bedrock user guide, "Inference parameters"): Amazon Nova Canvas and Titan Image
Generator v2 ``{"taskType": "TEXT_IMAGE", "textToImageParams": {"text", "negativeText"}, "imageGenerationConfig":
{"width", "height", "numberOfImages", "quality", "cfgScale", "seed"}}`` -> ``{"images": [b64 PNG]}``;
Stability models ``{"prompt", "mode": "text-to-image", "aspect_ratio", "output_format", "seed",
"negative_prompt"}`` -> ``{"images", "seeds", "finish_reasons"}``; Nova Reel (async only) ``{"taskType":
"TEXT_VIDEO" | "MULTI_SHOT_AUTOMATED", ..., "videoGenerationConfig": {"durationSeconds", "fps", "dimension",
"seed"}}``, its MP4 written to ``{s3Uri}/{invocation id}/output.mp4``. The simulator's clip is at most
``video.MAX_SECONDS`` long.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import io
import json
import random
import re
import time
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from PIL import Image

from . import faults, jobs, render, stability, video
from .state import JSON_BODY, get_state

PREFIX = "/bedrock"
S3_PREFIX = "/bedrock-s3"
REGION = "us-east-1"
ACCOUNT = "123456789012"
SECRETS = {"sandbox": "sandbox"}   # access key id -> secret access key
API_KEYS = frozenset({"sandbox"})  # Bedrock API keys (Authorization: Bearer); the real error text is UNVERIFIED
MAX_SKEW_S = 15 * 60              # AWS refuses a signature dated more than 15 minutes away
BEDROCK_KINDS = faults.COMMON_KINDS | {"fail"}

NOVA_CANVAS = "amazon.nova-canvas-v1:0"
TITAN_V2 = "amazon.titan-image-generator-v2:0"
NOVA_REEL = ("amazon.nova-reel-v1:0", "amazon.nova-reel-v1:1")
STABILITY = ("stability.stable-image-ultra-v1:1", "stability.sd3-5-large-v1:0", "stability.stable-image-core-v1:1")
# Titan Image Generator v2's fixed sizes (AWS: "Titan Image Generator G1 v2" image sizes table)
TITAN_SIZES = frozenset({(1024, 1024), (768, 768), (512, 512), (768, 1152), (384, 576), (1152, 768), (576, 384),
                         (768, 1280), (384, 640), (1280, 768), (640, 384), (896, 1152), (448, 576), (1152, 896),
                         (576, 448), (768, 1408), (384, 704), (1408, 768), (704, 384), (640, 1408), (320, 704),
                         (1408, 640), (704, 320), (1152, 640), (1173, 640)})
NOVA_MAX_PIXELS = 4_194_304 - 1   # "less than 4,194,304" (2048 x 2048)
NOVA_SEED_MAX = 858_993_459
TITAN_SEED_MAX = 2_147_483_646
REEL_DURATIONS = frozenset(range(12, 121, 6))   # MULTI_SHOT_AUTOMATED (v1:1); TEXT_VIDEO is 6 s
BLOCKED = "This request has been blocked by our content filters."
OUTPUT_BLOCKED = "The generated image has been blocked by our content filters."


def aws_error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status,
                             headers={"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                                      "x-amzn-RequestId": jobs.new_id(32)})


# -- SigV4, checked over what arrived ------------------------------------------------------------

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?"
                   r"SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})")


def _canonical_query(raw: str) -> str:
    pairs = []
    for part in raw.split("&") if raw else []:
        k, _, v = part.partition("=")
        pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


async def check_signature(request: web.Request, service: str) -> web.Response | None:
    """None when the request is signed right for ``service``; else AWS's own 403."""
    header = request.headers.get("Authorization", "")
    if not header:
        return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    if header.startswith("Bearer ") and service == "bedrock":   # a Bedrock API key (the service's httpBearerAuth)
        if header[len("Bearer "):] in API_KEYS:
            return None
        return aws_error(403, "AccessDeniedException", "Invalid API Key format: Must start with pre-defined prefix")
    m = _AUTH.fullmatch(header.strip())
    if m is None:
        return aws_error(403, "IncompleteSignatureException", "Authorization header requires 'Credential', "
                         "'Signature' and 'SignedHeaders' parameters.")
    key_id, date, region, signed_service, names, signature = m.groups()
    if key_id not in SECRETS:
        return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if signed_service != service:
        return aws_error(403, "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'.")
    amz_date = request.headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return aws_error(403, "IncompleteSignatureException", "Authorization header requires existence of either a "
                         "'X-Amz-Date' or a 'Date' header.")
    if abs(time.time() - when.timestamp()) > MAX_SKEW_S or amz_date[:8] != date:
        return aws_error(403, "InvalidSignatureException", f"Signature expired: {amz_date} is now earlier than the "
                         "allowed window.")
    body = await request.read()
    payload = hashlib.sha256(body).hexdigest()
    if service == "s3" and request.headers.get("x-amz-content-sha256") not in (payload, "UNSIGNED-PAYLOAD"):
        return aws_error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match "
                         "what was computed.")
    raw_path, _, raw_query = request.raw_path.partition("?")
    path = raw_path if service == "s3" else quote(raw_path, safe="/-_.~")
    headers = [(n, " ".join(request.headers.get(n, "").split())) for n in names.split(";")]
    canonical = "\n".join([request.method, path, _canonical_query(raw_query), "".join(f"{n}:{v}\n" for n, v in headers),
                           names, request.headers.get("x-amz-content-sha256", payload) if service == "s3" else payload])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + SECRETS[key_id]).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest(), signature):
        return aws_error(403, "InvalidSignatureException", "The request signature we calculated does not match the "
                         "signature you provided. Check your AWS Secret Access Key and signing method. Consult the "
                         "service documentation for details.")
    if "host" not in names.split(";"):
        return aws_error(403, "InvalidSignatureException", "'Host' must be a signed header.")
    return None


# -- InvokeModel -----------------------------------------------------------------------------------

def _json_body(request: web.Request) -> Any:
    parsed = request.get(JSON_BODY)
    return parsed[1] if parsed and parsed[0] else None


async def invoke(request: web.Request) -> web.StreamResponse:
    """``POST /bedrock/model/{modelId}/invoke``."""
    denied = await check_signature(request, "bedrock")
    if denied is not None:
        return denied
    model = request.match_info["model"]
    body = _json_body(request)
    if not isinstance(body, dict):
        return aws_error(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
    if model in (NOVA_CANVAS, TITAN_V2):
        return await _amazon_image(request, model, body)
    if model in STABILITY:
        return await _stability(request, model, body)
    if model in NOVA_REEL:
        return aws_error(400, "ValidationException", "The provided model doesn't support on-demand throughput.")
    return aws_error(404, "ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier.")


async def _fault(request: web.Request, prompt: str) -> web.Response | str | None:
    kind = await faults.resolve(get_state(request), "bedrock", prompt, faults.COMMON_KINDS)
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "429":
        return aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
    if kind == "500":
        return aws_error(500, "InternalServerException", "The server encountered an internal error while processing the request.")
    if kind == "503":
        return aws_error(503, "ServiceUnavailableException", "Bedrock is unable to process your request.")
    if kind == "prompt-blocked":
        return aws_error(400, "ValidationException", BLOCKED)
    return kind


async def _amazon_image(request: web.Request, model: str, body: dict[str, Any]) -> web.StreamResponse:
    nova = model == NOVA_CANVAS
    task = body.get("taskType")
    if task not in ("TEXT_IMAGE", "IMAGE_VARIATION", "INPAINTING"):
        return aws_error(400, "ValidationException", f"Unsupported taskType: {task!r}")
    field = {"TEXT_IMAGE": "textToImageParams", "IMAGE_VARIATION": "imageVariationParams",
             "INPAINTING": "inPaintingParams"}[task]
    params = body.get(field) or {}
    text = params.get("text")
    max_chars = 1024 if nova else 512
    if not isinstance(text, str) or not 1 <= len(text) <= max_chars:
        return aws_error(400, "ValidationException", f"1 validation error detected: Value at '{field}.text' "
                         f"failed to satisfy constraint: Member must have length between 1 and {max_chars}")
    sources: list[bytes] = []
    edit_mask: bytes | None = None
    if task == "INPAINTING":
        try:
            image = _png_or_jpeg(params.get("image"))
            black_edit = _png_or_jpeg(params.get("maskImage"))
        except ValueError as exc:
            return aws_error(400, "ValidationException", f"inPaintingParams: {exc}")
        if render.image_size(image) != render.image_size(black_edit):
            return aws_error(400, "ValidationException", "inPaintingParams: maskImage must be the size of image")
        sources.append(image)
        edit_mask = _alpha_mask(black_edit)
    if task == "IMAGE_VARIATION":
        refs = params.get("images")
        if not isinstance(refs, list) or not 1 <= len(refs) <= 5:
            return aws_error(400, "ValidationException", "imageVariationParams.images must hold 1 to 5 images")
        for ref in refs:
            try:
                data = base64.b64decode(ref, validate=True)
            except (ValueError, TypeError):
                return aws_error(400, "ValidationException", "imageVariationParams.images: invalid base64")
            if not data.startswith((b"\x89PNG", b"\xff\xd8")):
                return aws_error(400, "ValidationException", "imageVariationParams.images: only PNG and JPEG images are supported")
            sources.append(data)
        strength = params.get("similarityStrength", 0.7)
        if not isinstance(strength, (int, float)) or not 0.2 <= strength <= 1.0:
            return aws_error(400, "ValidationException", "similarityStrength must be between 0.2 and 1.0")
    fault = await _fault(request, text)
    if isinstance(fault, web.StreamResponse):
        return fault
    cfg = body.get("imageGenerationConfig") or {}
    width, height = int(cfg.get("width", 1024)), int(cfg.get("height", 1024))
    count = cfg.get("numberOfImages", 1)
    problem = None
    if nova and not (320 <= width <= 4096 and 320 <= height <= 4096 and width % 16 == 0 and height % 16 == 0
                     and width * height <= NOVA_MAX_PIXELS and 1 / 4 <= width / height <= 4):
        problem = (f"Invalid image dimensions {width}x{height}: each side 320-4096 and divisible by 16, aspect ratio "
                   "between 1:4 and 4:1, fewer than 4,194,304 pixels")
    elif not nova and (width, height) not in TITAN_SIZES:
        problem = f"Invalid image dimensions {width}x{height}: not a supported Titan Image Generator size"
    elif not isinstance(count, int) or not 1 <= count <= 5:
        problem = "numberOfImages must be between 1 and 5"
    elif cfg.get("quality", "standard") not in ("standard", "premium"):
        problem = "quality must be standard or premium"
    elif not 1.1 <= float(cfg.get("cfgScale", 6.5 if nova else 8.0)) <= 10:
        problem = "cfgScale must be between 1.1 and 10"
    elif not 0 <= int(cfg.get("seed", 0)) <= (NOVA_SEED_MAX if nova else TITAN_SEED_MAX):
        problem = f"seed must be between 0 and {NOVA_SEED_MAX if nova else TITAN_SEED_MAX}"
    if problem:
        return aws_error(400, "ValidationException", problem)
    if fault == "safety":
        return aws_error(400, "ValidationException", OUTPUT_BLOCKED)
    if fault == "malformed":
        return faults.malformed_response({"images": ["x" * 64]})
    if fault == "noimage":
        return web.json_response({"images": [], "error": None})
    label = faults.strip_directives(text)
    images = []
    for i in range(count):
        caption = f"{label} #{i + 1}" if count > 1 else label
        data = await (render.render_edit_async(sources[0], width, height, caption, "png", mask=edit_mask) if sources
                      else render.render_async(width, height, caption, "png"))
        images.append(base64.b64encode(data).decode())
    return web.json_response({"images": images, "error": None})


async def _stability(request: web.Request, model: str, body: dict[str, Any]) -> web.StreamResponse:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= stability.MAX_PROMPT_CHARS:
        return aws_error(400, "ValidationException", f"prompt: must be 1 to {stability.MAX_PROMPT_CHARS} characters")
    fault = await _fault(request, prompt)
    if isinstance(fault, web.StreamResponse):
        return fault
    ratio = body.get("aspect_ratio", "1:1")
    fmt = body.get("output_format", "png")
    if body.get("mode", "text-to-image") != "text-to-image":
        return aws_error(400, "ValidationException", "mode: only text-to-image is simulated")
    if ratio not in stability.SIZES:
        return aws_error(400, "ValidationException", f"aspect_ratio: must be one of {', '.join(stability.SIZES)}")
    if fmt not in ("png", "jpeg"):
        return aws_error(400, "ValidationException", "output_format: must be one of png, jpeg")
    seed = body.get("seed", 0)
    if not isinstance(seed, int) or not 0 <= seed <= stability.MAX_SEED:
        return aws_error(400, "ValidationException", f"seed: must be between 0 and {stability.MAX_SEED}")
    if fault == "malformed":
        return faults.malformed_response({"images": ["x" * 64]})
    if fault == "noimage":
        return web.json_response({"seeds": [], "finish_reasons": [], "images": []})
    width, height = stability.SIZES[ratio]
    filtered = fault == "safety"
    data = await (render.render_black_async(width, height, fmt) if filtered
                  else render.render_async(width, height, faults.strip_directives(prompt), fmt))
    return web.json_response({"seeds": [seed or random.randint(1, stability.MAX_SEED)],
                              "finish_reasons": ["Filter reason: output image" if filtered else None],
                              "images": [base64.b64encode(data).decode()]})


def _png_or_jpeg(value: Any) -> bytes:
    try:
        data = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except ValueError:
        raise ValueError("invalid base64") from None
    if not data.startswith((b"\x89PNG", b"\xff\xd8")):
        raise ValueError("only PNG and JPEG images are supported")
    return data


def _alpha_mask(black_edit: bytes) -> bytes:
    """Amazon's mask (black = edit) as the renderer's (transparent = edit)."""
    with Image.open(io.BytesIO(black_edit)) as im:
        rgba = Image.new("RGBA", im.size, (255, 255, 255, 255))
        rgba.putalpha(im.convert("L"))
        buf = io.BytesIO()
        rgba.save(buf, "PNG")
        return buf.getvalue()


# -- StartAsyncInvoke / GetAsyncInvoke (Nova Reel) -------------------------------------------------

def _arn(invocation_id: str) -> str:
    return f"arn:aws:bedrock:{REGION}:{ACCOUNT}:async-invoke/{invocation_id}"


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def start_async(request: web.Request) -> web.StreamResponse:
    """``POST /bedrock/async-invoke``."""
    denied = await check_signature(request, "bedrock")
    if denied is not None:
        return denied
    body = _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("modelInput"), dict):
        return aws_error(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
    model = body.get("modelId")
    if model not in NOVA_REEL:
        return aws_error(400, "ValidationException", f"The provided model identifier is invalid: {model}")
    uri = ((body.get("outputDataConfig") or {}).get("s3OutputDataConfig") or {}).get("s3Uri")
    if not isinstance(uri, str) or not re.fullmatch(r"s3://[a-z0-9][.\-a-z0-9]{1,61}[a-z0-9](/.*)?", uri):
        return aws_error(400, "ValidationException", "outputDataConfig.s3OutputDataConfig.s3Uri must be an s3:// URI")
    mi = body["modelInput"]
    task = mi.get("taskType")
    params = (mi.get("textToVideoParams") if task == "TEXT_VIDEO" else mi.get("multiShotAutomatedParams")) or {}
    text = params.get("text")
    cfg = mi.get("videoGenerationConfig") or {}
    seconds = cfg.get("durationSeconds")
    limit = 512 if task == "TEXT_VIDEO" else 4000
    if task not in ("TEXT_VIDEO", "MULTI_SHOT_AUTOMATED") or (task == "MULTI_SHOT_AUTOMATED" and model != NOVA_REEL[1]):
        return aws_error(400, "ValidationException", f"Unsupported taskType: {task!r}")
    if not isinstance(text, str) or not 1 <= len(text) <= limit:
        return aws_error(400, "ValidationException", f"text must be 1 to {limit} characters")
    if (task == "TEXT_VIDEO" and seconds != 6) or (task != "TEXT_VIDEO" and seconds not in REEL_DURATIONS):
        return aws_error(400, "ValidationException", "durationSeconds must be 6 (TEXT_VIDEO) or a multiple of 6 "
                         "from 12 to 120 (MULTI_SHOT_AUTOMATED)")
    if cfg.get("fps", 24) != 24 or cfg.get("dimension", "1280x720") != "1280x720":
        return aws_error(400, "ValidationException", "fps must be 24 and dimension 1280x720")
    state = get_state(request)
    kind = await faults.resolve(state, "bedrock", text, BEDROCK_KINDS)
    if kind == "drop":
        return faults.drop_connection(request)
    if kind == "429":
        return aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
    if kind in ("500", "503"):
        return aws_error(int(kind), "InternalServerException" if kind == "500" else "ServiceUnavailableException",
                         "The service is unavailable." if kind == "503" else "Internal server error.")
    if kind == "prompt-blocked":
        return aws_error(400, "ValidationException", BLOCKED)
    if kind == "malformed":
        return faults.malformed_response({"invocationArn": _arn("x" * 12)})
    token = body.get("clientRequestToken")
    if isinstance(token, str):   # idempotent: the same token answers the same invocation
        for old in state.jobs.values():
            if getattr(old, "protocol", "") == "bedrock" and old.params.get("token") == token:
                return web.json_response({"invocationArn": _arn(old.id)})
    job = jobs.Job(id=jobs.new_id(12), protocol="bedrock", model=model, prompt=faults.strip_directives(text),
                   params={"uri": uri.rstrip("/"), "seconds": float(seconds), "token": token},
                   job_ms=jobs.job_duration_ms(state, text, video=True), fault=kind)
    state.jobs.put(job.id, job)
    return web.json_response({"invocationArn": _arn(job.id)})


async def get_async(request: web.Request) -> web.StreamResponse:
    """``GET /bedrock/async-invoke/{invocationArn}`` (the ARN percent-encoded as one segment)."""
    denied = await check_signature(request, "bedrock")
    if denied is not None:
        return denied
    arn = request.match_info["arn"]
    m = re.fullmatch(r"arn:aws:bedrock:[a-z0-9-]+:\d{12}:async-invoke/([a-z0-9]{12})", arn)
    job = get_state(request).jobs.get(m.group(1)) if m else None
    if job is None or job.protocol != "bedrock":
        return aws_error(400, "ValidationException", f"Invocation {arn} was not found.")
    out_uri = f"{job.params['uri']}/{job.id}"
    reply: dict[str, Any] = {"invocationArn": arn, "modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{job.model}",
                             "clientRequestToken": job.params.get("token"), "submitTime": _iso(job.created),
                             "lastModifiedTime": _iso(min(time.time(), job.completed_at)),
                             "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": out_uri}}}
    if job.phase() != "done":
        return web.json_response({**reply, "status": "InProgress"})
    reply["endTime"] = _iso(job.completed_at)
    if job.fault in ("fail", "safety"):
        message = BLOCKED if job.fault == "safety" else "Internal error occurred while generating the video."
        return web.json_response({**reply, "status": "Failed", "failureMessage": message})
    return web.json_response({**reply, "status": "Completed"})


async def _video_of(job: jobs.Job) -> bytes:
    """The job's MP4, rendered once, on first read."""
    async with job.render_lock:
        if job.outputs is None:
            job.outputs = await video.render_mp4_async(1280, 720, min(job.params["seconds"], video.MAX_SECONDS), job.prompt)
    return bytes(job.outputs)


async def s3_get(request: web.Request) -> web.StreamResponse:
    """``GET /bedrock-s3/{bucket}/{key}``: path-style S3 GetObject, SigV4 for service ``s3``."""
    denied = await check_signature(request, "s3")
    if denied is not None:
        if denied.status == 403:   # S3 speaks XML
            return web.Response(status=403, content_type="application/xml", text=(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request "
                "signature we calculated does not match the signature you provided. Check your key and signing "
                "method.</Message></Error>"))
        return denied
    uri = f"s3://{request.match_info['bucket']}/{request.match_info['key']}"
    folder, _, name = uri.rpartition("/")
    job = get_state(request).jobs.get(folder.rpartition("/")[2])
    if job is None or getattr(job, "protocol", "") != "bedrock" or name != "output.mp4" or job.phase() != "done" \
            or job.fault is not None or folder != f"{job.params['uri']}/{job.id}":
        return web.Response(status=404, content_type="application/xml", text=(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>The specified key does "
            f"not exist.</Message><Key>{request.match_info['key']}</Key></Error>"))
    data = await _video_of(job)
    return web.Response(body=data, content_type=video.MIME_MP4, headers={"ETag": '"' + hashlib.md5(data).hexdigest() + '"'})


def add_routes(app: web.Application) -> None:
    app.router.add_post(PREFIX + "/model/{model}/invoke", invoke)
    app.router.add_post(PREFIX + "/async-invoke", start_async)
    app.router.add_get(PREFIX + "/async-invoke/{arn:.+}", get_async)
    app.router.add_get(S3_PREFIX + "/{bucket}/{key:.+}", s3_get)
