"""Output pixel sizes of the Imagen models, per ``sampleImageSize`` and aspect ratio.

Shared by Vertex ``:predict`` and fal's ``fal-ai/imagen4/*`` apps (same models).
"""

from __future__ import annotations

Size = tuple[int, int]

# source (1K): Vertex AI model pages "Imagen 3 Generate 002" / "Imagen 4 Generate", section
#   "Image ratios and resolutions": 1:1 1024x1024, 3:4 896x1280, 4:3 1280x896, 9:16 768x1408,
#   16:9 1408x768 (https://cloud.google.com/vertex-ai/generative-ai/docs/models/imagen/3-0-generate-002).
# 2K: the imagen-4.0-generate-001 / -ultra-generate-001 pages list every 1K size doubled
#   (2048x2048, 1792x2560, 2560x1792, 1536x2816, 2816x1536); the stored copy of that page did not
#   show the table verbatim, so the 2K row is the documented "2K doubles" rule.
IMAGEN_1K: dict[str, Size] = {
    "1:1": (1024, 1024),
    "3:4": (896, 1280),
    "4:3": (1280, 896),
    "9:16": (768, 1408),
    "16:9": (1408, 768),
}
IMAGEN_DIMENSIONS: dict[str, dict[str, Size]] = {
    "1K": IMAGEN_1K,
    "2K": {ratio: (w * 2, h * 2) for ratio, (w, h) in IMAGEN_1K.items()},
}

# Model id -> the sampleImageSize tiers it accepts. 2K is only for Imagen 4 standard and
# ultra (google-genai docs: GenerateImagesConfig.image_size "Supported values are 1K and 2K",
# ai.google.dev/gemini-api/docs/imagen: "imageSize ... only for Standard and Ultra models").
IMAGEN_MODELS: dict[str, tuple[str, ...]] = {
    "imagen-4.0-generate-001": ("1K", "2K"),
    "imagen-4.0-ultra-generate-001": ("1K", "2K"),
    "imagen-4.0-fast-generate-001": ("1K",),
    "imagen-4.0-generate-preview-06-06": ("1K", "2K"),
    "imagen-4.0-ultra-generate-preview-06-06": ("1K", "2K"),
    "imagen-4.0-fast-generate-preview-06-06": ("1K",),
    "imagen-3.0-generate-002": ("1K",),
    "imagen-3.0-generate-001": ("1K",),
    "imagen-3.0-fast-generate-001": ("1K",),
}
MAX_SAMPLES = 4  # "Maximum number of images returned per request (text-to-image generation): 4"
