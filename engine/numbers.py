"""One way to show a number: a whole float as an int (4.0 -> 4), anything else unchanged.

Durations, quantities and prices are computed as floats; clients and upstream templates should see `4`,
not `4.0`, where the value is whole — written once here so every place agrees.
"""

from __future__ import annotations


def plain(x: float | int) -> float | int:
    """`x` as an int when it is whole, else as it is (NaN and infinities are not whole and stay floats)."""
    return int(x) if float(x).is_integer() else x


def plain_text(x: float | int | None) -> str | None:
    """`plain(x)` as a string (`"4"`, `"2.5"`); None stays None."""
    return None if x is None else str(plain(x))
