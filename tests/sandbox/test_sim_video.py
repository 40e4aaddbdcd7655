"""The synthetic MP4 renderer: real, decodable clips of the asked size and length, moving."""

from __future__ import annotations

import io

import av
import pytest
from PIL import Image, ImageChops

from mediagate.sandbox import video


def decode_frames(data: bytes) -> list[Image.Image]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


@pytest.mark.parametrize(("width", "height", "seconds"), [(1280, 720, 4), (720, 1280, 8), (832, 480, 5)])
def test_clip_has_the_asked_size_duration_and_codec(width: int, height: int, seconds: int) -> None:
    data = video.render_mp4(width, height, seconds, f"render check {width}x{height}")
    assert data[4:8] == b"ftyp"  # an ISO-BMFF (MP4) file
    info = video.probe(data)
    assert (info.width, info.height) == (width, height)
    assert abs(info.frames - seconds * video.FPS) <= 1 and abs(info.duration - seconds) <= 1 / video.FPS
    assert info.codec == ("h264" if video.encoder() in ("libx264", "h264") else "mpeg4")


def test_clip_moves_and_is_cached() -> None:
    """(How fast clips encode is a benchmark's business, not a test's: this checks what is made, and reuse.)"""
    data = video.render_mp4(1280, 720, 8, "a moving bar")
    frames = decode_frames(data)
    assert len(frames) == 64
    diff = ImageChops.difference(frames[0].convert("L"), frames[-1].convert("L"))
    assert diff.getbbox() is not None  # the bar and counter moved
    top_half = diff.crop((0, 0, 1280, 300)).getextrema()[1]
    assert top_half < 40  # the caption stays put; only the bottom strip animates
    assert video.render_mp4(1280, 720, 8, "a moving bar") is data  # the cached clip itself, not a re-encode


def test_thumbnail_and_spritesheet() -> None:
    thumb = Image.open(io.BytesIO(video.render_thumbnail(1280, 720, 4, "thumb")))
    assert thumb.format == "WEBP" and thumb.size == (512, 288)
    sheet = Image.open(io.BytesIO(video.render_spritesheet(720, 1280, 4, "sheet")))
    assert sheet.format == "JPEG" and sheet.size == (4 * 108, 3 * 192)  # 12 tiles of 108x192, 4 per row


def test_rejects_impossible_clips() -> None:
    for args in ((8, 8, 4), (1280, 720, 0), (1280, 720, 120), (8000, 8000, 4)):
        with pytest.raises(ValueError):
            video.render_mp4_uncached(*args, "nope")
