"""The headline table's rows for the latency, throughput and reconnect parts.

A row is ``(label, twinstream SSE, twinstream WS, sse-starlette SSE, websockets WS,
node SSE, node WS)`` (:data:`COLUMNS`; a part's rows may stop after websockets: the
rest are blank); each row below is declared as its label and where its figure sits
in the results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .format import fmt, get

__all__ = [
    "COLUMNS",
    "SummaryRow",
    "top_level",
    "latency_rows",
    "throughput_rows",
    "reconnect_rows",
]

SummaryRow = tuple[Any, ...]

#: the headline table's figure columns: (server, transport)
COLUMNS = (
    ("twinstream", "sse"),
    ("twinstream", "ws"),
    ("sse-starlette", "sse"),
    ("websockets", "ws"),
    ("node", "sse"),
    ("node", "ws"),
)

#: label ({streams}: the concurrent level) -> path under a latency transport's results
LATENCY_FIGURES = (
    ("TTFT, cold: new connection (ms, p50)", ("single", "cold", "ttft_ms", "p50")),
    ("TTFT, warm: connection reused (ms, p50)", ("single", "warm", "ttft_ms", "p50")),
    ("Time to start event, cold (ms, p50)", ("single", "cold", "time_to_start_ms", "p50")),
    ("Time to start event, warm (ms, p50)", ("single", "warm", "time_to_start_ms", "p50")),
    ("Delivery delay, 1 stream (ms, p50)", ("single", "delivery_delay_ms", "p50")),
    ("Delivery delay, 1 stream (ms, p99)", ("single", "delivery_delay_ms", "p99")),
    ("TTFT, {streams} concurrent streams (ms, p50)", ("concurrent", "ttft_ms", "p50")),
    ("Delivery delay, {streams} streams (ms, p50)", ("concurrent", "delivery_delay_ms", "p50")),
    ("Delivery delay, {streams} streams (ms, p99)", ("concurrent", "delivery_delay_ms", "p99")),
    (
        "Inter-token gap, {streams} streams (ms, p99)",
        ("concurrent", "inter_token_gap_ms", "p99"),
    ),
)

#: label ({streams}: the sweep's largest level) -> key in that level's results
TOP_LEVEL_FIGURES = (
    ("Delivered events/s, {streams} streams", "delivered_events_per_s"),
    ("Offered events/s, {streams} streams", "offered_events_per_s"),
    ("Server CPU, {streams} streams (% of a core)", "server_cpu_percent"),
    ("Server CPU per 1k events, {streams} streams (ms)", "server_cpu_ms_per_1k_events"),
    (
        "Client CPU, {streams} streams (% of a core, all load processes)",
        "client_cpu_percent",
    ),
    (
        "Machine busy, {streams} streams (% of all cores, every process)",
        "machine_cpu_percent",
    ),
)

#: label -> path under ``reconnect.transports.<transport>`` (twinstream only: it resumes)
RECONNECT_FIGURES = (
    ("Reconnect: cut → events flow again (ms, p50)", ("all", "time_to_flow_ms", "p50")),
    ("Reconnect: cut → new connection ready (ms, p50)", ("all", "reconnect_ms", "p50")),
    (
        "Reconnect: first resumed event's delivery delay (ms, p50)",
        ("all", "resumed_event_delay_ms", "p50"),
    ),
)


def _row(label: str, figure: Callable[[str, str], Any]) -> SummaryRow:
    return (label, *(figure(server, transport) for server, transport in COLUMNS))


def top_level(results: dict[str, Any], server: str, transport: str) -> dict[str, Any] | None:
    """The sweep's largest level for ``server`` and ``transport``."""
    levels = get(results, "throughput", server, "sweep", transport)
    return levels[-1] if levels else None


def latency_rows(results: dict[str, Any]) -> list[SummaryRow]:
    lat = results.get("latency", {})
    concurrency = get(lat, "twinstream", "transports", "sse", "concurrent", "streams") or get(
        lat, "sse-starlette", "transports", "sse", "concurrent", "streams"
    )

    def at(path: tuple[str, ...]) -> Callable[[str, str], Any]:
        return lambda s, t: get(lat, s, "transports", t, *path)

    return [
        _row(label.format(streams=fmt(concurrency)), at(path)) for label, path in LATENCY_FIGURES
    ]


def _compressed_bytes(results: dict[str, Any], server: str, transport: str) -> Any:
    variant = "ws_deflate" if transport == "ws" else "sse_gzip"
    wire = get(results, "throughput", server, "wire_bytes", f"{variant}_cold")
    if not wire:
        return None
    if not wire.get("deflate_negotiated"):
        return "not negotiated"
    return wire.get("bytes_down_per_token")


def throughput_rows(results: dict[str, Any]) -> list[SummaryRow]:
    top = top_level(results, "twinstream", "sse") or top_level(results, "sse-starlette", "sse")
    streams = fmt(top["streams"] if top else None)

    def at_top(key: str) -> Callable[[str, str], Any]:
        return lambda s, t: get(top_level(results, s, t), key)

    def under(*path: str) -> Callable[[str, str], Any]:
        return lambda s, t: get(results, "throughput", s, *(p.format(t=t) for p in path))

    rows = [_row(label.format(streams=streams), at_top(key)) for label, key in TOP_LEVEL_FIGURES]
    return rows + [
        _row(
            "Memory per open connection, stream waiting for its first token (KiB)",
            under("open_connections", "{t}", "memory_per_connection_kib"),
        ),
        _row(f"Memory per live stream, {streams} streams (KiB)", at_top("memory_per_stream_kib")),
        _row("One unthrottled stream (events/s)", under("unthrottled", "{t}", "events_per_s")),
        _row(
            "Wire bytes per token, server → client",
            under("wire_bytes", "{t}_cold", "bytes_down_per_token"),
        ),
        _row(
            "Wire bytes per token, compressed (SSE gzip, WebSocket permessage-deflate)",
            lambda s, t: _compressed_bytes(results, s, t),
        ),
    ]


def reconnect_rows(results: dict[str, Any]) -> list[SummaryRow]:
    rec = get(results, "reconnect", "transports") or {}

    def twinstream(figure: Callable[[str], Any]) -> Callable[[str, str], Any]:
        return lambda s, t: figure(t) if s == "twinstream" else None

    def at(path: tuple[str, ...]) -> Callable[[str], Any]:
        return lambda t: get(rec, t, *path)

    rows = [_row(label, twinstream(at(path))) for label, path in RECONNECT_FIGURES]
    lost_and_duplicated = twinstream(
        lambda t: f"{get(rec, t, 'lost')} / {get(rec, t, 'duplicated')}" if get(rec, t) else None
    )
    return rows + [_row("Reconnect: events lost / duplicated", lost_and_duplicated)]
