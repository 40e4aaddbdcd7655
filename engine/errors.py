"""Gateway errors and their OpenAI shape.

Every failure a client can see is a `GatewayError`; `to_body()` is the only place the public error shape is
built, so no stack trace, secret or raw upstream body can leak through another path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class GatewayError(Exception):
    """A client-visible error: HTTP status plus the OpenAI `error` object."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", code, param)


def model_not_found(model: str, nearest: list[str] | None = None) -> GatewayError:
    hint = f" Did you mean: {', '.join(nearest)}?" if nearest else ""
    return GatewayError(
        404, f"The model '{model}' does not exist or is not served by this gateway.{hint}",
        "invalid_request_error", "model_not_found", "model")


def too_large(limit_bytes: int) -> GatewayError:
    return GatewayError(413, f"Request body is larger than the limit of {limit_bytes} bytes.",
                        "invalid_request_error", "request_too_large")


def invalid_api_key() -> GatewayError:
    return GatewayError(401, "Missing or invalid API key for this gateway.", "invalid_request_error", "invalid_api_key")


def not_found(message: str) -> GatewayError:
    return GatewayError(404, message, "invalid_request_error", "not_found")


def insufficient_storage() -> GatewayError:
    return GatewayError(507, "The gateway has no room left to store this media; try again later or ask for b64_json.",
                        "server_error", "insufficient_storage")


def internal(message: str = "The gateway failed to process the request.") -> GatewayError:
    return GatewayError(500, message, "server_error", "internal_error")


@dataclass
class UpstreamError(Exception):
    """One failed attempt at one provider, already normalized by the provider's error rules.

    `code` is a normalized code (see `mediagate.errormap.CODES`); `retryable` says whether another try could
    succeed, `taken` whether one may run (and bill) the work twice — together they decide fallback.
    """

    code: str
    message: str
    retryable: bool
    status: int | None = None          # upstream HTTP status, when there was one
    param: str | None = None
    retry_after_s: float | None = None
    sent: bool = True                  # False only when provably never written (refused, DNS, TLS, no credentials)
    not_billed: bool = False           # the reply proves the work was not taken (429, an error rule's `not_billed`)
    taken_batches: tuple[int, ...] | None = None   # fan-out: `n` of each batch the provider may have taken

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def taken(self) -> bool:
        """Whether the provider may have done (and billed) some of the work before this failure."""
        if self.taken_batches is not None:
            return bool(self.taken_batches)
        return self.sent and not self.not_billed
