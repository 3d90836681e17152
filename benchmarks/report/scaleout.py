"""The scale-out part in the report and the README: each variant beside the memory store,
at each level measured, what a second process carries with each process held to a CPU
budget, and the figures the targets judge (delay above the memory store's, the
cluster's CPU against one Redis, two processes' streams against one's)."""

from __future__ import annotations

from typing import Any

from ..scaleout import TARGETS, VARIANTS, ratios
from .capacity import capacity_cell, held_and_failed
from .format import DASH, fmt, table

__all__ = [
    "scaleout_details",
    "readme_section",
    "scaleout_section",
    "judged_table",
    "budget_capacity",
]

NAMES = {"sse": "SSE", "ws": "WebSocket"}


def _cell(value: Any, digits: int = 0) -> str:
    return fmt(value, digits, keep_digits=True)


def _signed(value: Any) -> str:
    return DASH if value is None else f"{value:+.1f}"


def _levels(data: dict[str, Any]) -> list[int]:
    """The levels of a run (a run from before issue 24 has one, ``streams``)."""
    return list(data.get("levels") or [data["streams"]])


def _labels(data: dict[str, Any]) -> list[str]:
    """The variants the run measured, in :data:`VARIANTS` order."""
    seen = {r["label"] for d in data["by_transport"].values() for r in d["rows"]}
    return [label for label, _store, _processes in VARIANTS if label in seen]


def _by_level(transport_data: dict[str, Any]) -> dict[str, Any]:
    """Per level and variant, the ratios (recomputed for a run that did not keep them)."""
    stored = transport_data.get("ratios") or {}
    return stored.get("by_level") or ratios(transport_data["rows"])["by_level"]


def _cluster_note(cluster: dict[str, Any] | None, shape: str) -> str:
    """The cluster's shape for an intro (``shape`` formatted), or why it did not run."""
    if not cluster:
        return ""
    if "skipped" in cluster:
        return f"; the Redis Cluster did not run: {cluster['skipped']}"
    return shape.format(**cluster)


def _details_row(row: dict[str, Any], judged: dict[str, Any]) -> list[str]:
    delay = row.get("delivery_delay_ms") or {}
    over = judged.get(row["label"]) or {}
    nodes = row.get("redis_nodes")
    redis_cpu = _cell(row["redis_cpu_ms_per_1k_events"], 1)
    return [
        fmt(row["streams"]),
        str(row["store"]),
        str(row["processes"]),
        _cell(row["delivered_events_per_s"]),
        _cell(row["server_cpu_ms_per_1k_events"], 1),
        (
            f"{redis_cpu} ({nodes} nodes; masters "
            f"{_cell(row.get('redis_masters_cpu_ms_per_1k_events'), 1)})"
            if nodes and nodes > 1
            else redis_cpu
        ),
        _cell(row.get("redis_appends_per_1k_events"), 1),
        f"{_cell(delay.get('p50'), 1)} / {_cell(delay.get('p99'), 1)}",
        (
            f"{_signed(over.get('p50_over_memory_ms'))} / {_signed(over.get('p99_over_memory_ms'))}"
            if over
            else DASH
        ),
        f"{row['complete']}/{row['streams']}",
        str(row["errors"]),
    ]


