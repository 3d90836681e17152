"""The headline table: each part's rows, in the registry's order, with the WS / SSE ratio;
and each part's report sections by name."""

from __future__ import annotations

from typing import Any

from ..parts import PARTS, part_named
from .format import fmt, ratio_cell, table
from .headline import SummaryRow

__all__ = ["summary_rows", "summary_table", "part_sections"]


def summary_rows(results: dict[str, Any]) -> list[SummaryRow]:
    """``(metric, twinstream SSE, twinstream WS, sse-starlette SSE, websockets WS)``."""
    return [row for part in PARTS for row in part.summary_rows(results)]


def summary_table(results: dict[str, Any]) -> str:
    """The headline table: twinstream SSE vs WebSocket (with the WS/SSE ratio), then peers."""
    header = [
        "Metric",
        "twinstream SSE",
        "twinstream WebSocket",
        "WS / SSE",
        "sse-starlette (SSE)",
        "websockets (WS)",
    ]
    rows = []
    for label, sse, ws, peer_sse, peer_ws in summary_rows(results):
        if all(v is None for v in (sse, ws, peer_sse, peer_ws)):
            continue
        rows.append([label, fmt(sse), fmt(ws), ratio_cell(ws, sse), fmt(peer_sse), fmt(peer_ws)])
    return table(header, rows)


def part_sections(name: str, results: dict[str, Any]) -> list[str]:
    """The report's text for ``part`` (its main section) or ``part.section``."""
    part, _, section = name.partition(".")
    return part_named(part).sections[section or part](results)
