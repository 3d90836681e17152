"""Issue 8's targets and the head-to-head rounds' design, as pure code.

The contenders and measures, the targets each twinstream transport must meet, the
order of the rounds (a Williams design), and :func:`judge`, which decides each
target from the rounds' samples; :func:`pool` joins the rounds of several runs.
:mod:`benchmarks.headtohead` runs the rounds, :mod:`benchmarks.report.headtohead`
renders them.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .servers import NODE, SSE_STARLETTE, TWINSTREAM, WEBSOCKETS, ServerSpec
from .stats import paired_ratio_interval

__all__ = [
    "CONTENDERS",
    "LOADS",
    "MEASURES",
    "PARITY",
    "SWEEP_MEASURES",
    "TARGETS",
    "Target",
    "label",
    "targets_for",
    "contenders_for",
    "balanced_rounds",
    "round_order",
    "spread",
    "judge",
    "verdicts_of",
    "loads_of",
    "pool",
]

T = TypeVar("T")

CONTENDERS: tuple[tuple[ServerSpec, str], ...] = (
    (TWINSTREAM, "sse"),
    (TWINSTREAM, "ws"),
    (SSE_STARLETTE, "sse"),
    (WEBSOCKETS, "ws"),
    (NODE, "sse"),
    (NODE, "ws"),
)

#: measure -> (what it is, unit); the order is the report's
MEASURES: dict[str, tuple[str, str]] = {
    "cpu_ms_per_1k_events": ("Server CPU per 1,000 delivered events", "ms"),
    "delivered_events_per_s": ("Delivered events/s, every stream live", "events/s"),
    "delivered_percent": ("Expected events that arrived", "%"),
    "memory_per_stream_kib": ("Memory per live stream", "KiB"),
    "machine_busy_percent": ("Machine busy during the streams", "% of all cores"),
    "p99_delay_ms": ("Delivery delay p99", "ms"),
    "unthrottled_events_per_s": ("One unthrottled stream", "events/s"),
}


def label(spec: ServerSpec, transport: str) -> str:
    """``twinstream sse``, ``twinstream ws``; a reference server by its name alone."""
    return f"{spec.name} {transport}" if len(spec.transports) > 1 else spec.name


@dataclass(frozen=True)
class Target:
    """``contender``'s median of ``measure`` must be at most (``at_most``) or at least
    ``limit`` times ``reference``'s."""

    measure: str
    contender: str
    reference: str
    limit: float
    at_most: bool

    @property
    def wording(self) -> str:
        relation = "≤" if self.at_most else "≥"
        factor = "" if self.limit == 1 else f"{self.limit:g}× "
        return f"{relation} {factor}{self.reference}"

    def holds(self, ratio: float) -> bool:
        return ratio <= self.limit if self.at_most else ratio >= self.limit


TARGETS: tuple[Target, ...] = tuple(
    target
    for transport in ("sse", "ws")
    for target in (
        Target("cpu_ms_per_1k_events", f"twinstream {transport}", "websockets", 1.0, True),
        Target("delivered_events_per_s", f"twinstream {transport}", "websockets", 1.0, False),
        Target(
            "p99_delay_ms",
            f"twinstream {transport}",
            "sse-starlette" if transport == "sse" else "websockets",
            1.0,
            True,
        ),
        Target("memory_per_stream_kib", f"twinstream {transport}", "websockets", 1.4, True),
        Target("unthrottled_events_per_s", f"twinstream {transport}", "websockets", 1.0, False),
        # issue 25: at or below the Node server (node:http, ws) of the same transport
        Target("cpu_ms_per_1k_events", f"twinstream {transport}", f"node {transport}", 1.0, True),
    )
)


#: the same-round ratios' 95 % interval lying wholly within this fraction of a
#: target's limit shows the two at parity: "at" the limit, which every target
#: ("at or below", "at or above") allows, however the medians happen to fall
#: (two servers that both deliver all 30,000 events/s offered differ by noise only)
PARITY = 0.01


