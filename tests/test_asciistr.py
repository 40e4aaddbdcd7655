"""Big ASCII strings copied in with the GIL free must equal what `decode` makes, at every edge."""

from __future__ import annotations

import base64
import os
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediagate import asciistr, imaging, jsonbody

SIZES = [0, 1, asciistr.MIN_BYTES - 1, asciistr.MIN_BYTES, asciistr.COPY_SLICE_BYTES - 1, asciistr.COPY_SLICE_BYTES,
         asciistr.COPY_SLICE_BYTES + 1, 3 * asciistr.COPY_SLICE_BYTES + 17]


def test_the_fast_path_is_on_for_this_interpreter() -> None:
    assert asciistr.ENABLED, "CPython's compact ASCII layout check failed: big strings fall back to one-call decode"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_decode_equals_the_plain_decode(size: int, kind: type) -> None:
    raw = kind(os.urandom(size).hex().encode()[:size] + b"=")
    for start, end in ((0, len(raw)), (1, len(raw) - 1), (7, len(raw))):
        if end < start:
            continue
        got = asciistr.decode(raw, start, end)
        want = bytes(raw[start:end]).decode("ascii")
        assert got == want and type(got) is str and hash(got) == hash(want) and len(got) == end - start


def test_a_big_string_from_the_fast_path_behaves_like_any_other() -> None:
    raw = b"AB" * asciistr.COPY_SLICE_BYTES
    s = asciistr.decode(raw)
    assert s.isascii() and s[:4] == "ABAB" and s.count("A") == asciistr.COPY_SLICE_BYTES
    assert s.encode() == raw and {s: 1}[raw.decode()] == 1
    assert sys.getrefcount(s) == 2


def test_non_ascii_content_takes_the_utf8_decode() -> None:
    raw = ("é" * asciistr.MIN_BYTES).encode()
    assert not asciistr.is_ascii(raw)
    assert asciistr.decode(raw) == "é" * asciistr.MIN_BYTES


def test_a_json_string_with_a_raw_control_character_is_still_refused() -> None:
    body = b'{"b64": "' + b"A" * (jsonbody.BIG_STRING_CHARS + 10) + b'\x01"}'
    with pytest.raises(ValueError):
        jsonbody._slow_loads(body)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
               min_size=1, max_size=64), st.integers(min_value=1, max_value=3))
def test_big_json_strings_round_trip(unit: str, copies: int) -> None:
    big = (unit * (jsonbody.BIG_STRING_CHARS // len(unit) + 2))[: jsonbody.BIG_STRING_CHARS + 1 + copies]
    doc = {"data": [{"b64_json": big}] * copies, "note": "é"}
    assert jsonbody._slow_loads(jsonbody.dumps(doc)) == doc


@pytest.mark.parametrize("size", SIZES)
def test_join_equals_the_plain_join(size: int) -> None:
    raw = os.urandom(size).hex().encode()[:size]
    for cut in {0, size // 3, size // 2, max(size - 1, 0)}:
        pieces = [raw[:cut], raw[cut:]]
        got = asciistr.join(iter(pieces), size)
        assert got == raw.decode("ascii") and got.isascii() and hash(got) == hash(raw.decode("ascii"))


@pytest.mark.parametrize("size", [10, asciistr.MIN_BYTES + 5])
def test_join_refuses_pieces_that_do_not_make_the_size(size: int) -> None:
    raw = b"a" * size
    with pytest.raises(ValueError):
        asciistr.join([raw], size + 1)     # one short: a string with unwritten characters is never returned
    with pytest.raises(ValueError):
        asciistr.join([raw, b"b"], size)   # one over: never written past the end


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=2048), copies=st.integers(min_value=1, max_value=700),
       prefix=st.sampled_from(["", "data:image/png;base64,", "data:é;base64,"]))
def test_b64encode_equals_the_standard_library(data: bytes, copies: int, prefix: str) -> None:
    payload = data * copies
    assert imaging.b64encode(payload, prefix) == prefix + base64.b64encode(payload).decode()


def test_per_slice_temporaries_stay_below_the_mmap_threshold() -> None:
    """A temporary at or above the threshold is a fresh mapping, faulted in page by page for every slice."""
    from mediagate import allocator
    assert asciistr.CHECK_SLICE_BYTES < allocator.MMAP_THRESHOLD_BYTES
    assert 6 * jsonbody.SLICE_CHARS < allocator.MMAP_THRESHOLD_BYTES   # orjson reserves up to 6 bytes a character
    assert imaging.B64_SLICE_BYTES % 3 == 0
    assert 4 * imaging.B64_SLICE_BYTES // 3 < allocator.MMAP_THRESHOLD_BYTES
