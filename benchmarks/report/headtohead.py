"""The head-to-head rounds in the report, the README and ``python -m benchmarks pool``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..targets import LOADS, MEASURES, PARITY, balanced_rounds, loads_of, pool, verdicts_of
from .format import DASH, fmt, table

__all__ = [
    "verdict_cell",
    "readme_table",
    "rounds_run_section",
    "report_section",
    "headtohead_section",
    "pooled_table",
]


def _number(value: Any, digits: int = 1) -> str:
    """A median: every value as a float (a median of whole numbers shows its decimals)."""
    return fmt(None if value is None else float(value), digits)


def _spread_cell(entry: dict[str, Any], digits: int = 1) -> str:
    if not entry or entry.get("median") is None:
        return DASH
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


def verdict_cell(verdict: dict[str, Any]) -> str:
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
    # one row per measure and peer family (CPU: against the Python peers, then node)
    by_measure: dict[tuple[str, bool], dict[str, dict[str, Any]]] = {}
    for judged in verdicts_of(data):
        if judged["met"] is None and judged["reference"] not in data["contenders"]:
            continue  # a reference this run did not measure (a run from before it joined)
        row_key = (judged["measure"], judged["reference"].startswith("node"))
        by_measure.setdefault(row_key, {})[judged["contender"]] = judged
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
    for (measure, _reference), verdicts in by_measure.items():
        sse, ws = verdicts.get("twinstream sse"), verdicts.get("twinstream ws")
        row = [_measure_label(data, measure)]
        for verdict, name in ((sse, "twinstream sse"), (ws, "twinstream ws")):
            if verdict is None:
                row += [DASH, DASH, DASH]
                continue
            row += [
                _spread_cell(spreads.get(name, {}).get(measure, {}), _digits(measure)),
                f"{verdict['target']}: {_number(verdict['reference_median'])}",
                verdict_cell(verdict),
            ]
        rows.append(row)
    return table(header, rows)


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
    loads = ", then ".join(_LOAD_NAMES[load] for load in loads_of(data))
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
    data = results.get("head_to_head")
    if not data or not data.get("rounds"):
        return ""
    names = list(data["contenders"])
    loads = loads_of(data)
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
        'the two are equal within the rounds\' noise, which meets an "at or above" or '
        '"at or below" target whichever way the medians fell.'
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
            verdict_cell(v),
        ]
        for v in verdicts_of(data)
    ]
    target_header = ["Measure", "Contender", "Target", "Median", "Reference median", "Verdict"]
    problems = [
        f"- {name}: {'; '.join(c['error_examples'])}"
        for name, c in data["contenders"].items()
        if c.get("error_examples")
    ]
    return "\n\n".join(
        ["## Head to head: the stream core's targets", intro, table(header, rows)]
        + [table(target_header, target_rows)]
        + (["Errors:\n" + "\n".join(problems)] if problems else [])
    )


def pooled_table(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """``python -m benchmarks pool``: the targets over every round of ``runs``."""
    data = pool(runs)
    table = readme_table({"head_to_head": data}) or ""
    return (
        f"Issue 8's targets over {data['rounds']} head-to-head rounds from "
        f"{len(data['runs'])} runs ({', '.join(data['runs'])}): medians of all rounds, "
        "the same-round ratios' 95 % interval beside each verdict.\n\n" + table
    )


def headtohead_section(results: dict[str, Any]) -> list[str]:
    return [report_section(results) or "## Head to head: the stream core's targets\n\n_not run_"]
