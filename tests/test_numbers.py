"""engine/numbers.py: the one numeric-coercion helper (whole floats shown as ints)."""

from __future__ import annotations

import math

import pytest

from mediagate.numbers import plain, plain_text

CASES = [
    # value, plain(value), plain_text(value)
    (4.0, 4, "4"),
    (4, 4, "4"),
    (0.0, 0, "0"),
    (-3.0, -3, "-3"),
    (2.5, 2.5, "2.5"),
    (0.1, 0.1, "0.1"),
    (1e20, 10**20, str(10**20)),
    (12.000000001, 12.000000001, "12.000000001"),
]


@pytest.mark.parametrize("value, expected, text", CASES)
def test_plain(value: float, expected: float | int, text: str) -> None:
    got = plain(value)
    assert got == expected and type(got) is type(expected)
    assert plain_text(value) == text


def test_none_and_non_finite() -> None:
    assert plain_text(None) is None
    assert math.isnan(plain(float("nan")))
    assert plain(float("inf")) == float("inf") and isinstance(plain(float("inf")), float)


def test_no_copies_left() -> None:
    """The helper replaced the per-module copies; a new one would drift from it."""
    import pathlib
    engine = pathlib.Path(__file__).resolve().parent.parent / "engine"
    copies = [p.name for p in engine.glob("*.py") if p.name != "numbers.py" and "is_integer()" in p.read_text()]
    assert not copies, f"use mediagate.numbers.plain instead of is_integer() in: {copies}"
