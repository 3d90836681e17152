"""The headline table: each part's rows, in the registry's order, with the WS / SSE ratio;
and each part's report sections by name."""

from __future__ import annotations

from typing import Any

from ..parts import PARTS, part_named
from .format import fmt, ratio_cell, table
from .headline import COLUMNS, SummaryRow

__all__ = ["summary_rows", "summary_table", "part_sections"]


def summary_rows(results: dict[str, Any]) -> list[SummaryRow]:
    """``(metric, twinstream SSE, twinstream WS, sse-starlette SSE, websockets WS, node SSE,
    node WS)``; a part's rows may stop early (the rest are blank)."""
    return [row for part in PARTS for row in part.summary_rows(results)]


def summary_table(results: dict[str, Any]) -> str:
    """The headline table: twinstream SSE vs WebSocket (with the WS/SSE ratio), then
    peers; a peer's column only when the run measured it (a run from before the Node
    peer joined has none)."""
    header = [
        "Metric",
        "twinstream SSE",
        "twinstream WebSocket",
        "WS / SSE",
        "sse-starlette (SSE)",
        "websockets (WS)",
        "node (SSE)",
        "node (WS)",
    ]
    figures = []
    for label, *values in summary_rows(results):
        values += [None] * (len(COLUMNS) - len(values))
        if any(v is not None for v in values):
            figures.append((label, values))
    # the first four servers' columns always; a later peer's when one of its cells has a figure
    later = range(4, len(COLUMNS))
    keep = [0, 1, 2, 3, 4, 5] + [
        2 + i for i in later if any(values[i] is not None for _, values in figures)
    ]
    rows = []
    for label, values in figures:
        sse, ws, *peers = values
        row = [label, fmt(sse), fmt(ws), ratio_cell(ws, sse), *map(fmt, peers)]
        rows.append([row[c] for c in keep])
    return table([header[c] for c in keep], rows)


def part_sections(name: str, results: dict[str, Any]) -> list[str]:
    """The report's text for ``part`` (its main section) or ``part.section``."""
    part, _, section = name.partition(".")
    return part_named(part).sections[section or part](results)
