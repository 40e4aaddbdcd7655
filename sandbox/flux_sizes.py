"""FLUX1.1 [pro] Ultra output sizes, shared by the fal and Replicate simulators.

Ultra renders ~4 MP (4x FLUX1.1 [pro]) in nine aspect ratios; these are the frames the
real endpoints return (as observed by the gateway's own tests against BFL-backed apps,
both multiples of 16 and ~4.2 MP). fal's ``fal-ai/flux-pro/v1.1-ultra`` defaults to 16:9
(fal.ai/models/fal-ai/flux-pro/v1.1-ultra/api); Replicate's
``black-forest-labs/flux-1.1-pro-ultra`` defaults to 1:1 (its published input schema).
"""

from __future__ import annotations

FLUX_ULTRA: dict[str, tuple[int, int]] = {
    "21:9": (3136, 1344),
    "16:9": (2752, 1536),
    "4:3": (2368, 1792),
    "3:2": (2496, 1664),
    "1:1": (2048, 2048),
    "2:3": (1664, 2496),
    "3:4": (1792, 2368),
    "9:16": (1536, 2752),
    "9:21": (1344, 3136),
}
