"""JSON in and out on the hot path (orjson), without a big body ever holding the event loop.

Measured (bench/RESULTS.md, "Memory and the event loop"): orjson, json, binascii/base64 and
bytes.decode all keep the GIL for a whole call, so a worker thread alone does not free the loop — a
168 MB orjson.loads in a thread still stalls it for the whole parse. What frees it is doing big work
in slices: the thread yields the GIL between slices. So strings longer than BIG_STRING_CHARS (base64
images, data: URLs) are lifted out of a body, the small rest is (de)serialised in one call, and the
big strings are encoded or decoded SLICE_CHARS at a time.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Iterator, TypeVar

import orjson

from mediagate import asciistr

JSON_INLINE_BYTES = 1024 * 1024     # bodies up to this are (de)serialised inline: cheaper than a thread hop
BIG_STRING_CHARS = 256 * 1024       # strings longer than this are moved slice by slice
SLICE_CHARS = 192 * 1024            # one slice: well under 1 ms of GIL held at a time, and the ~6x its length
                                    # orjson reserves for the encoding stays below allocator.MMAP_THRESHOLD_BYTES
                                    # (heap, not a fresh mapping faulted in page by page for every slice)
T = TypeVar("T")
# Work that holds the GIL (JSON, base64, in slices) runs on one thread: more threads could not run it in
# parallel anyway, and each extra one contending for the GIL delays the event loop's turn (measured: four
# parsing threads let /healthz wait hundreds of ms; one, a few ms). Pillow releases the GIL: it keeps the pool.
_GIL_BOUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mediagate-slices")


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run GIL-bound sliced work on the one slice thread."""
    return await asyncio.get_running_loop().run_in_executor(_GIL_BOUND, fn, *args)


_MARK = "mediagate-big-" + secrets.token_hex(8)  # stands in for a lifted string; unguessable, so never user data
_MARK_JSON = orjson.dumps(_MARK)
_INT_RANGE = 2.0 ** 63                 # orjson reads an integer literal past 64 bits as a float


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes. Falls back to the standard library for what orjson refuses (lone surrogates,
    integers beyond 64 bits), which it writes as escapes."""
    try:
        return orjson.dumps(value, default=_default)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), default=_default).encode("ascii")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _has_huge_float(value: Any) -> bool:
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
        elif type(v) is float and abs(v) >= _INT_RANGE:
            return True
    return False


def loads(raw: bytes) -> Any:
    """Parse JSON; NaN and Infinity are refused. Raises ValueError. A body holding a number past 64 bits is
    parsed again by the standard library, which keeps big integers exact (orjson makes them floats)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise
        # an escaped lone surrogate (`"\ud800"`) is valid JSON that orjson refuses: parse it so that the text
        # check can name the field no upstream encoding can carry (mediagate.textcheck), not call it bad JSON
        return json.loads(raw, parse_constant=_refuse_constant)
    if _has_huge_float(value):
        return json.loads(raw, parse_constant=_refuse_constant)
    return value


# ---------------------------------------------------------------- encoding with big strings sliced

def _lift(value: Any, big: list[str]) -> Any:
    if isinstance(value, str):
        if len(value) > BIG_STRING_CHARS:
            big.append(value)
            return _MARK
        return value
    if isinstance(value, dict):
        return {k: _lift(v, big) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lift(v, big) for v in value]
    if isinstance(value, Mapping):
        return {k: _lift(v, big) for k, v in value.items()}
    return value


def _string_slices(s: str) -> Iterator[bytes | memoryview]:
    """`s` as JSON string content (escaped), a slice at a time; with the quotes around it. A slice is a view
    inside its encoding, not a copy of it without the quotes."""
    yield b'"'
    for i in range(0, len(s), SLICE_CHARS):
        yield memoryview(dumps(s[i:i + SLICE_CHARS]))[1:-1]
    yield b'"'


def _has_big_string(value: Any) -> bool:
    """Whether the body's big strings come to more than JSON_INLINE_BYTES: below that one encode is ~1 ms on the
    loop and cheaper than slicing and streaming (a 256² PNG's 262 KB of base64 was sent as a stream)."""
    todo = [value]
    big = 0
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            if len(v) > BIG_STRING_CHARS:
                big += len(v)
                if big > JSON_INLINE_BYTES:
                    return True
        elif isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, (list, tuple)):
            todo.extend(v)
        elif isinstance(v, Mapping):
            return True  # an image context: let _lift look inside
    return False