def balanced_rounds(count: int) -> int:
    """How many rounds :func:`round_order` takes to balance ``count`` items."""
    return count if count % 2 == 0 else 2 * count


def round_order(items: Sequence[T], round_index: int) -> list[T]:
    """``items`` in round ``round_index``'s order: a Williams design, so over
    :func:`balanced_rounds` rounds each item goes first equally often, and follows
    every other one equally often (what a server leaves behind, sockets in
    TIME_WAIT or a warm cache, falls on every other server alike). An odd count
    needs two squares, the second the first's rows reversed: one cyclic square
    alone would put the same item after a given one every round."""
    count = len(items)
    if not count:
        return []
    # first row 0, 1, n-1, 2, n-2, ...; row r adds r to each (mod n)
    first = [0]
    low, high = 1, count - 1
    while len(first) < count:
        first.append(low)
        low += 1
        if len(first) < count:
            first.append(high)
            high -= 1
    order = [items[(index + round_index) % count] for index in first]
    if count % 2 and (round_index // count) % 2:
        order.reverse()
    return order


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Median, min and max of the values that were measured (``None`` ones dropped)."""
    measured = [v for v in values if v is not None]
    if not measured:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {
        "n": len(measured),
        "median": round(statistics.median(measured), 3),
        "min": min(measured),
        "max": max(measured),
    }


def judge(
    samples: dict[str, dict[str, list[float | None]]], targets: Sequence[Target] = TARGETS
) -> list[dict[str, Any]]:
    """Each target against the rounds' samples (``samples[contender][measure]``, one
    value per round, in round order). Only rounds where both sides were measured
    count; the ratio of their medians decides, and the rounds where the paired
    (same-round) ratio held are counted beside it. The paired ratios' geometric
    mean and 95 % interval say whether the verdict is decisive: an interval
    that holds both sides of the limit means the two are within the rounds'
    noise of each other, and another run may well turn the verdict, unless it
    lies within :data:`PARITY` of the limit: then the two are at parity, which
    meets the target."""
    verdicts = []
    for target in targets:
        mine = samples.get(target.contender, {}).get(target.measure, [])
        theirs = samples.get(target.reference, {}).get(target.measure, [])
        pairs = [(a, b) for a, b in zip(mine, theirs) if a is not None and b is not None]
        median = statistics.median(a for a, _ in pairs) if pairs else None
        reference = statistics.median(b for _, b in pairs) if pairs else None
        ratio = median / reference if median is not None and reference else None
        paired = [a / b for a, b in pairs if b]
        interval = paired_ratio_interval(pairs)
        at_parity = interval is not None and (
            target.limit / (1 + PARITY) <= interval[1] <= interval[2] <= target.limit * (1 + PARITY)
        )
        verdicts.append(
            {
                "measure": target.measure,
                "contender": target.contender,
                "reference": target.reference,
                "target": target.wording,
                "median": round(median, 3) if median is not None else None,
                "reference_median": round(reference, 3) if reference is not None else None,
                "ratio": round(ratio, 3) if ratio is not None else None,
                "met": (True if at_parity else target.holds(ratio)) if ratio is not None else None,
                "at_parity": at_parity,
                "rounds_met": sum(1 for r in paired if target.holds(r)),
                "rounds": len(paired),
                "paired_ratio": round(interval[0], 4) if interval else None,
                "paired_interval": [round(interval[1], 4), round(interval[2], 4)]
                if interval
                else None,
                # the interval lies wholly on the verdict's side of the limit:
                # more rounds would not be expected to turn it
                "decisive": (
                    at_parity
                    or target.holds(interval[1]) == target.holds(interval[2]) == target.holds(ratio)
                )
                if interval and ratio is not None
                else None,
            }
        )
    return verdicts


#: the measures taken from the throughput load (one sweep level)
SWEEP_MEASURES = (
    "cpu_ms_per_1k_events",
    "delivered_events_per_s",
    "delivered_percent",
    "memory_per_stream_kib",
    "machine_busy_percent",
)


#: the loads a round runs, in the order it runs them, and the measures each gives
LOADS: dict[str, tuple[str, ...]] = {
    "throughput": SWEEP_MEASURES,
    "latency": ("p99_delay_ms",),
    "unthrottled": ("unthrottled_events_per_s",),
}


def targets_for(loads: Sequence[str]) -> tuple[Target, ...]:
    """The targets whose measure one of ``loads`` gives (unknown loads give none)."""
    measures = {measure for load in loads for measure in LOADS.get(load, ())}
    return tuple(target for target in TARGETS if target.measure in measures)


def contenders_for(targets: Sequence[Target]) -> tuple[tuple[ServerSpec, str], ...]:
    """The contenders ``targets`` compare, in :data:`CONTENDERS`' order."""
    names = {t.contender for t in targets} | {t.reference for t in targets}
    return tuple(c for c in CONTENDERS if label(*c) in names)


