"""Safe under hostile input: text every upstream encoding can carry, deadlines everywhere, doors closed.

Each test here failed on the code before issue 9's items 3, 4 and 6 and passes now; real HTTP against
the gateway under uvicorn, the simulators and the scripted upstream.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx
import pytest

from mediagate.errormap import MAX_RETRY_AFTER_S, UPSTREAM_MESSAGE_MAX_CHARS, sanitize
from tests.servers import GatewayThread, Scripted

GEN = "/v1/images/generations"


def post_json(gw: GatewayThread, path: str, body: Any, **kw: Any) -> httpx.Response:
    """The body as JSON text, surrogates escaped as JSON allows (json.dumps with ensure_ascii)."""
    return httpx.post(gw.base_url + path, content=json.dumps(body), headers={"content-type": "application/json"},
                      timeout=30, **kw)


# ------------------------------------------------------------------ relayed provider text (item 6)

LEAKY = ('prediction failed: Traceback (most recent call last): File "/srv/predict.py", line 9, in run '
         'requests.post(url, headers={"Authorization": "Bearer r8_AbC123secretTOKENvalue"}) key=AIzaSyA1234567890abcdefghijklmnopqrstu')


def test_failed_when_message_is_sanitised(scripted: Scripted, scripted_gateway: GatewayThread) -> None:
    scripted.replies += [{"status": 201, "json": {"id": "p1", "status": "failed", "error": LEAKY, "urls": {}}},
                         {"status": 500, "json": {"detail": "down"}}]
    r = post_json(scripted_gateway, GEN, {"model": "flux-1.1-pro", "prompt": "x"})
    assert r.status_code == 502, r.text
    text = r.json()["error"]["message"]
    assert "prediction failed" in text
    for secret in ("Traceback", "/srv/predict.py", "r8_AbC123", "AIzaSy", "Bearer r8"):
        assert secret not in text, text


@pytest.mark.parametrize(("raw", "absent"), [
    ("bad\nTraceback (most recent call last):\n  File x", "Traceback"),
    ("denied for Authorization: Bearer abcdef123456", "abcdef123456"),
    ("invalid api key sk-proj-ABCdef1234567890", "sk-proj"),
    ('{"api_key": "hunter2"}', "hunter2"),
    ("signed url https://h.example/o?X-Amz-Signature=3f2a9c7d0e1b4a6f8c3d2e1f0a9b8c7d6e5f4a3b", "3f2a9c7d0e1b"),
    ("token aGVsbG8gd29ybGQgdGhpcyBpcyBhIHNlY3JldCB0b2tlbg1 rejected", "aGVsbG8"),
])
def test_sanitiser_masks_what_looks_like_a_secret(raw: str, absent: str) -> None:
    out = sanitize(raw)
    assert out is not None and absent not in out


def test_sanitiser_keeps_ordinary_text_and_caps_length() -> None:
    assert sanitize("model gemini-2.5-flash-image-preview-09-2025 not found") == \
        "model gemini-2.5-flash-image-preview-09-2025 not found"
    assert sanitize("Your token quota exceeded") == "Your token quota exceeded"
    assert len(sanitize("a " * 2000) or "") == UPSTREAM_MESSAGE_MAX_CHARS
    assert sanitize({"message": "x"}) is None and sanitize("Traceback (most recent call last):\n x") is None


# ------------------------------------------------------------------ Retry-After (item 6)

@pytest.mark.parametrize(("header", "low", "high"), [
    (lambda: email.utils.formatdate(time.time() + 40, usegmt=True), 35, 41),   # HTTP-date: seconds from now
    (lambda: "86400000", MAX_RETRY_AFTER_S, MAX_RETRY_AFTER_S),               # capped
    (lambda: "Wed, 21 Oct 2015 07:28:00 GMT", 1, 1),                          # in the past: retry now (1 s)
])
def test_retry_after_both_forms_and_capped(scripted: Scripted, scripted_gateway: GatewayThread, header: Any,
                                           low: int, high: int) -> None:
    scripted.replies.append({"status": 429, "headers": {"Retry-After": header()}, "json": {"error": {"message": "slow down"}}})
    r = post_json(scripted_gateway, GEN, {"model": "dall-e-2", "prompt": "x"})
    assert r.status_code == 429, r.text
    assert low <= int(r.headers["retry-after"]) <= high, r.headers["retry-after"]