def scaleout_details(results: dict[str, Any]) -> str:
    """The report.md section: a table per transport (every level and variant), the
    ratios against the targets, and the judged figures."""
    if "skipped" in results:
        return f"Not run: {results['skipped']}."
    measured = " and ".join(fmt(level) for level in _levels(results))
    cluster = results.get("cluster")
    lines = [
        f"{measured} concurrent streams per run on a machine with {results['cpus']} CPU "
        f"cores (the load generator shares them); redis-server {results['redis_server']} on "
        "loopback, no persistence"
        + _cluster_note(
            cluster, "; the cluster: {nodes} nodes ({masters} masters, one replica each)"
        )
        + ". Server CPU sums every twinstream process; redis-server's own CPU is counted "
        "apart (every node of a cluster). *Above memory*: the delivery delay minus the "
        "memory store's at the same level.",
    ]
    for transport, data in results["by_transport"].items():
        lines.append(f"\n**{NAMES.get(transport, transport)}**\n")
        header = [
            "streams",
            "store",
            "processes",
            "delivered events/s",
            "server CPU ms / 1k events",
            "redis-server CPU ms / 1k events",
            "Redis append calls / 1k events",
            "delivery delay p50 / p99 (ms)",
            "above memory p50 / p99 (ms)",
            "complete",
            "errors",
        ]
        by_level = _by_level(data)
        rows = [_details_row(r, by_level.get(str(r["streams"]), {})) for r in data["rows"]]
        lines.append(table(header, rows))
        rounds = [_each_round(r) for r in data["rows"] if r.get("each_round")]
        if rounds:
            lines.append(
                "\nEach round, in turn (server CPU ms / 1k events, delay p50 / p99 ms): "
                + "; ".join(rounds)
                + "."
            )
        ratio = data["ratios"]
        targets = {**TARGETS, **ratio.get("targets", {})}
        lines.append(
            f"\nServer CPU per 1k events at {fmt(results['streams'])} streams: Redis / memory = "
            f"{_cell(ratio['redis_vs_memory'], 2)}× (target ≤ {targets['redis_vs_memory']}×); "
            f"2 processes / 1 = {_cell(ratio['two_vs_one_process'], 2)}× "
            f"(target ≤ {targets['two_vs_one_process']}×).\n"
        )
    scaling = budget_capacity(results)
    if scaling:
        lines.append(f"\n{scaling}\n")
    judged = judged_table(results)
    if judged:
        lines.append(judged)
    return "\n".join(lines)


def judged_table(results: dict[str, Any]) -> str | None:
    """The figures issue 24 judges, one column per store variant: the p99 delay above
    the memory store's at the lowest level, the p50 at the top level, and a cluster's
    server CPU per 1k events against one Redis with as many processes."""
    transports = list(results["by_transport"])
    labels = [label for label in _labels(results) if label != "memory"]
    if not labels:
        return None
    low, top = min(_levels(results)), max(_levels(results))
    by_level = {t: _by_level(results["by_transport"][t]) for t in transports}

    def cells(level: int, key: str, show: Any) -> list[str]:
        out = []
        for label in labels:
            values = [get_entry(by_level[t], level, label).get(key) for t in transports]
            out.append(
                " / ".join(show(v) for v in values) if any(v is not None for v in values) else DASH
            )
        return out

    both = " / ".join(NAMES.get(t, t) for t in transports)
    ms, times = TARGETS["p99_over_memory_ms"], TARGETS["cluster_vs_redis"]
    rows = [
        [f"p99 delay above memory at {fmt(low)} streams (ms), {both}; target ≤ {ms:.0f}"]
        + cells(low, "p99_over_memory_ms", _signed),
        [
            f"p50 delay above memory at {fmt(top)} streams (ms), {both}; target ≤ "
            f"{TARGETS['p50_over_memory_ms']:.0f}"
        ]
        + cells(top, "p50_over_memory_ms", _signed),
    ]
    if any("cluster" in label for label in labels):
        rows += [
            [
                f"server CPU per 1k events against one Redis at {fmt(level)} streams, {both}; "
                f"target ≤ {times}×"
            ]
            + cells(level, "server_cpu_vs_redis", lambda v: f"{_cell(v, 2)}×" if v else DASH)
            for level in sorted({low, top})
        ]
        rows += [
            [
                f"redis-server CPU per 1k events against one Redis at {fmt(top)} streams, "
                f"{both}: every node (replicas too)"
            ]
            + cells(top, "redis_cpu_vs_redis", lambda v: f"{_cell(v, 2)}×" if v else DASH),
            [f"... the masters alone, {both}"]
            + cells(top, "redis_masters_cpu_vs_redis", lambda v: f"{_cell(v, 2)}×" if v else DASH),
        ]
    scaling = results.get("capacity") or {}
    if scaling.get("by_transport") and "redis, 2 processes" in labels:
        found = scaling["by_transport"]
        row = [
            f"streams two processes carry against one, each held to "
            f"{_cores(scaling['cores_per_process'])} (capacity search), "
            + " / ".join(NAMES.get(t, t) for t in found)
            + f"; target ≥ {scaling['target']}×"
        ]
        ratio = " / ".join(
            f"{_cell(f.get('two_vs_one'), 2)}×" if f.get("two_vs_one") else DASH
            for f in found.values()
        )
        rows.append(row + [ratio if label == "redis, 2 processes" else DASH for label in labels])
    return table(["Judged", *labels], rows)


