"""Head to head: the stream core's targets, measured in interleaved rounds.

On a shared two-core machine one measurement per server decides a 5 % margin by
noise: the server and the client load processes fill both cores, and the other
parts measure the reference servers minutes after twinstream. Here every measure
is taken in rounds. A round measures all four contenders (twinstream SSE,
twinstream WebSocket, ``sse-starlette``, ``websockets``) one after another, each
on a fresh server, in an order that changes from round to round (each goes first
equally often and follows every other one equally often), so the machine's drift
falls on all of them alike. Each contender's figure is the median over the
rounds; each target compares medians (twinstream's median / the reference's
median) and also says in how many rounds the paired comparison held.

The measures, with the workloads of the throughput and latency parts:

* at the sweep's largest level (1,000 streams in the full preset) at the model's
  pace: server CPU per 1,000 delivered events, delivered events/s (the window
  when every stream was live), the share of all expected events that arrived,
  memory per live stream, how busy the machine was;
* at the latency part's concurrent level (500 streams): p99 delivery delay;
* one unthrottled stream: events/s.

The targets are issue 8's: CPU per event at or below ``websockets``, delivered
events/s at or above it, p99 delay no worse than the reference server of the same
transport, memory per live stream at most 1.4x ``websockets``, the unthrottled
stream at or above ``websockets``.

Runs inside ``peers`` with the full preset; alone: ``python -m benchmarks headtohead``.
``--loads throughput --rounds 40`` runs only the throughput load, with only the
contenders its targets compare (twinstream's two transports and ``websockets``), in
many more rounds: a precise measure of CPU per event, where 8 rounds' noise (a few
per cent) is as large as the difference.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm import tqdm

from .config import SuiteConfig
from .latency import concurrent_latency
from .loadgen import LoadGenerator
from .servers import SSE_STARLETTE, TWINSTREAM, WEBSOCKETS, ServerSpec
from .stats import paired_ratio_interval
from .throughput import sweep_level, unthrottled_stream

__all__ = [
    "CONTENDERS",
    "LOADS",
    "MEASURES",
    "TARGETS",
    "Target",
    "label",
    "targets_for",
    "contenders_for",
    "balanced_rounds",
    "round_order",
    "spread",
    "judge",
    "run_head_to_head",
    "report_section",
    "readme_table",
    "rounds_run_section",
    "pool",
    "pooled_table",
]

T = TypeVar("T")

CONTENDERS: tuple[tuple[ServerSpec, str], ...] = (
    (TWINSTREAM, "sse"),
    (TWINSTREAM, "ws"),
    (SSE_STARLETTE, "sse"),
    (WEBSOCKETS, "ws"),
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


def _sweep_measures(level: dict[str, Any]) -> dict[str, float | None]:
    """This part's measures from one sweep level's result."""
    expected = level.get("expected_delta_events") or 0
    return {
        "cpu_ms_per_1k_events": level.get("server_cpu_ms_per_1k_events"),
        "delivered_events_per_s": level.get("delivered_events_per_s"),
        "delivered_percent": (
            round(100 * level["delta_events"] / expected, 3) if expected else None
        ),
        "memory_per_stream_kib": level.get("memory_per_stream_kib"),
        "machine_busy_percent": level.get("machine_cpu_percent"),
    }


def run_head_to_head(config: SuiteConfig, progress: bool = True) -> dict[str, Any]:
    """``config.head_to_head_rounds`` rounds of ``config.head_to_head_loads`` over the
    contenders their targets compare. ValueError for an unknown load."""
    rounds = config.head_to_head_rounds
    streams = max(config.sweep)
    loads = list(dict.fromkeys(config.head_to_head_loads))  # a load named twice runs once
    unknown = [load for load in loads if load not in LOADS]
    if unknown or not loads:
        raise ValueError(
            f"unknown head-to-head load(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(LOADS)}"
        )
    contenders = contenders_for(targets_for(loads))
    labels = [label(spec, transport) for spec, transport in contenders]
    measured = [measure for load in loads for measure in LOADS[load]]
    samples: dict[str, dict[str, list[float | None]]] = {
        name: {measure: [] for measure in measured} for name in labels
    }
    errors: dict[str, list[str]] = {name: [] for name in labels}
    orders: list[list[str]] = []

    def throughput(spec: ServerSpec, transport: str, load: LoadGenerator) -> dict[str, Any]:
        level = sweep_level(spec, transport, streams, config, load)
        return {"measures": _sweep_measures(level), "errors": level["error_examples"]}

    def latency(spec: ServerSpec, transport: str, load: LoadGenerator) -> dict[str, Any]:
        concurrent = concurrent_latency(spec, transport, config, load)
        return {
            "measures": {"p99_delay_ms": concurrent["delivery_delay_ms"]["p99"]},
            "errors": concurrent["error_examples"],
        }

    def unthrottled(spec: ServerSpec, transport: str, load: LoadGenerator) -> dict[str, Any]:
        result = unthrottled_stream(spec, transport, config)
        failed = [f"{result['errors']} unthrottled completions failed"] if result["errors"] else []
        return {"measures": {"unthrottled_events_per_s": result["events_per_s"]}, "errors": failed}

    runners: dict[str, Callable[[ServerSpec, str, LoadGenerator], dict[str, Any]]] = {
        "throughput": throughput,
        "latency": latency,
        "unthrottled": unthrottled,
    }
    parts = [(runners[load], LOADS[load]) for load in loads]
    bar = tqdm(
        total=len(parts) * rounds * len(contenders),
        desc="head to head",
        unit="run",
        disable=not progress,
        leave=False,
    )
    with LoadGenerator(config.workers) as load, bar:
        for round_index in range(rounds):
            order = round_order(contenders, round_index)
            orders.append([label(spec, transport) for spec, transport in order])
            for measure, names in parts:
                for spec, transport in order:
                    name = label(spec, transport)
                    bar.set_postfix_str(f"round {round_index + 1}: {name}")
                    try:
                        outcome = measure(spec, transport, load)
                    except Exception as exc:  # one failed run leaves a gap, not a lost part
                        outcome = {"measures": {}, "errors": [f"{type(exc).__name__}: {exc}"]}
                    for key in names:
                        samples[name][key].append(outcome["measures"].get(key))
                    errors[name] += outcome["errors"]
                    bar.update()
    return {
        "rounds": rounds,
        "loads": loads,
        "streams": streams,
        "latency_streams": config.latency_concurrency,
        "unthrottled_seconds": config.unthrottled_seconds,
        "orders": orders,
        "contenders": {
            name: {
                "samples": samples[name],
                "spread": {m: spread(values) for m, values in samples[name].items()},
                "error_examples": sorted(set(errors[name]))[:3],
            }
            for name in labels
        },
        "targets": judge(samples, targets_for(loads)),
    }


# -- report ---------------------------------------------------------------------------


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _spread_cell(entry: dict[str, Any], digits: int = 1) -> str:
    if not entry or entry.get("median") is None:
        return "—"
    values = (_number(entry[k], digits) for k in ("median", "min", "max"))
    return "{} ({}–{})".format(*values)


def _digits(measure: str) -> int:
    """Percentages get two decimals: 99.96 % delivered must not read 100.0."""
    return 2 if MEASURES[measure][1] == "%" else 1


def _measure_label(data: dict[str, Any], measure: str) -> str:
    text, unit = MEASURES[measure]
    if measure == "p99_delay_ms":
        where = f", {data['latency_streams']:,} streams"
    elif measure == "unthrottled_events_per_s":
        where = ""
    else:
        where = f", {data['streams']:,} streams"
    return f"{text}{where} ({unit})"


def _verdicts(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets judged from the run's samples, so a report written by newer
    code shows what this code computes (a results file keeps the verdicts of the
    code that ran; the samples are the measurement)."""
    samples = {name: c.get("samples", {}) for name, c in data["contenders"].items()}
    return judge(samples, targets_for(_loads(data)))