def parts(value: Any) -> list[bytes | str]:
    """The serialised body as pieces: bytes as they are, and each big string still to be encoded."""
    if not _has_big_string(value):
        return [dumps(value)]
    big: list[str] = []
    skeleton = dumps(_lift(value, big))
    if not big:
        return [skeleton]
    pieces = skeleton.split(_MARK_JSON)
    if len(pieces) != len(big) + 1:  # cannot happen with an unguessable marker; stay correct anyway
        return [dumps(value)]
    out: list[bytes | str] = [pieces[0]]
    for s, after in zip(big, pieces[1:]):
        out += [s, after]
    return out


def iter_bytes(pieces: list[bytes | str]) -> Iterator[bytes | memoryview]:
    for p in pieces:
        if isinstance(p, str):
            yield from _string_slices(p)
        elif p:
            yield p


async def stream(pieces: list[bytes | str]) -> AsyncIterator[bytes | memoryview]:
    """A response body sent as it is encoded: no whole copy of it ever exists, and the loop runs
    between slices. It must be told to: a server's send returns without yielding while the socket takes
    the bytes (a fast reader on loopback took a third of a 168 MB answer in one 418 ms loop step)."""
    for chunk in iter_bytes(pieces):
        yield chunk
        await asyncio.sleep(0)


def _join(pieces: list[bytes | str]) -> bytes:
    out = bytearray()
    for chunk in iter_bytes(pieces):
        out += chunk
    return bytes(out)


async def dumps_async(value: Any) -> bytes:
    """JSON bytes for an upstream body: inline when small, else built slice by slice in a worker thread."""
    pieces = parts(value)
    if len(pieces) == 1:
        return pieces[0]  # type: ignore[return-value]
    return await off_loop(_join, pieces)


# ---------------------------------------------------------------- decoding with big strings sliced

def _closing_quote(raw: bytes, start: int) -> int:
    """Index of the quote closing the string whose content starts at `start` (-1: none)."""
    j = start
    while True:
        j = raw.find(b'"', j)
        if j == -1:
            return -1
        k = j - 1
        while k >= start and raw[k] == 0x5C:  # backslash
            k -= 1
        if (j - 1 - k) % 2 == 0:
            return j
        j += 1


def _decode_big(raw: bytes, a: int, b: int) -> str:
    """The content of a long JSON string without escapes, validated and decoded a slice at a time. Plain
    ASCII (base64, data: URLs) is copied into its string with the GIL free (engine/asciistr.py); a join of
    decoded slices would hold it for the whole string."""
    if asciistr.ENABLED and asciistr.is_ascii(raw, a, b, json_string=True):
        return asciistr.decode(raw, a, b, checked=True)
    strs: list[str] = []
    i = a
    while i < b:
        j = min(b, i + SLICE_CHARS)
        while j < b and 0x80 <= raw[j] <= 0xBF:  # never split a UTF-8 sequence
            j -= 1
        strs.append(orjson.loads(b'"' + raw[i:j] + b'"'))
        i = j
        time.sleep(0)   # hand the GIL to a waiting event loop now, not after the switch interval
    return "".join(strs)


def _slow_loads(raw: bytes) -> Any:
    skeleton: list[bytes] = []
    big: list[tuple[int, int]] = []
    pos = 0
    i = raw.find(b'"')
    while i != -1:
        j = _closing_quote(raw, i + 1)
        if j == -1:
            break  # malformed: the full parse below says so
        if j - i - 1 > BIG_STRING_CHARS and raw.find(b"\\", i + 1, j) == -1:
            skeleton += [raw[pos:i], _MARK_JSON]
            big.append((i + 1, j))
            pos = j + 1
        i = raw.find(b'"', j + 1)
    if not big:
        return loads(raw)
    skeleton.append(raw[pos:])
    strings = [_decode_big(raw, a, b) for a, b in big]
    used: list[int] = []
    value = _put_back(loads(b"".join(skeleton)), strings, used)
    if len(used) != len(strings):  # a big key, or a duplicate key dropped one: let the full parse decide
        return loads(raw)
    return value


def _put_back(value: Any, strings: list[str], used: list[int]) -> Any:
    if isinstance(value, str):
        if value != _MARK or len(used) >= len(strings):
            return value
        used.append(1)
        return strings[len(used) - 1]
    if isinstance(value, dict):
        return {k: _put_back(v, strings, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_put_back(v, strings, used) for v in value]
    return value


async def loads_async(raw: bytes) -> Any:
    """Parse JSON: inline when small, else in a worker thread with big strings decoded in slices.
    Raises ValueError like `loads`."""
    if len(raw) <= JSON_INLINE_BYTES:
        return loads(raw)
    return await off_loop(_slow_loads, bytes(raw))