def _each_round(row: dict[str, Any]) -> str:
    figures = ", ".join(
        f"{_cell(r.get('server_cpu_ms_per_1k_events'), 1)} "
        f"({_cell(r.get('p50_delay_ms'), 1)} / {_cell(r.get('p99_delay_ms'), 1)})"
        for r in row["each_round"]
    )
    return f"{row['label']} at {fmt(row['streams'])}: {figures}"


def _rounds(rounds: int) -> str:
    if rounds == 1:
        return "one run"
    return f"medians of {rounds} runs of each variant, taken in turn"


def _cores(cores: float) -> str:
    return "a core" if cores == 1 else f"{fmt(cores, 2)} of a core"


def _held(entry: dict[str, Any]) -> str:
    """Streams held at the largest level that held, its p99, and the first that failed."""
    top, first = held_and_failed(entry)
    if top is None:
        return capacity_cell(entry)
    cell = f"{capacity_cell(entry)} (p99 {_cell(top['p99_delay_ms'], 1)} ms"
    if first is not None:
        cell += f"; {fmt(first['streams'])} failed: p99 {_cell(first['p99_delay_ms'], 1)} ms"
    return cell + ")"


def budget_capacity(data: dict[str, Any]) -> str | None:
    """What a second process carries, each process held to a CPU budget: a sentence
    on how it was measured, and per transport one process's capacity, two processes'
    and the ratio (``data``: the scale-out part's results)."""
    scaling = data.get("capacity") or {}
    found = scaling.get("by_transport")
    if not found:
        return None
    cores = _cores(scaling["cores_per_process"])
    intro = (
        f"What a second process carries: the capacity search (streams at "
        f"{fmt(scaling.get('max_tokens'))} tokens each raised from "
        f"{fmt(scaling.get('start'))}, doubling, then {fmt(scaling.get('fine_steps'))} "
        f"bisections; a level holds while the p99 delivery delay stays at or under "
        f"{fmt(scaling.get('p99_limit_ms'), 0)} ms and at least "
        f"{fmt(scaling.get('delivered_percent_limit'), 0)} % arrive) on one Redis, one process "
        f"and two, each process held to {cores} by a cgroup CPU quota. Unheld, one process "
        "at its limit takes a core, and two processes, redis-server and the load generator "
        f"need more than this machine's {fmt(data.get('cpus'))}; held, two processes get "
        "twice one process's CPU, as each would with a core of its own."
    )
    rows = [
        [
            NAMES.get(transport, transport),
            _held(entry["1"]),
            _held(entry["2"]),
            f"{_cell(entry.get('two_vs_one'), 2)}×" if entry.get("two_vs_one") else DASH,
        ]
        for transport, entry in found.items()
    ]
    header = [
        f"each process held to {cores}",
        "redis, 1 process: streams held",
        "redis, 2 processes: streams held",
        f"two ÷ one (target ≥ {scaling['target']}×)",
    ]
    return f"{intro}\n\n{table(header, rows)}"


def get_entry(by_level: dict[str, Any], level: int, label: str) -> dict[str, Any]:
    return (by_level.get(str(level)) or {}).get(label) or {}