def _loads(data: dict[str, Any]) -> list[str]:
    """The loads a run's rounds ran (a run from before ``--loads`` ran them all)."""
    return list(data.get("loads") or LOADS)


def _verdict_cell(verdict: dict[str, Any]) -> str:
    if verdict["met"] is None:
        return "not measured"
    word = "met" if verdict["met"] else "missed"
    rounds = f"{verdict['rounds_met']} of {verdict['rounds']} rounds"
    interval = verdict.get("paired_interval")
    if not interval:
        return f"{word} ({verdict['ratio']:.2f}×; {rounds})"
    if verdict.get("at_parity"):
        noise, word = f", at parity: within ±{PARITY:.0%}", "met"
    else:
        noise = "" if verdict.get("decisive") else ", within noise"
    low, high = interval
    # a narrow interval near 1 must not read 1.00–1.00
    digits = 2 if high - low >= 0.05 else 3 if high - low >= 0.005 else 4
    paired = f"paired {low:.{digits}f}–{high:.{digits}f}×{noise}"
    return f"{word} ({verdict['ratio']:.2f}×; {rounds}; {paired})"


def readme_table(results: dict[str, Any]) -> str | None:
    """The targets, one row per measure: each twinstream transport's median, its
    reference's, and the verdict (ratio of medians; rounds where the pair held)."""
    data = results.get("head_to_head")
    if not data or not data.get("rounds"):
        return None
    by_measure: dict[str, dict[str, dict[str, Any]]] = {}
    for judged in _verdicts(data):
        by_measure.setdefault(judged["measure"], {})[judged["contender"]] = judged
    spreads = {name: c["spread"] for name, c in data["contenders"].items()}
    header = [
        "Target (median of rounds)",
        "twinstream SSE",
        "vs",
        "Verdict",
        "twinstream WebSocket",
        "vs",
        "Verdict",
    ]
    rows = []
    for measure, verdicts in by_measure.items():
        sse, ws = verdicts.get("twinstream sse"), verdicts.get("twinstream ws")
        row = [_measure_label(data, measure)]
        for verdict, name in ((sse, "twinstream sse"), (ws, "twinstream ws")):
            if verdict is None:
                row += ["—", "—", "—"]
                continue
            row += [
                _spread_cell(spreads.get(name, {}).get(measure, {}), _digits(measure)),
                f"{verdict['target']}: {_number(verdict['reference_median'])}",
                _verdict_cell(verdict),
            ]
        rows.append(row)
    from .report import _table  # report imports this module

    return _table(header, rows)


