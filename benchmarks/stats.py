"""Small statistics helpers: percentiles and summaries of samples."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "summarize", "ratio", "paired_ratio_interval"]


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


#: Student's t, two-sided 95 % (the 0.975 quantile), by degrees of freedom 1..30
#: (above 30, 1.96 + 2.4 / df is within 0.1 % of it)
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def paired_ratio_interval(
    pairs: Sequence[tuple[float, float]],
) -> tuple[float, float, float] | None:
    """The geometric mean of the paired ratios ``a / b`` and its 95 % confidence
    interval, ``(mean, low, high)``: a t interval on the logs of the ratios, which
    suits measures whose noise scales with their size (CPU, delay, rates). ``None``
    with fewer than two pairs, or when a value is not positive (a round that
    delivered nothing has no ratio to average, and leaving it out would flatter)."""
    if len(pairs) < 2 or any(a <= 0 or b <= 0 for a, b in pairs):
        return None
    logs = [math.log(a / b) for a, b in pairs]
    n = len(logs)
    mean = sum(logs) / n
    deviation = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    degrees = n - 1
    t = _T975[degrees - 1] if degrees <= len(_T975) else 1.96 + 2.4 / degrees
    half = t * deviation / math.sqrt(n)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)
