"""The stuck-readers part in the report: its headline rows and its section.

Its figures are :func:`~benchmarks.report.format.fmt`'s ``plain`` ones: no thousands
separators, and floats keep their decimals past 1,000 (kernel queues reach 1,500 KiB).
"""

from __future__ import annotations

from typing import Any

from ..report.format import fmt, table
from .plan import STUCK_MAX_TOKENS

__all__ = ["summary_rows", "report_section"]


def summary_rows(results: dict[str, Any]) -> list[tuple[str, Any, Any, Any, Any]]:
    """Rows for the headline table (twinstream's two columns only: the reference
    servers have no write bounds to test and cannot resume)."""
    data = results.get("stuck", {}).get("transports", {})
    if not data:
        return []

    def both(get: Any) -> tuple[Any, Any]:
        return tuple(get(data[t]) if t in data else None for t in ("sse", "ws"))  # type: ignore[return-value]

    def seconds(d: dict[str, Any]) -> Any:
        if not d["supported"]:
            return "not supported"
        value = d["with_stuck"]["stuck"]["seconds_after_kernel_full"]
        if value is None:
            return f"not within {d['window_s']:g} s"
        return f"{fmt(value, plain=True)} (deadline {d['write_timeout_s']:g})"

    def text(value: Any, digits: int = 1) -> str | None:
        # text, so the headline table shows no WS / SSE ratio for these rows
        return None if value is None else fmt(value, digits, plain=True)

    rows = [
        (
            "Stuck reader: dropped, s after its kernel buffer filled (deadline: --write-timeout)",
            *both(seconds),
        ),
        (
            "Stuck reader: extra server memory (MiB; target ≤2)",
            *both(lambda d: text(d["extra_memory_mib"], 2)),
        ),
        ("Stuck reader: events lost on resume", *both(lambda d: text(d["events_lost"]))),
        (
            "Stuck reader: normal clients' p99 delay, with / without (target ≤2×)",
            *both(lambda d: text(d["p99_ratio"], 2)),
        ),
    ]
    return [(label, sse, ws, None, None) for label, sse, ws in rows]


def report_section(results: dict[str, Any]) -> str:
    """The report's section for this part (empty when it did not run)."""
    data = results.get("stuck", {}).get("transports", {})
    if not data:
        return ""
    header = [
        "Transport",
        "Bounds",
        "Disconnected after s",
        "Kernel buffer full after s",
        "How it ended",
        "Streams started / seen / resumed",
        "Lost",
        "Dup.",
        "RSS growth MiB (base / stuck)",
        "Extra MiB",
        "p50 ms (base / stuck)",
        "p99 ms (base / stuck)",
        "Ratio",
        "Machine busy % (base / stuck)",
    ]
    rows = []
    notes = []
    for transport, d in data.items():
        base, loaded = d["baseline"], d["with_stuck"]
        s = loaded["stuck"] or {}
        rows.append(
            [
                transport,
                " ".join(d["flags"]) if d["supported"] else "not supported",
                fmt(s.get("seconds_to_disconnect"), 2, plain=True),
                f"{fmt(s.get('seconds_to_kernel_full'), 2, plain=True)} "
                f"({fmt(s.get('max_server_kernel_queue_kib'), 0, plain=True)} KiB)",
                fmt(s.get("how"), plain=True),
                f"{d['stuck_streams']} / {s.get('streams_seen', 0)} / {s.get('resumed', 0)}",
                fmt(d["events_lost"], plain=True),
                fmt(s.get("events_duplicated"), plain=True),
                f"{fmt(base['rss_growth_mib'], plain=True)} / "
                f"{fmt(loaded['rss_growth_mib'], plain=True)}",
                fmt(d["extra_memory_mib"], 2, plain=True),
                f"{fmt(base['delivery_delay_ms']['p50'], 2, plain=True)} / "
                f"{fmt(loaded['delivery_delay_ms']['p50'], 2, plain=True)}",
                f"{fmt(base['delivery_delay_ms']['p99'], plain=True)} / "
                f"{fmt(loaded['delivery_delay_ms']['p99'], plain=True)}",
                fmt(d["p99_ratio"], 2, plain=True),
                f"{fmt(base['machine_cpu_percent'], 0, plain=True)} / "
                f"{fmt(loaded['machine_cpu_percent'], 0, plain=True)}",
            ]
        )
        if d.get("note"):
            notes.append(f"{transport}: {d['note']}")
        if s.get("error"):
            notes.append(f"{transport}: the stuck reader failed: {s['error']}")
        if s.get("resume_failures"):
            notes.append(f"{transport}: resumes failed: {'; '.join(s['resume_failures'])}")
        for name, run in (("baseline", base), ("stuck", loaded)):
            if run["errors"]:
                notes.append(
                    f"{transport} {name}: {run['errors']} of {run['completions']} normal "
                    f"completions failed: {'; '.join(run['error_examples'])}"
                )
    any_plan = next(iter(data.values()))
    intro = (
        f"{any_plan['baseline']['normal_clients']} normal clients stream completions back "
        f"to back for {any_plan['window_s']:g} s, alone (base) and next to one stuck reader "
        "(tiny receive buffer, never reads; WebSocket: floods `start`, sends unsolicited "
        f"pongs and pings; SSE: pipelined replays of its stream); every stream "
        f"{STUCK_MAX_TOKENS} tokens. *Disconnected* = the server no longer holds its "
        "socket; *kernel buffer full* = when the server's unsent kernel queue for it "
        "stopped growing (from then on only the server's own bounds act). *How it ended* "
        "is what the reader found when it finally read (a close frame queued behind data "
        "it never read may never arrive). *Extra* = stuck-run RSS growth − base RSS "
        "growth − the stuck reader's streams at the base run's cost per stream. Targets "
        "(issue 8): disconnected within the deadline, ≤2 MiB extra, 0 lost, p99 ≤2×."
    )
    return "\n\n".join(
        ["## Stuck readers", intro, table(header, rows)]
        + (["\n".join(f"- {n}" for n in notes)] if notes else [])
    )
