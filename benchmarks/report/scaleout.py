"""The scale-out part in the report and the README: each variant beside the memory store."""

from __future__ import annotations

from typing import Any

from ..scaleout import VARIANTS
from .format import DASH, fmt, table

__all__ = ["scaleout_details", "readme_section", "scaleout_section"]


def _cell(value: Any, digits: int = 0) -> str:
    return fmt(value, digits, keep_digits=True)


def _details_row(row: dict[str, Any]) -> list[str]:
    delay = row.get("delivery_delay_ms") or {}
    return [
        str(row["store"]),
        str(row["processes"]),
        _cell(row["delivered_events_per_s"]),
        _cell(row["server_cpu_ms_per_1k_events"], 1),
        _cell(row["redis_cpu_ms_per_1k_events"], 1),
        _cell(row.get("redis_appends_per_1k_events"), 1),
        f"{_cell(delay.get('p50'), 1)} / {_cell(delay.get('p99'), 1)}",
        f"{row['complete']}/{row['streams']}",
        str(row["errors"]),
    ]


def scaleout_details(results: dict[str, Any]) -> str:
    """The report.md section: a table per transport, ratios against the targets."""
    if "skipped" in results:
        return f"Not run: {results['skipped']}."
    lines = [
        f"{results['streams']:,} concurrent streams per run on a machine with "
        f"{results['cpus']} CPU cores (the load generator shares them); redis-server "
        f"{results['redis_server']} on loopback, no persistence. Server CPU sums every "
        "twinstream process; redis-server's own CPU is counted apart.",
    ]
    for transport, data in results["by_transport"].items():
        name = "SSE" if transport == "sse" else "WebSocket"
        lines.append(f"**{name}**\n")
        header = [
            "store",
            "processes",
            "delivered events/s",
            "server CPU ms / 1k events",
            "redis-server CPU ms / 1k events",
            "Redis append calls / 1k events",
            "delivery delay p50 / p99 (ms)",
            "complete",
            "errors",
        ]
        lines.append(table(header, [_details_row(row) for row in data["rows"]]))
        ratios = data["ratios"]
        lines.append(
            f"\nServer CPU per 1k events: Redis / memory = {_cell(ratios['redis_vs_memory'], 2)}× "
            f"(target ≤ {ratios['targets']['redis_vs_memory']}×); 2 processes / 1 = "
            f"{_cell(ratios['two_vs_one_process'], 2)}× "
            f"(target ≤ {ratios['targets']['two_vs_one_process']}×).\n"
        )
    return "\n".join(lines)


def readme_section(results: dict[str, Any]) -> str | None:
    """The README's scale-out figures from a run with this part (``results`` is the
    whole ``results.json``): one table, both transports, each variant beside memory."""
    data = results.get("scaleout")
    if not data or "skipped" in data or not data.get("by_transport"):
        return None
    meta = results.get("meta", {})
    config = meta.get("config", {})
    rows = {t: {r["label"]: r for r in d["rows"]} for t, d in data["by_transport"].items()}
    labels = [label for label, _store, _processes in VARIANTS]
    names = {"sse": "SSE", "ws": "WebSocket"}

    def cpu_cell(transport: str, label: str) -> str:
        row = rows[transport].get(label)
        value = row.get("server_cpu_ms_per_1k_events") if row else None
        if value is None:
            return DASH
        # the ratios the part computed (_ratios): Redis against memory, 2 processes against 1
        ratios = data["by_transport"][transport]["ratios"]
        if label == "redis, 1 process" and ratios.get("redis_vs_memory"):
            return f"{value:.1f} ({ratios['redis_vs_memory']:.2f}×)"
        if label == "redis, 2 processes" and ratios.get("two_vs_one_process"):
            return f"{value:.1f} ({ratios['two_vs_one_process']:.2f}× of 1 process)"
        return f"{value:.1f}"

    def pair(key: str, digits: int, label: str, inner: str | None = None) -> str:
        values = []
        for transport in rows:
            row = rows[transport].get(label) or {}
            value = row.get(key)
            if inner is not None and isinstance(value, dict):
                value = value.get(inner)
            values.append(_cell(value, digits))
        return " / ".join(values) if any(v != DASH for v in values) else DASH

    both = " / ".join(names[t] for t in rows)
    rows_of_figures = [
        [f"{names[t]}: server CPU per 1k events (ms)"] + [cpu_cell(t, label) for label in labels]
        for t in rows
    ]
    rows_of_figures += [
        [f"redis-server CPU per 1k events (ms), {both}"]
        + [pair("redis_cpu_ms_per_1k_events", 1, label) for label in labels],
        [f"Redis append calls per 1k events, {both}"]
        + [pair("redis_appends_per_1k_events", 1, label) for label in labels],
        [f"delivery delay p50 (ms), {both}"]
        + [pair("delivery_delay_ms", 1, label, "p50") for label in labels],
    ]
    figures = table([f"{data['streams']:,} streams", *labels], rows_of_figures)
    every = [r for d in data["by_transport"].values() for r in d["rows"]]
    complete = all(r["complete"] == r["streams"] and not r["errors"] for r in every)
    outcome = (
        f"Every run delivered all {data['streams']:,} streams complete, without errors."
        if complete
        else "Not every run delivered all streams complete: "
        + "; ".join(
            f"{r['transport']} {r['label']}: {r['complete']}/{r['streams']} complete, "
            f"{r['errors']} errors"
            for r in every
            if r["complete"] != r["streams"] or r["errors"]
        )
        + "."
    )
    intro = (
        f"What it costs, from one run of `{meta.get('command') or 'python -m benchmarks scaleout'}`"
        f" ({str(meta.get('started', ''))[:10]}, {data['cpus']} cores of a shared "
        f"{meta.get('cpu_model')}, Python {meta.get('python')}, redis-server "
        f"{data['redis_server']} on loopback; {data['streams']:,} streams × "
        f"{_cell(config.get('tokens_per_second'))} tokens/s, medians of one run; server CPU "
        "sums every twinstream process, redis-server's own CPU is apart):"
    )
    return "\n\n".join([intro, figures, outcome])


def scaleout_section(results: dict[str, Any]) -> list[str]:
    if "scaleout" not in results:
        return []
    return ["## Scale-out: Redis store, 1 and 2 processes", scaleout_details(results["scaleout"])]