def _level_table(data: dict[str, Any], level: int, labels: list[str]) -> str:
    """The README's table for one level: a row per measure, a column per variant."""
    transports = list(data["by_transport"])
    both = " / ".join(NAMES[t] for t in transports)
    rows = {
        t: {r["label"]: r for r in d["rows"] if r["streams"] == level}
        for t, d in data["by_transport"].items()
    }
    top = level == data["streams"]

    def cpu_cell(transport: str, label: str) -> str:
        row = rows[transport].get(label)
        value = row.get("server_cpu_ms_per_1k_events") if row else None
        if value is None:
            return DASH
        # the ratios the part computed at its top level: Redis / memory, 2 / 1 process
        ratio = data["by_transport"][transport]["ratios"]
        if top and label == "redis, 1 process" and ratio.get("redis_vs_memory"):
            return f"{value:.1f} ({ratio['redis_vs_memory']:.2f}×)"
        if top and label == "redis, 2 processes" and ratio.get("two_vs_one_process"):
            return f"{value:.1f} ({ratio['two_vs_one_process']:.2f}× of 1 process)"
        return f"{value:.1f}"

    def pair(key: str, digits: int, label: str, inner: str | None = None) -> str:
        values = []
        for transport in transports:
            value = (rows[transport].get(label) or {}).get(key)
            if inner is not None and isinstance(value, dict):
                value = value.get(inner)
            values.append(_cell(value, digits))
        return " / ".join(values) if any(v != DASH for v in values) else DASH

    figures = [
        [f"{NAMES[t]}: server CPU per 1k events (ms)"] + [cpu_cell(t, label) for label in labels]
        for t in transports
    ]
    figures += [
        [f"redis-server CPU per 1k events (ms), {both}"]
        + [pair("redis_cpu_ms_per_1k_events", 1, label) for label in labels],
        [f"Redis append calls per 1k events, {both}"]
        + [pair("redis_appends_per_1k_events", 1, label) for label in labels],
        [f"delivery delay p50 (ms), {both}"]
        + [pair("delivery_delay_ms", 1, label, "p50") for label in labels],
        [f"delivery delay p99 (ms), {both}"]
        + [pair("delivery_delay_ms", 1, label, "p99") for label in labels],
    ]
    return table([f"{level:,} streams", *labels], figures)


def readme_section(results: dict[str, Any]) -> str | None:
    """The README's scale-out figures from a run with this part (``results`` is the
    whole ``results.json``): a table per level (both transports, each variant beside
    memory), then the judged figures."""
    data = results.get("scaleout")
    if not data or "skipped" in data or not data.get("by_transport"):
        return None
    meta = results.get("meta", {})
    config = meta.get("config", {})
    labels = _labels(data)
    tables = [_level_table(data, level, labels) for level in _levels(data)]
    every = [r for d in data["by_transport"].values() for r in d["rows"]]
    complete = all(r["complete"] == r["streams"] and not r["errors"] for r in every)
    measured = " and ".join(f"{level:,}" for level in _levels(data))
    outcome = (
        f"Every run delivered all its streams complete, without errors ({measured} streams)."
        if complete
        else "Not every run delivered all streams complete: "
        + "; ".join(
            f"{r['transport']} {r['label']} at {r['streams']:,}: {r['complete']}/{r['streams']} "
            f"complete, {r['errors']} errors"
            for r in every
            if r["complete"] != r["streams"] or r["errors"]
        )
        + "."
    )
    cluster = data.get("cluster")
    intro = (
        f"What it costs, from one run of `{meta.get('command') or 'python -m benchmarks scaleout'}`"
        f" ({str(meta.get('started', ''))[:10]}, {data['cpus']} cores of a shared "
        f"{meta.get('cpu_model')}, Python {meta.get('python')}, redis-server "
        f"{data['redis_server']} on loopback"
        + _cluster_note(
            cluster, ", the cluster {nodes} nodes: {masters} masters and a replica each"
        )
        + f"; {measured} streams × {_cell(config.get('tokens_per_second'))} tokens/s, "
        + _rounds(data.get("rounds", 1))
        + "; "
        "server CPU sums every twinstream process, redis-server's own CPU is apart):"
    )
    parts = [intro, *tables, outcome]
    scaling = budget_capacity(data)
    if scaling:
        parts.append(scaling)
    judged = judged_table(data)
    if judged:
        parts.append(
            "Judged against the targets (each store's delivery delay above the memory "
            "store's"
            + (", the cluster's CPU against one Redis" if cluster and "nodes" in cluster else "")
            + f"):\n\n{judged}"
        )
    return "\n\n".join(parts)


def scaleout_section(results: dict[str, Any]) -> list[str]:
    if "scaleout" not in results:
        return []
    return [
        "## Scale-out: Redis store and Redis Cluster, 1 and 2 processes",
        scaleout_details(results["scaleout"]),
    ]
