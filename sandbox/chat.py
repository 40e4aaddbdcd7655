"""OpenAI-compatible chat completions, as three upstreams serve them:

* OpenAI: ``POST /openai/v1/chat/completions`` (``Authorization: Bearer sk-...``);
* Gemini's OpenAI compatibility layer: ``POST /gemini/v1beta/openai/chat/completions``
  (``Authorization: Bearer <Gemini API key>``; ai.google.dev/gemini-api/docs/openai);
* OpenRouter: ``POST /openrouter/api/v1/chat/completions`` (``Authorization: Bearer``).

The answer is deterministic: it echoes the last user message (``[sim:...]`` markers
removed), so a test can tell which request produced it. ``stream: true`` answers
``text/event-stream``: a first chunk with ``delta.role``, several content chunks, one with
``finish_reason``, a usage chunk when ``stream_options.include_usage`` (``choices: []``,
as openai-python's ``ChatCompletionChunk`` expects) and ``data: [DONE]``. Chunks are
spaced by ``chunk_ms`` (control config, default 20 ms; ``[sim:chunk=MS]`` in the last
user message wins) so a client can observe incremental delivery. When a streaming
client goes away mid-stream, its request log entry gets ``"disconnected": true`` and
``"chunks_sent"``, so a test can check that a gateway cancels upstream.

Errors come in each upstream's own shape: OpenAI ``{"error": {"message", "type", "param",
"code"}}``; Gemini's compatibility layer a LIST ``[{"error": {"code", "message", "status"}}]``
(as quoted in public issue threads, e.g. "Error code: 400 - [{'error': {'code': 400, ...,
'status': 'INVALID_ARGUMENT'}}]"); OpenRouter ``{"error": {"code", "message", "metadata"?}}``
with the HTTP status equal to ``error.code`` (openrouter.ai/docs/errors).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import faults
from .openai_images import check_auth as openai_check_auth
from .openai_models import OpenAIError
from .state import JSON_BODY, LOG_ENTRY, get_state

OPENAI_PATH = "/openai/v1/chat/completions"
GEMINI_PATH = "/gemini/v1beta/openai/chat/completions"
OPENROUTER_PATH = "/openrouter/api/v1/chat/completions"
WORDS_PER_CHUNK = 2
_ALNUM = string.ascii_letters + string.digits
_TOKEN = re.compile(r"\S+\s*")
_OPENAI_NOT_CHAT = re.compile(r"^(gpt-image|dall-e|sora-|tts-|whisper|text-embedding|davinci|babbage|omni-moderation)"
                              r"|-(tts|transcribe|realtime)")
_OPENROUTER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*/[A-Za-z0-9._:~-]+$")
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass(frozen=True)
class Flavor:
    """Which upstream a request speaks to: its name, fault/log protocol and id style."""

    name: str  # openai | gemini | openrouter
    protocol: str


OPENAI = Flavor("openai", "openai")
GEMINI = Flavor("gemini", "gemini")
OPENROUTER = Flavor("openrouter", "openrouter")


class ChatError(Exception):
    """An error already shaped for its upstream."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status, self.body, self.headers = status, body, headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