_LOAD_NAMES = {
    "throughput": "the throughput load",
    "latency": "the latency load",
    "unthrottled": "the unthrottled stream",
}


def rounds_run_section(results: dict[str, Any]) -> str | None:
    """The README's block for a run of this part alone (``python -m benchmarks
    headtohead --loads throughput --rounds 40``): what ran, then the targets it
    measured. None when the run has no rounds."""
    table = readme_table(results)
    if table is None:
        return None
    data = results["head_to_head"]
    meta = results.get("meta", {})
    loads = ", then ".join(_LOAD_NAMES[load] for load in _loads(data))
    minutes = (meta.get("duration_s") or 0) / 60
    return (
        f"A longer run of the rounds alone: `{meta.get('command') or 'python -m benchmarks'}` "
        f"({str(meta.get('started', ''))[:10]}, {minutes:.0f} min, {meta.get('cpus')} cores "
        f"of a shared {meta.get('cpu_model')}): {data['rounds']} rounds of "
        f"{', '.join(data['contenders'])}; each round {loads}, each on a fresh server. "
        "Eight rounds' noise is a few per cent, as large as the closest differences; "
        "more rounds narrow the interval, about as one over the square root of their "
        "number.\n\n" + table
    )


def report_section(results: dict[str, Any]) -> str:
    """The report's section for this part (empty when it did not run)."""
    from .report import _table  # report imports this module

    data = results.get("head_to_head")
    if not data or not data.get("rounds"):
        return ""
    names = list(data["contenders"])
    loads = _loads(data)
    loads_text = ", then ".join(_LOAD_NAMES[load] for load in loads)
    cycle = balanced_rounds(len(names))
    intro = (
        f"{data['rounds']} rounds; each round measured every contender in turn on a fresh "
        f"server, {loads_text}, in an order that changed each round (round 1: "
        f"{', '.join(data['orders'][0])}; over every {cycle} rounds each server goes "
        "first, and follows every other one, equally often). Cells: median (min–max) "
        "over the rounds. A target "
        "compares medians; *rounds* counts the rounds where the same-round pair met it; "
        "*paired* is the 95 % interval of the same-round ratios' geometric mean, and "
        "*within noise* says it does not lie wholly on the verdict's side of the target: "
        "the two are within the rounds' noise of each other, and another run may turn "
        f"the verdict. *At parity* says it lies within ±{PARITY:.0%} of the target's limit: "
        "the two are equal within the rounds' noise, which meets an \"at or above\" or "
        "\"at or below\" target whichever way the medians fell."
    )
    header = ["Measure", *names]
    rows = [
        [_measure_label(data, measure)]
        + [
            _spread_cell(data["contenders"][name]["spread"].get(measure, {}), _digits(measure))
            for name in names
        ]
        for measure in MEASURES
        if any(measure in LOADS[load] for load in loads)
    ]
    target_rows = [
        [
            _measure_label(data, v["measure"]),
            v["contender"],
            v["target"],
            _number(v["median"]),
            _number(v["reference_median"]),
            _verdict_cell(v),
        ]
        for v in _verdicts(data)
    ]
    target_header = ["Measure", "Contender", "Target", "Median", "Reference median", "Verdict"]
    problems = [
        f"- {name}: {'; '.join(c['error_examples'])}"
        for name, c in data["contenders"].items()
        if c.get("error_examples")
    ]
    return "\n\n".join(
        ["## Head to head: the stream core's targets", intro, _table(header, rows)]
        + [_table(target_header, target_rows)]
        + (["Errors:\n" + "\n".join(problems)] if problems else [])
    )


# -- several runs ---------------------------------------------------------------------


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
            load for load in LOADS if load in pooled["loads"] or load in _loads(data)
        ]
        pooled["runs"].append(name)
        pooled["orders"] += data.get("orders", [])
    if pooled is None:
        raise ValueError("no runs to pool")
    for entry in pooled["contenders"].values():
        entry["spread"] = {m: spread(v) for m, v in entry["samples"].items()}
    pooled["targets"] = _verdicts(pooled)
    return pooled


def pooled_table(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """``python -m benchmarks pool``: the targets over every round of ``runs``."""
    data = pool(runs)
    table = readme_table({"head_to_head": data}) or ""
    return (
        f"Issue 8's targets over {data['rounds']} head-to-head rounds from "
        f"{len(data['runs'])} runs ({', '.join(data['runs'])}): medians of all rounds, "
        "the same-round ratios' 95 % interval beside each verdict.\n\n" + table
    )
