"""Small statistics helpers: percentiles and summaries of samples."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "summarize", "ratio"]


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile of already sorted values (``fraction`` in 0..1)."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(sorted_values[low])
    weight = position - low
    return float(sorted_values[low] * (1 - weight) + sorted_values[high] * weight)


def summarize(values: Sequence[float], scale: float = 1.0) -> dict[str, float | int | None]:
    """``n``, ``p50``, ``p90``, ``p99``, ``max`` and ``mean`` of ``values`` times ``scale``
    (e.g. 1000 for seconds -> milliseconds). Empty input gives ``None`` statistics."""
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(v * scale for v in values)
    return {
        "n": len(ordered),
        "p50": round(percentile(ordered, 0.50), 3),
        "p90": round(percentile(ordered, 0.90), 3),
        "p99": round(percentile(ordered, 0.99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(sum(ordered) / len(ordered), 3),
    }


def ratio(numerator: float | int | None, denominator: float | int | None) -> float | None:
    """``numerator / denominator`` rounded, or ``None`` when either is missing or zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    if isinstance(numerator, float) and math.isnan(numerator):
        return None
    return round(numerator / denominator, 3)
