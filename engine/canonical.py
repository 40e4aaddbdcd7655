"""The canonical request: what the caller asked for, resolved against one model.

Built once per request by folding the registered operations (mediagate.normalize) over the validated body;
route templates then read it through a small documented context (mediagate.context). It is immutable:
each operation returns a new one, and every value changed on the caller's behalf is in `adjustments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from mediagate.shape import Shape, adjustment  # noqa: F401  (re-exported for operations)

MAX_N = 10  # images per request (OpenAI's bound); beyond a model's native maximum they are fanned out

# Fields the gateway understands itself; anything else is passed through to the provider.
UNIVERSAL_FIELDS = frozenset({
    "model", "prompt", "n", "size", "aspect_ratio", "resolution", "response_format", "output_format",
    "output_compression", "thinking", "thinking_level", "enhance_prompt", "stream",
    "seconds", "duration", "input_reference", "webhook_url", "idempotency_key",
})
# Fields of the OpenAI Images API that SDKs send routinely: used where a model declares them, otherwise
# dropped (and recorded) rather than passed to a provider that would refuse an unknown field.
OPENAI_IMAGE_FIELDS = frozenset({"user", "quality", "style", "background", "moderation", "input_fidelity", "partial_images"})


@dataclass(frozen=True)
class Canonical:
    model_id: str
    operation: str
    body: Mapping[str, Any]
    prompt: str = ""
    n: int = 1
    shape: Shape = Shape(None, None, None, None)
    thinking: str | None = None
    enhance_prompt: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    response_format: str = "url"
    output_format: str | None = None          # what the caller gets
    output_compression: int | None = None
    upstream_format: str | None = None        # what the provider is asked for
    upstream_compression: int | None = None
    reencode: bool = False                    # compression must be applied by the gateway
    images: tuple[Any, ...] = ()              # edit inputs (mediagate.inputs.InputImage), first one first
    mask: Any = None
    implicit_size: str | None = None          # an edit's input size: the shape when the caller gave none
    inputs_pending: bool = False              # a first pass, before input images are loaded: none can be required yet
    seconds: float | None = None              # video length
    adjustments: tuple[dict[str, Any], ...] = ()

    def with_(self, **changes: Any) -> "Canonical":
        return replace(self, **changes)

    def adjusted(self, *adjustments: dict[str, Any]) -> "Canonical":
        return replace(self, adjustments=self.adjustments + tuple(adjustments))

