"""Fault injection shared by every protocol.

A fault comes from the control API queue (first) or from ``[sim:...]`` directives
in the prompt. This module only decides *which* fault applies and handles the
protocol-independent ones (latency, dropped connection, malformed body); each
protocol module turns the remaining kinds into its own real error format.

Kinds: ``429``, ``500``, ``503``, ``safety``, ``prompt-blocked``, ``malformed``,
``drop``, ``noimage`` (terminal: at most one applies) and ``latency=MS``
(additive: sleeps, then the request continues). Some protocols know extra terminal
kinds (``PROTOCOL_KINDS``); a kind a protocol does not know is ignored there, so a
queued fault waits for a request that can express it. Within a protocol, an endpoint
may express fewer kinds than the protocol (``resolve(kinds=...)``): a chat request
cannot express ``noimage``, an image request cannot express ``stream-cut``.

Endpoint families: images (``COMMON_KINDS``), video jobs (``VIDEO_KINDS``: ``fail``
ends the job failed, ``safety`` ends it blocked) and chat completions (``CHAT_KINDS``:
``stream-cut`` closes a stream half-way, without ``[DONE]``).

``[sim:job=MS]`` is not a fault: it sets how long an async job (fal, Replicate, video)
runs. ``[sim:chunk=MS]`` neither: it sets the delay between streamed chat chunks.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from .state import SimState

COMMON_KINDS: frozenset[str] = frozenset(
    {"429", "500", "503", "safety", "prompt-blocked", "malformed", "drop", "noimage"}
)
VIDEO_KINDS: frozenset[str] = (COMMON_KINDS - {"noimage"}) | {"fail"}
CHAT_KINDS: frozenset[str] = (COMMON_KINDS - {"noimage"}) | {"stream-cut"}
# Which terminal kinds each protocol can express in its own error format (any endpoint).
PROTOCOL_KINDS: dict[str, frozenset[str]] = {
    "openai": COMMON_KINDS | VIDEO_KINDS | CHAT_KINDS,
    "gemini": COMMON_KINDS | VIDEO_KINDS | CHAT_KINDS,
    "vertex": COMMON_KINDS | VIDEO_KINDS | {"safety-partial"},
    "fal": COMMON_KINDS | {"422", "safety-422", "job-error"},
    "replicate": COMMON_KINDS | {"422", "fail"},
    "openrouter": CHAT_KINDS,
    "a1111": frozenset({"422", "500", "malformed", "drop"}),
    "stability": frozenset({"429", "500", "safety", "prompt-blocked", "malformed", "drop"}),
    "runway": VIDEO_KINDS | {"noimage"},
    "minimax": VIDEO_KINDS | COMMON_KINDS,
    "byteplus": VIDEO_KINDS | COMMON_KINDS,
    "azure": COMMON_KINDS,
    "xai": COMMON_KINDS | VIDEO_KINDS,
    "recraft": COMMON_KINDS,
    "bedrock": COMMON_KINDS | {"fail"},
    "together": COMMON_KINDS,
    "huggingface": COMMON_KINDS - {"noimage"},
    "luma": COMMON_KINDS | {"fail"},
    "dashscope": COMMON_KINDS | {"fail"},
}
TERMINAL_KINDS: frozenset[str] = frozenset().union(*PROTOCOL_KINDS.values())
PROTOCOLS: frozenset[str] = frozenset(PROTOCOL_KINDS)
_DIRECTIVE = re.compile(r"\[sim:([A-Za-z0-9_.=-]+)\]")
_LATENCY = re.compile(r"latency=(\d+(?:\.\d+)?)")
_JOB = re.compile(r"\[sim:job=(\d+(?:\.\d+)?)\]", re.IGNORECASE)
_CHUNK = re.compile(r"\[sim:chunk=(\d+(?:\.\d+)?)\]", re.IGNORECASE)


def parse_spec(spec: str) -> tuple[str, float]:
    """Split a fault spec into ``(kind, latency_ms)``; ValueError for anything unknown."""
    text = spec.strip().lower()
    match = _LATENCY.fullmatch(text)
    if match:
        return "latency", float(match.group(1))
    if text in TERMINAL_KINDS:
        return text, 0.0
    raise ValueError(f"unknown fault {spec!r}; expected one of {sorted(TERMINAL_KINDS)} or latency=MS")


def supports(protocol: str, spec: str, kinds: frozenset[str] | None = None) -> bool:
    """Whether ``protocol`` (or an endpoint expressing only ``kinds``) can express fault
    ``spec`` (latency works everywhere)."""
    kind, _ = parse_spec(spec)
    return kind == "latency" or kind in (kinds if kinds is not None else PROTOCOL_KINDS.get(protocol, COMMON_KINDS))


def prompt_directives(prompt: str, protocol: str | None = None, kinds: frozenset[str] | None = None) -> list[str]:
    """The valid ``[sim:...]`` specs found anywhere in a prompt, in order (optionally
    only those ``protocol``, or an endpoint expressing ``kinds``, can express)."""
    found = []
    for raw in _DIRECTIVE.findall(prompt or ""):
        try:
            parse_spec(raw)
        except ValueError:
            continue
        if protocol is None or supports(protocol, raw, kinds):
            found.append(raw.lower())
    return found


def job_ms_directive(prompt: str) -> float | None:
    """The ``[sim:job=MS]`` job duration asked for in a prompt, if any."""
    match = _JOB.search(prompt or "")
    return float(match.group(1)) if match else None


def chunk_ms_directive(text: str) -> float | None:
    """The ``[sim:chunk=MS]`` streaming chunk delay asked for in a message, if any."""
    match = _CHUNK.search(text or "")
    return float(match.group(1)) if match else None


def strip_directives(text: str) -> str:
    """The prompt without ``[sim:...]`` markers, for text the fake model echoes back."""
    return " ".join(_DIRECTIVE.sub(" ", text or "").split())


async def resolve(state: SimState, protocol: str, prompt: str, kinds: frozenset[str] | None = None) -> str | None:
    """Sleep for injected latency and return the terminal fault kind to apply, if any.

    A queued terminal fault wins outright; a queued latency fault adds its delay and
    lets the prompt directives still apply. Several latency directives add up; the
    first terminal directive wins. ``kinds`` narrows what this endpoint can express
    (default: everything the protocol can).
    """
    delay_ms = 0.0
    queued = state.take_fault(protocol, lambda spec: supports(protocol, spec, kinds))
    specs: list[str] = []
    if queued is not None:
        kind, ms = parse_spec(queued)
        if kind != "latency":
            return kind
        delay_ms += ms
    specs.extend(prompt_directives(prompt, protocol, kinds))
    terminal: str | None = None
    for spec in specs:
        kind, ms = parse_spec(spec)
        if kind == "latency":
            delay_ms += ms
        elif terminal is None:
            terminal = kind
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000.0)
    return terminal


def drop_connection(request: web.Request) -> web.Response:
    """Close the socket without a response; the returned object is never delivered.

    aiohttp notices the closed transport when it tries to send the response and
    treats it as a client disconnect, so the client sees an EOF before any status line.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=204)


def malformed_response(payload: Any) -> web.Response:
    """A 200 whose JSON body is cut in half, as a flaky proxy or crashed upstream would send."""
    text = json.dumps(payload)
    return web.Response(status=200, text=text[: max(1, len(text) // 2)], content_type="application/json")
