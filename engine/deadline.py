"""One request deadline: the gateway's MEDIAGATE_REQUEST_TIMEOUT_SECONDS, tightened per model in YAML.

The deadline covers the whole request — every route tried, fan-out, polling and, for chat, the stream to
its end. Within it each attempt is also bounded by its provider's `timeout_s` (per attempt, and the
longest a stream may stay idle). The smallest applicable limit wins (Envoy's route timeout and per-try
timeout).
"""

from __future__ import annotations

from typing import Any

from mediagate.config import Settings
from mediagate.errors import GatewayError


def request_deadline_s(settings: Settings, model: Any) -> float:
    """min(MEDIAGATE_REQUEST_TIMEOUT_SECONDS, the model's `request_timeout_s`)."""
    declared = model.spec.get("request_timeout_s") if model is not None else None
    return min(settings.request_timeout_s, float(declared)) if declared else settings.request_timeout_s


def expired(seconds: float) -> GatewayError:
    return GatewayError(504, f"The request did not complete within {seconds:g} s.", "timeout_error", "upstream_timeout")
