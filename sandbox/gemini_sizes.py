"""Output pixel sizes of the Gemini image models, per image size tier and aspect ratio.

The simulator must return exactly the dimensions the real models return, because
the gateway reports sizes and tests compare them; this table is the one place
they are written down.
"""

from __future__ import annotations

import math

Size = tuple[int, int]

# source: https://ai.google.dev/gemini-api/docs/image-generation#aspect_ratios_and_image_size
#   ("Aspect ratios and image size" tables for Gemini 2.5 Flash Image, Gemini 3 Pro Image
#   Preview and Gemini 3.1 Flash Image Preview).
# Exception, gemini-3.1-flash-image rows 1:4, 4:1, 1:8, 8:1 (all tiers) and 21:9 at 512: the
#   page lists 512x2048 / 384x3072 / 792x168 (the last is not even 21:9), but the live API
#   returns the sizes below (e.g. 1:8 at 1K is 352x2928); those cells follow the live API as
#   probed and published by independent client test suites (pydantic-ai google geometry
#   tests, OpenTu "Nano Banana 2.1 Verification").
GEMINI_IMAGE_DIMENSIONS: dict[str, dict[str, dict[str, Size]]] = {
    "gemini-2.5-flash-image": {
        "1K": {
            "1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184),
            "4:3": (1184, 864), "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344),
            "16:9": (1344, 768), "21:9": (1536, 672),
        },
    },
    "gemini-3-pro-image": {
        "1K": {
            "1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200),
            "4:3": (1200, 896), "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376),
            "16:9": (1376, 768), "21:9": (1584, 672),
        },
        "2K": {
            "1:1": (2048, 2048), "2:3": (1696, 2528), "3:2": (2528, 1696), "3:4": (1792, 2400),
            "4:3": (2400, 1792), "4:5": (1856, 2304), "5:4": (2304, 1856), "9:16": (1536, 2752),
            "16:9": (2752, 1536), "21:9": (3168, 1344),
        },
        "4K": {
            "1:1": (4096, 4096), "2:3": (3392, 5056), "3:2": (5056, 3392), "3:4": (3584, 4800),
            "4:3": (4800, 3584), "4:5": (3712, 4608), "5:4": (4608, 3712), "9:16": (3072, 5504),
            "16:9": (5504, 3072), "21:9": (6336, 2688),
        },
    },
    "gemini-3.1-flash-image": {
        "512": {
            "1:1": (512, 512), "1:4": (256, 1024), "1:8": (176, 1456), "2:3": (424, 632),
            "3:2": (632, 424), "3:4": (448, 600), "4:1": (1024, 256), "4:3": (600, 448),
            "4:5": (464, 576), "5:4": (576, 464), "8:1": (1456, 176), "9:16": (384, 688),
            "16:9": (688, 384), "21:9": (784, 336),
        },
        "1K": {
            "1:1": (1024, 1024), "1:4": (512, 2064), "1:8": (352, 2928), "2:3": (848, 1264),
            "3:2": (1264, 848), "3:4": (896, 1200), "4:1": (2064, 512), "4:3": (1200, 896),
            "4:5": (928, 1152), "5:4": (1152, 928), "8:1": (2928, 352), "9:16": (768, 1376),
            "16:9": (1376, 768), "21:9": (1584, 672),
        },
        "2K": {
            "1:1": (2048, 2048), "1:4": (1024, 4128), "1:8": (704, 5856), "2:3": (1696, 2528),
            "3:2": (2528, 1696), "3:4": (1792, 2400), "4:1": (4128, 1024), "4:3": (2400, 1792),
            "4:5": (1856, 2304), "5:4": (2304, 1856), "8:1": (5856, 704), "9:16": (1536, 2752),
            "16:9": (2752, 1536), "21:9": (3168, 1344),
        },
        "4K": {
            "1:1": (4096, 4096), "1:4": (2048, 8256), "1:8": (1408, 11712), "2:3": (3392, 5056),
            "3:2": (5056, 3392), "3:4": (3584, 4800), "4:1": (8256, 2048), "4:3": (4800, 3584),
            "4:5": (3712, 4608), "5:4": (4608, 3712), "8:1": (11712, 1408), "9:16": (3072, 5504),
            "16:9": (5504, 3072), "21:9": (6336, 2688),
        },
    },
}

# Model id -> table. The -preview ids are what the brief and most clients use; the GA ids
# share their tables.
MODEL_TABLES: dict[str, str] = {
    "gemini-2.5-flash-image": "gemini-2.5-flash-image",
    "gemini-2.5-flash-image-preview": "gemini-2.5-flash-image",
    "gemini-3-pro-image-preview": "gemini-3-pro-image",
    "gemini-3-pro-image": "gemini-3-pro-image",
    "gemini-3.1-flash-image-preview": "gemini-3.1-flash-image",
    "gemini-3.1-flash-image": "gemini-3.1-flash-image",
}

# Output image tokens per tier (Vertex AI model cards for each model).
IMAGE_TOKENS: dict[str, dict[str, int]] = {
    "gemini-2.5-flash-image": {"1K": 1290},
    "gemini-3-pro-image": {"1K": 1120, "2K": 1120, "4K": 2000},
    "gemini-3.1-flash-image": {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
}

TIER_ALIASES: dict[str, str] = {"0.5K": "512"}  # both spellings are accepted for the 512 tier
DEFAULT_TIER = "1K"
DEFAULT_RATIO = "1:1"


def table_for(model: str) -> dict[str, dict[str, Size]] | None:
    """The tier -> ratio -> size table of an image model id, or None if not an image model."""
    key = MODEL_TABLES.get(model)
    return GEMINI_IMAGE_DIMENSIONS[key] if key else None


def closest_ratio(ratios: list[str], width: int, height: int) -> str:
    """The supported ratio nearest (in log space) to an input image's shape."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        a, b = ratio.split(":")
        return abs(math.log(float(a) / float(b)) - target)

    return min(ratios, key=distance)
