"""Big ASCII strings (base64 images, data: URLs) made from bytes with the GIL free while they are copied.

Making a 16.8 MB `str` from bytes is one C call (`bytes.decode`, `"".join`) that holds the GIL for all of
it, and on a VM most of that time is first-touch page faults of the new string's memory: 40-55 ms per
string measured here (bench/RESULTS.md, "Memory and the event loop"), during which the event loop cannot
take the GIL back. So a big string is allocated empty (`PyUnicode_New`, the way CPython's own decoders
start) and its characters are copied in with `ctypes.memmove` a slice at a time; a ctypes call releases the
GIL, so the copying and the page faults run while the loop goes on. Only content checked to be ASCII is
copied this way (an ASCII string's characters are its bytes); anything else, and any interpreter where the
layout check at import fails, takes the plain `decode`.
"""

from __future__ import annotations

import ctypes
import sys
import time
from typing import Iterable

COPY_SLICE_BYTES = 1024 * 1024        # bytes copied per memmove; between slices the GIL is handed over
# bytes checked per temporary copy: below allocator.MMAP_THRESHOLD_BYTES, so the copy comes from the heap and
# not from a fresh mapping faulted in page by page (a 16.8 MB check: 14 ms in 1 MiB slices, 5.5 ms in these)
CHECK_SLICE_BYTES = 128 * 1024
MIN_BYTES = 256 * 1024                # smaller strings are decoded in one call: cheaper than the set-up
_ASCII = bytes(range(0x80))
_JSON_ASCII = bytes(range(0x20, 0x80))   # what may stand unescaped in a JSON string, ASCII only
_HEADER = sys.getsizeof("") - 1       # sizeof(PyASCIIObject): a compact ASCII string's characters follow it


def _api() -> "ctypes._NamedFuncPointer | None":
    try:
        new = ctypes.pythonapi.PyUnicode_New
    except (AttributeError, ValueError):   # not CPython
        return None
    new.restype = ctypes.py_object
    new.argtypes = (ctypes.c_ssize_t, ctypes.c_uint32)
    return new


_NEW = _api()


def _address(buf: bytes | bytearray) -> int:
    if isinstance(buf, bytearray):
        return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)) if buf else 0
    return ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0


def _build(buf: bytes | bytearray, start: int, end: int) -> str:
    assert _NEW is not None
    out: str = _NEW(end - start, 127)
    dst, src = id(out) + _HEADER, _address(buf) + start
    for i in range(0, end - start, COPY_SLICE_BYTES):
        ctypes.memmove(dst + i, src + i, min(COPY_SLICE_BYTES, end - start - i))
        time.sleep(0)   # let a waiting event loop have the GIL between slices
    return out


def _layout_ok() -> bool:
    """The string layout this module writes into is the one this interpreter uses."""
    if _NEW is None:
        return False
    try:
        sample = b"mediagate-" * 7
        return _build(sample, 3, len(sample) - 2) == sample[3:-2].decode("ascii")
    except Exception:   # noqa: BLE001 - any surprise means: do not use this path
        return False


ENABLED = _layout_ok()


def is_ascii(buf: bytes | bytearray, start: int = 0, end: int | None = None, json_string: bool = False) -> bool:
    """Checked a slice at a time, handing the GIL over between slices. `json_string`: also no control
    characters (JSON forbids them unescaped)."""
    end = len(buf) if end is None else end
    allowed = _JSON_ASCII if json_string else _ASCII
    view = memoryview(buf)
    for i in range(start, end, CHECK_SLICE_BYTES):   # deleting the allowed bytes leaves the others (3x a regex's speed)
        if bytes(view[i:min(end, i + CHECK_SLICE_BYTES)]).translate(None, allowed):
            return False
        if (i - start) % COPY_SLICE_BYTES == 0:
            time.sleep(0)
    return True


def decode(buf: bytes | bytearray, start: int = 0, end: int | None = None, checked: bool = False) -> str:
    """`buf[start:end]` as a str. ASCII content of MIN_BYTES or more is copied in slices with the GIL free;
    `checked` says the caller already knows it is ASCII. Other content is decoded as UTF-8."""
    end = len(buf) if end is None else end
    if ENABLED and end - start >= MIN_BYTES and (checked or is_ascii(buf, start, end)):
        return _build(buf, start, end)
    return str(memoryview(buf)[start:end], "utf-8")


def join(pieces: "Iterable[bytes]", size: int) -> str:
    """The ASCII `pieces` (exactly `size` bytes together; the caller vouches they are ASCII, e.g. base64)
    as one str, each copied straight into the new string with the GIL free. No zeroed staging buffer: a
    `bytearray(size)` is zero-filled under the GIL, and on this VM filling 49 MB of fresh pages that way
    stopped the whole gateway for ~50 ms (bench/memory.py, the 5 x 37 MB data-URL edit)."""
    if not ENABLED or size < MIN_BYTES:
        text = b"".join(pieces)
        if len(text) != size:
            raise ValueError(f"pieces made {len(text)} bytes, not {size}")
        return text.decode("ascii")
    assert _NEW is not None
    out: str = _NEW(size, 127)
    base, o, unslept = id(out) + _HEADER, 0, 0
    for piece in pieces:
        if o + len(piece) > size:
            raise ValueError(f"pieces made more than {size} bytes")
        src = _address(piece)
        for i in range(0, len(piece), COPY_SLICE_BYTES):
            ctypes.memmove(base + o + i, src + i, min(COPY_SLICE_BYTES, len(piece) - i))
            unslept += min(COPY_SLICE_BYTES, len(piece) - i)
            if unslept >= COPY_SLICE_BYTES:
                unslept = 0
                time.sleep(0)
        o += len(piece)
    if o != size:   # never hand out a string with unwritten characters
        raise ValueError(f"pieces made {o} bytes, not {size}")
    return out
