"""Cells and tables: the one number formatter and the one markdown table builder.

A leaf: it imports nothing from :mod:`benchmarks`, so every part and every report
section can use it without reaching into another's module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["DASH", "BUSY_PERCENT", "get", "fmt", "ratio_cell", "table"]

#: what a cell shows for a figure the run does not have
DASH = "—"

#: machine-wide CPU use (all cores, all processes) above which a figure is tainted
BUSY_PERCENT = 90.0


def get(data: Any, *path: Any) -> Any:
    """``data[path[0]][path[1]]...``, or ``None`` where the path leaves the data."""
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def fmt(value: Any, digits: int = 1, *, keep_digits: bool = False, plain: bool = False) -> str:
    """A figure as a cell: :data:`DASH` for none, yes/no, ints with thousands
    separators, floats with ``digits`` decimals below 1,000 and none above.
    ``keep_digits``: every number (ints too) with ``digits`` decimals and separators.
    ``plain``: no thousands separators and no rounding off above 1,000 -- ints as they
    are, floats with ``digits`` decimals at any size (with ``keep_digits``, ints too)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    separators = "" if plain else ","
    if keep_digits and isinstance(value, (int, float)):
        return f"{value:{separators}.{digits}f}"
    if isinstance(value, int):
        return f"{value:{separators}}"
    if isinstance(value, float):
        if abs(value) >= 1000 and not plain:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def ratio_cell(numerator: Any, denominator: Any) -> str:
    """``numerator / denominator`` as ``1.23×``; :data:`DASH` unless both are numbers."""
    if (
        not isinstance(numerator, (int, float))
        or not isinstance(denominator, (int, float))
        or not denominator
    ):
        return DASH
    return f"{numerator / denominator:.2f}×"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