def verdicts_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets judged from the run's samples, so a report written by newer
    code shows what this code computes (a results file keeps the verdicts of the
    code that ran; the samples are the measurement)."""
    samples = {name: c.get("samples", {}) for name, c in data["contenders"].items()}
    return judge(samples, targets_for(loads_of(data)))


def loads_of(data: dict[str, Any]) -> list[str]:
    """The loads a run's rounds ran (a run from before ``--loads`` ran them all)."""
    return list(data.get("loads") or LOADS)


# -- several runs' rounds as one ------------------------------------------------------


def pool(runs: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The head-to-head rounds of several runs (``(name, results)`` pairs) as one
    part's data: each contender's samples joined in run order, so the verdicts
    and their intervals rest on every round. Runs must have measured the same
    loads. ValueError (naming the run) otherwise, or when a run has no rounds."""
    pooled: dict[str, Any] | None = None
    for name, results in runs:
        data = results.get("head_to_head")
        if not data or not data.get("rounds"):
            raise ValueError(f"{name}: no head-to-head rounds in this run")
        if pooled is None:
            pooled = {
                "rounds": 0,
                "loads": [],
                "runs": [],
                "streams": data["streams"],
                "latency_streams": data["latency_streams"],
                "unthrottled_seconds": data.get("unthrottled_seconds"),
                "orders": [],
                "contenders": {},
            }
        for key in ("streams", "latency_streams", "unthrottled_seconds"):
            if data.get(key) != pooled[key]:
                raise ValueError(
                    f"{name}: measured {key}={data.get(key)}, the first run {pooled[key]}: "
                    "pool only runs of the same preset"
                )
        rounds = data["rounds"]
        for contender, entry in data["contenders"].items():
            for measure, values in entry.get("samples", {}).items():
                if len(values) != rounds:
                    raise ValueError(
                        f"{name}: {contender} has {len(values)} {measure} samples for "
                        f"{rounds} rounds, so its rounds cannot be paired"
                    )
        # A contender or measure one run lacks is None in its rounds, so that the
        # rounds stay paired across runs.
        before = pooled["rounds"]
        for contender in dict.fromkeys([*pooled["contenders"], *data["contenders"]]):
            joined = pooled["contenders"].setdefault(contender, {"samples": {}})["samples"]
            samples = data["contenders"].get(contender, {}).get("samples", {})
            for measure in MEASURES:
                values = joined.setdefault(measure, [None] * before)
                values.extend(samples.get(measure, [None] * rounds))
        pooled["rounds"] += rounds
        pooled["loads"] = [
            load for load in LOADS if load in pooled["loads"] or load in loads_of(data)
        ]
        pooled["runs"].append(name)
        pooled["orders"] += data.get("orders", [])
    if pooled is None:
        raise ValueError("no runs to pool")
    for entry in pooled["contenders"].values():
        entry["spread"] = {m: spread(v) for m, v in entry["samples"].items()}
    pooled["targets"] = verdicts_of(pooled)
    return pooled