def error(flavor: Flavor, status: int, message: str, *, type_: str = "invalid_request_error",
          param: str | None = None, code: str | None = None, metadata: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> ChatError:
    """An error body in ``flavor``'s format (``type_``/``param``/``code`` are OpenAI's fields)."""
    if flavor.name == "gemini":
        return ChatError(status, [{"error": {"code": status, "message": message,
                                             "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}}], headers)
    if flavor.name == "openrouter":
        body: dict[str, Any] = {"code": status, "message": message}
        if metadata is not None:
            body["metadata"] = metadata
        return ChatError(status, {"error": body}, headers)
    return ChatError(status, {"error": {"message": message, "type": type_, "param": param, "code": code}}, headers)


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def check_auth(flavor: Flavor, request: web.Request) -> None:
    """Each upstream's bearer auth: a missing key, or a rejected (``bad...``) one."""
    if flavor.name == "openai":
        try:
            openai_check_auth(request)
        except OpenAIError as exc:
            raise ChatError(exc.status, exc.body, exc.headers) from None
        return
    key = _bearer(request)
    if flavor.name == "openrouter":
        if not key:
            raise error(flavor, 401, "No auth credentials found")
        if key.startswith("bad"):
            raise error(flavor, 401, "User not found.")
        return
    if not key:  # UNVERIFIED: what the compatibility layer answers without a key
        raise error(flavor, 401, "Missing or invalid Authorization header.")
    if key.startswith("bad"):
        raise ChatError(400, [{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                         "status": "INVALID_ARGUMENT", "details": [{
                                             "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                             "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}])


def check_model(flavor: Flavor, model: Any) -> str:
    """The model id as the upstream resolves it (raises ChatError when it would not)."""
    if not isinstance(model, str) or not model:
        if flavor.name == "openai":
            raise error(flavor, 400, "you must provide a model parameter")
        raise error(flavor, 400, "model is required" if flavor.name == "gemini" else "No models provided")
    if flavor.name == "openai":
        if _OPENAI_NOT_CHAT.search(model):
            raise error(flavor, 404, "This is not a chat model and thus not supported in the v1/chat/completions "
                        "endpoint. Did you mean to use v1/completions?", param="model", code="model_not_found")
        return model  # gpt-*/o*/chatgpt-*/ft:..., or any id a generic OpenAI-compatible server would serve
    if flavor.name == "gemini":
        name = model.removeprefix("models/")
        if not name.startswith(("gemini-", "gemma-")):
            raise error(flavor, 404, f"models/{name} is not found for API version v1main, or is not supported for "
                        "generateContent. Call ListModels to see the list of available models and their supported "
                        "methods.")
        return model
    if model != "openrouter/auto" and not _OPENROUTER_ID.match(model):
        raise error(flavor, 400, f"{model} is not a valid model ID")
    return model


@dataclass
class ChatPlan:
    """A validated request: what to answer and how."""

    model: str
    last_user: str
    prompt_tokens: int
    n: int
    max_tokens: int | None
    stream: bool
    include_usage: bool


def _text_of(content: Any) -> str:
    """A message's text: a string, or the ``text`` parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _number(flavor: Flavor, body: dict[str, Any], name: str, low: float, high: float, integer: bool) -> Any:
    value = body.get(name)
    if value is None:
        return None
    kind = "integer" if integer else "decimal"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise error(flavor, 400, f"Invalid type for '{name}': expected {'an integer' if integer else 'a number'}, "
                    f"but got {type(value).__name__} instead.", param=name, code="invalid_type")
    if value < low:
        raise error(flavor, 400, f"Invalid '{name}': {kind} below minimum value. Expected a value >= {low:g}, but "
                    f"got {value} instead.", param=name, code=f"{kind}_below_min_value")
    if value > high:
        raise error(flavor, 400, f"Invalid '{name}': {kind} above maximum value. Expected a value <= {high:g}, but "
                    f"got {value} instead.", param=name, code=f"{kind}_above_max_value")
    return value


def build_plan(flavor: Flavor, body: Any) -> ChatPlan:
    """Validate a chat completion body (raises ChatError)."""
    if not isinstance(body, dict):
        raise error(flavor, 400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                    "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
                    "sent was not valid JSON.)")
    model = check_model(flavor, body.get("model"))
    messages = body.get("messages")
    if messages is None:
        raise error(flavor, 400, "Missing required parameter: 'messages'.", param="messages",
                    code="missing_required_parameter")
    if not isinstance(messages, list):
        raise error(flavor, 400, "Invalid type for 'messages': expected an array of objects, but got "
                    f"{type(messages).__name__} instead.", param="messages", code="invalid_type")
    if not messages:
        raise error(flavor, 400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
                    "an empty array instead.", param="messages", code="empty_array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant",
                                                                         "tool", "function"):
            raise error(flavor, 400, f"Invalid value for 'messages[{i}].role': expected one of 'system', "
                        "'developer', 'user', 'assistant', 'tool' or 'function'.", param=f"messages[{i}].role",
                        code="invalid_value")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise error(flavor, 400, f"Invalid type for 'stream': expected a boolean, but got {type(stream).__name__} "
                    "instead.", param="stream", code="invalid_type")
    _number(flavor, body, "temperature", 0, 2, integer=False)
    _number(flavor, body, "top_p", 0, 1, integer=False)
    n = _number(flavor, body, "n", 1, 128, integer=True) or 1
    max_tokens = _number(flavor, body, "max_completion_tokens", 1, 1_000_000, integer=True)
    if max_tokens is None:
        max_tokens = _number(flavor, body, "max_tokens", 1, 1_000_000, integer=True)
    options = body.get("stream_options") or {}
    if options and not stream and flavor.name == "openai":
        raise error(flavor, 400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    param="stream_options", code="invalid_value")
    users = [m for m in messages if m.get("role") == "user"]
    last_user = _text_of(users[-1].get("content")) if users else ""
    all_text = " ".join(_text_of(m.get("content")) for m in messages)
    return ChatPlan(model=model, last_user=last_user, prompt_tokens=len(all_text) // 4 + 4 * len(messages) + 3,
                    n=n, max_tokens=max_tokens, stream=bool(stream),
                    include_usage=bool(isinstance(options, dict) and options.get("include_usage")))


def reply_text(plan: ChatPlan, index: int = 0) -> str:
    """The deterministic answer: an echo of the last user message."""
    said = faults.strip_directives(plan.last_user) or "(nothing)"
    suffix = f" (choice {index + 1})" if index else ""
    return f"You said: {said}. This is a simulated reply from {plan.model}{suffix}."


def _tokens(text: str, limit: int | None) -> tuple[list[str], bool]:
    """Words (with their trailing space) standing in for tokens, cut at ``limit``."""
    tokens = _TOKEN.findall(text)
    if limit is not None and len(tokens) > limit:
        return tokens[:limit], True
    return tokens, False


def _completion_id(flavor: Flavor) -> str:
    if flavor.name == "openrouter":
        return f"gen-{int(time.time())}-{''.join(secrets.choice(_ALNUM) for _ in range(20))}"
    if flavor.name == "gemini":
        return "".join(secrets.choice(_ALNUM) for _ in range(23))  # Gemini's ids are bare random strings
    return "chatcmpl-" + "".join(secrets.choice(_ALNUM) for _ in range(29))


def _provider(model: str) -> str:
    """OpenRouter's ``provider`` field: the vendor part of the id, as a display name."""
    vendor = model.split("/", 1)[0]
    return {"meta-llama": "DeepInfra", "openai": "OpenAI", "anthropic": "Anthropic", "google": "Google AI Studio",
            "mistralai": "Mistral", "openrouter": "OpenRouter"}.get(vendor, vendor.title())


def _envelope(flavor: Flavor, plan: ChatPlan, cid: str, created: int, obj: str) -> dict[str, Any]:
    body: dict[str, Any] = {"id": cid, "object": obj, "created": created, "model": plan.model}
    if flavor.name == "openai":
        body.update(service_tier="default", system_fingerprint="fp_sandbox0001")
    elif flavor.name == "openrouter":
        body["provider"] = _provider(plan.model)
    return body


def _usage(flavor: Flavor, plan: ChatPlan, completion: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": plan.prompt_tokens, "completion_tokens": completion,
                             "total_tokens": plan.prompt_tokens + completion}
    if flavor.name == "openai":
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        usage["completion_tokens_details"] = {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    return usage


def completion_json(flavor: Flavor, plan: ChatPlan, kind: str | None = None) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object."""
    choices = []
    completion = 0
    for index in range(plan.n):
        if kind == "safety":
            content, reason = None, "content_filter"
        else:
            tokens, cut = _tokens(reply_text(plan, index), plan.max_tokens)
            content, reason = "".join(tokens).rstrip(), "length" if cut else "stop"
            completion += len(tokens)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if flavor.name == "openai":
            message.update(refusal=None, annotations=[])
        choice: dict[str, Any] = {"index": index, "message": message, "logprobs": None, "finish_reason": reason}
        if flavor.name == "openrouter":
            choice["native_finish_reason"] = reason
        choices.append(choice)
    body = _envelope(flavor, plan, _completion_id(flavor), int(time.time()), "chat.completion")
    body.update(choices=choices, usage=_usage(flavor, plan, completion))
    return body


def _fault_error(flavor: Flavor, kind: str, plan_model: str, prompt: str) -> ChatError:
    """429/500/503/prompt-blocked in the upstream's own wording."""
    if kind == "429":
        if flavor.name == "gemini":
            return error(flavor, 429, "You exceeded your current quota, please check your plan and billing details. "
                         "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/"
                         "rate-limits.")
        if flavor.name == "openrouter":
            return error(flavor, 429, f"Rate limit exceeded: limit_rpm/{plan_model}. ", metadata={
                "headers": {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": str(int(time.time() * 1000) + 1000)}}, headers={"Retry-After": "1"})
        return error(flavor, 429, f"Rate limit reached for {plan_model} in organization org-sandbox on tokens per min "
                     "(TPM): Limit 30000, Used 30000, Requested 120. Please try again in 1s. Visit "
                     "https://platform.openai.com/account/rate-limits to learn more.", type_="tokens",
                     code="rate_limit_exceeded", headers={"retry-after": "1", "retry-after-ms": "1000"})
    if kind == "500":
        if flavor.name == "gemini":
            return error(flavor, 500, "An internal error has occurred. Please retry or report in "
                         "https://developers.generativeai.google/guide/troubleshooting")
        if flavor.name == "openrouter":
            return error(flavor, 500, "Internal Server Error")
        return error(flavor, 500, "The server had an error while processing your request. Sorry about that!",
                     type_="server_error")
    if kind == "503":
        if flavor.name == "gemini":
            return error(flavor, 503, "The model is overloaded. Please try again later.")
        if flavor.name == "openrouter":  # UNVERIFIED wording
            return error(flavor, 503, "No endpoints found that can handle the requested parameters.")
        return error(flavor, 503, "The engine is currently overloaded, please try again later.", type_="server_error")
    # prompt-blocked
    if flavor.name == "openrouter":  # metadata shape: openrouter.ai/docs/errors "Moderation Errors"
        return error(flavor, 403, f"{plan_model} requires moderation. Your input was flagged for \"violence\". No "
                     "credits were charged.", metadata={"reasons": ["violence"], "flagged_input": prompt[:100],
                                                        "provider_name": _provider(plan_model),
                                                        "model_slug": plan_model})
    if flavor.name == "gemini":  # UNVERIFIED wording
        return error(flavor, 400, "The prompt was blocked due to safety reasons (PROHIBITED_CONTENT).")
    return error(flavor, 400, "Invalid prompt: your prompt was flagged as potentially violating our usage policy. "
                 "Please try again with a different prompt.", code="invalid_prompt")


class _Stream:
    """Writes one SSE response and records in the request log how far it got."""

    def __init__(self, request: web.Request, response: web.StreamResponse, entry: dict[str, Any] | None) -> None:
        self.request, self.response, self.entry = request, response, entry if entry is not None else {}
        self.sent = 0

    def closed(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def raw(self, data: bytes) -> None:
        if self.closed():
            raise ConnectionResetError("client went away")
        await self.response.write(data)

    async def event(self, payload: Any) -> None:
        await self.raw(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")
        self.sent += 1
        self.entry["chunks_sent"] = self.sent


async def _stream(request: web.Request, flavor: Flavor, plan: ChatPlan, kind: str | None,
                  delay_ms: float) -> web.StreamResponse:
    """Answer ``stream: true``: role chunk, content chunks ``delay_ms`` apart, finish, usage, [DONE]."""
    entry = request.get(LOG_ENTRY)
    headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    if flavor.name == "openai":  # set before the headers go out (the app middleware is too late for a stream)
        headers["x-request-id"] = f"req_{secrets.token_hex(16)}"
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    out = _Stream(request, response, entry)
    out.entry.update(stream=True, chunks_sent=0, chunk_ms=delay_ms, completed=False)
    cid, created = _completion_id(flavor), int(time.time())

    def chunk(choices: list[dict[str, Any]], usage: bool = False) -> dict[str, Any]:
        body = _envelope(flavor, plan, cid, created, "chat.completion.chunk")
        body["choices"] = choices
        if plan.include_usage and flavor.name == "openai":
            body["usage"] = None  # every chunk carries usage: null until the usage chunk
        if usage:
            body["usage"] = _usage(flavor, plan, completion)
        return body

    def delta(index: int, payload: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"index": index, "delta": payload, "logprobs": None, "finish_reason": reason}
        if flavor.name == "openrouter":
            item["native_finish_reason"] = reason
        return item

    completion = 0
    try:
        if flavor.name == "openrouter":
            await out.raw(b": OPENROUTER PROCESSING\n\n")  # OpenRouter's keep-alive comment; SSE ignores it
        await out.event(chunk([delta(i, {"role": "assistant", "content": ""}) for i in range(plan.n)]))
        reasons = ["content_filter"] * plan.n if kind == "safety" else []
        pieces: list[list[str]] = []
        if kind != "safety":
            for index in range(plan.n):
                tokens, cut = _tokens(reply_text(plan, index), plan.max_tokens)
                completion += len(tokens)
                reasons.append("length" if cut else "stop")
                pieces.append(["".join(tokens[i:i + WORDS_PER_CHUNK]) for i in range(0, len(tokens),
                                                                                    WORDS_PER_CHUNK)])
        if kind == "malformed":  # a data line cut half-way, then the stream ends without [DONE]
            await out.raw(b'data: {"id":"' + cid.encode() + b'","object":"chat.completion.chunk","choi\n\n')
            await response.write_eof()
            return response
        rounds = max((len(p) for p in pieces), default=0)
        for step in range(rounds):
            if kind == "stream-cut" and step >= rounds // 2:
                out.entry["cut"] = True
                if request.transport is not None:
                    request.transport.close()  # no finish chunk, no [DONE]: an upstream that died mid-answer
                return response
            await asyncio.sleep(delay_ms / 1000.0)
            for index, parts in enumerate(pieces):
                if step < len(parts):
                    text = parts[step] if step < len(parts) - 1 else parts[step].rstrip()
                    await out.event(chunk([delta(index, {"content": text})]))
        await asyncio.sleep(delay_ms / 1000.0)
        await out.event(chunk([delta(i, {}, reasons[i]) for i in range(plan.n)]))
        if plan.include_usage:
            await out.event(chunk([], usage=True))
        await out.raw(b"data: [DONE]\n\n")
        out.entry["completed"] = True
        await response.write_eof()
    except (ConnectionResetError, ConnectionError) as exc:
        out.entry.update(disconnected=True, disconnected_at=time.time(), disconnect_error=type(exc).__name__)
    except asyncio.CancelledError:  # aiohttp cancels handlers of lost connections when configured to
        out.entry.update(disconnected=True, disconnected_at=time.time(), disconnect_error="CancelledError")
        raise
    return response


async def _handle(request: web.Request, flavor: Flavor) -> web.StreamResponse:
    try:
        check_auth(flavor, request)
        ok, body = request.get(JSON_BODY, (False, None))
        plan = build_plan(flavor, body if ok else None)
        state = get_state(request)
        kind = await faults.resolve(state, flavor.protocol, plan.last_user, faults.CHAT_KINDS)
        if kind == "drop":
            return faults.drop_connection(request)
        if kind in ("429", "500", "503", "prompt-blocked"):
            raise _fault_error(flavor, kind, plan.model, plan.last_user)
        if plan.stream:
            asked = faults.chunk_ms_directive(plan.last_user)
            return await _stream(request, flavor, plan, kind, asked if asked is not None else state.chunk_ms)
        answer = completion_json(flavor, plan, kind)
        if kind == "malformed":
            return faults.malformed_response(answer)
        if kind == "stream-cut":  # a non-streamed answer cut short: the body ends half-way
            return faults.malformed_response(answer)
        return web.json_response(answer)
    except ChatError as exc:
        return exc.response()


async def openai_chat(request: web.Request) -> web.StreamResponse:
    """``POST /openai/v1/chat/completions``."""
    return await _handle(request, OPENAI)


async def gemini_chat(request: web.Request) -> web.StreamResponse:
    """``POST /gemini/v1beta/openai/chat/completions`` (Gemini's OpenAI compatibility)."""
    return await _handle(request, GEMINI)


async def openrouter_chat(request: web.Request) -> web.StreamResponse:
    """``POST /openrouter/api/v1/chat/completions``."""
    return await _handle(request, OPENROUTER)


def add_routes(app: web.Application) -> None:
    app.router.add_post(OPENAI_PATH, openai_chat)
    app.router.add_post(GEMINI_PATH, gemini_chat)
    app.router.add_post(OPENROUTER_PATH, openrouter_chat)
