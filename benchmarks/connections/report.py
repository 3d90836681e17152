"""The connections part in the report: its headline row and its section.

Memory figures are :func:`~benchmarks.report.format.fmt`'s ``keep_digits`` and
``plain`` ones: one decimal always, no thousands separators.
"""

from __future__ import annotations

from typing import Any

from ..report.format import DASH, fmt, ratio_cell, table
from ..report.headline import COLUMNS

__all__ = ["summary_rows", "report_section"]


def _entry(results: dict[str, Any], server: str, transport: str) -> dict[str, Any] | None:
    """One server's result over ``transport``, if it ran."""
    entry = results.get("connections", {}).get(server, {}).get("transports", {}).get(transport)
    return entry if isinstance(entry, dict) else None


def summary_rows(results: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows for the headline table: (label, a figure per column of
    :data:`benchmarks.report.headline.COLUMNS`)."""
    entries = [_entry(results, s, t) for s, t in COLUMNS]
    if not any(entries):
        return []
    count = next(e["attempted"] for e in entries if e)
    values = [e.get("memory_per_connection_kib") if e else None for e in entries]
    return [
        (
            f"Memory per idle connection, {count:,} connections (KiB; target ≤20 SSE, ≤16 WS)",
            *values,
        )
    ]


def report_section(results: dict[str, Any]) -> str:
    """The report's section for this part (empty when it did not run)."""
    data = results.get("connections")
    if not data:
        return ""
    rows = []
    notes = []
    reference = {"sse": "sse-starlette", "ws": "websockets"}
    for server, block in data.items():
        for transport, e in block.get("transports", {}).items():
            value = e.get("memory_per_connection_kib")
            peer = (
                _entry(results, reference[transport], transport)
                if server != reference[transport]
                else None
            )
            peer_value = peer.get("memory_per_connection_kib") if peer else None
            rows.append(
                [
                    server,
                    transport,
                    e["definition"],
                    f"{fmt(e['opened'])}/{fmt(e['connections'])}",
                    f"{fmt(e['server_idle_rss_mib'], keep_digits=True, plain=True)} → "
                    f"{fmt(e['server_open_rss_mib'], keep_digits=True, plain=True)}",
                    " / ".join(
                        fmt(v, keep_digits=True, plain=True) for v in e["step_kib_per_connection"]
                    ),
                    fmt(value, keep_digits=True, plain=True),
                    ratio_cell(value, peer_value) if value else DASH,
                    f"≤{fmt(e['target_kib'], 0, keep_digits=True, plain=True)}"
                    if server == "twinstream"
                    else DASH,
                    # a run that opened nothing has no verdict: it reads as not met
                    fmt(bool(e["meets_target"])) if server == "twinstream" else DASH,
                ]
            )
            if e.get("note"):
                notes.append(f"{server} {transport}: {e['note']}.")
            if e.get("error_examples"):
                notes.append(f"{server} {transport} errors: {'; '.join(e['error_examples'])}")
    header = [
        "Server",
        "Transport",
        "Idle connection",
        "Open",
        "RSS MiB",
        "KiB/connection per step",
        "KiB/connection",
        "vs reference (same transport)",
        "Target",
        "Met",
    ]
    limits: dict[str, Any] = next(
        (e["fd_limit"] for b in data.values() for e in b.get("transports", {}).values()), {}
    )
    intro = (
        "Connections opened on a fresh server in steps, from worker processes bound to "
        "their own loopback source addresses; after each step the server's RSS is read "
        "several times and the median kept. KiB/connection = (RSS with all open − RSS "
        "before) / open connections. The suite raised its file-descriptor limit from "
        f"{limits.get('before', '?')} to {limits.get('soft', '?')} (hard "
        f"{limits.get('hard', '?')}); servers and workers inherit it. Targets from issue 8."
    )
    return "\n\n".join(
        ["## Memory per idle connection", intro, table(header, rows)]
        + (["\n".join(f"- {n}" for n in notes)] if notes else [])
    )
