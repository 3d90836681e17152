"""The report's detail tables for the latency, throughput and reconnect parts."""

from __future__ import annotations

from typing import Any

from .format import fmt, get, table

__all__ = [
    "latency_section",
    "sweep_section",
    "open_connections_section",
    "unthrottled_section",
    "wire_section",
    "reconnect_section",
    "latency_details",
    "throughput_details",
    "wire_details",
    "open_connection_details",
    "unthrottled_details",
    "reconnect_details",
]


def latency_details(results: dict[str, Any]) -> str:
    rows = []
    for server, data in results.get("latency", {}).items():
        for transport, measures in data.get("transports", {}).items():
            for scope, path in (
                ("1 stream, cold", ("single", "cold")),
                ("1 stream, warm", ("single", "warm")),
                (f"{measures['concurrent']['streams']} streams", ("concurrent",)),
            ):
                block = get(measures, *path)
                for metric in (
                    "ttft_ms",
                    "time_to_start_ms",
                    "inter_token_gap_ms",
                    "delivery_delay_ms",
                ):
                    stats = get(block, metric) or {}
                    rows.append(
                        [
                            server,
                            transport,
                            scope,
                            metric.removesuffix("_ms").replace("_", " "),
                            fmt(stats.get("n")),
                            fmt(stats.get("p50"), 2),
                            fmt(stats.get("p90"), 2),
                            fmt(stats.get("p99"), 2),
                            fmt(stats.get("max"), 2),
                        ]
                    )
    header = ["Server", "Transport", "Scope", "Measure (ms)", "n", "p50", "p90", "p99", "max"]
    return table(header, rows) if rows else "_not run_"


def throughput_details(results: dict[str, Any]) -> str:
    rows = []
    for server, data in results.get("throughput", {}).items():
        for transport, levels in data.get("sweep", {}).items():
            for level in levels:
                rows.append(
                    [
                        server,
                        transport,
                        fmt(level["streams"]),
                        fmt(level["offered_events_per_s"]),
                        fmt(level["delivered_events_per_s"]),
                        f"{level['complete']}/{level['completions']}",
                        fmt(level["server_cpu_percent"]),
                        fmt(level["server_cpu_ms_per_1k_events"]),
                        fmt(level["client_cpu_percent"]),
                        fmt(level.get("machine_cpu_percent")),
                        fmt(level["server_peak_rss_mib"]),
                        fmt(level["memory_per_stream_kib"]),
                        fmt(get(level, "delivery_delay_ms", "p50"), 2),
                        fmt(get(level, "delivery_delay_ms", "p99"), 2),
                        fmt(get(level, "model_lag_ms", "p50"), 2),
                        fmt(get(level, "model_lag_ms", "p99"), 2),
                    ]
                )
    header = [
        "Server",
        "Transport",
        "Streams",
        "Offered ev/s",
        "Delivered ev/s",
        "Complete",
        "Server CPU %",
        "Server CPU ms/1k ev",
        "Client CPU %",
        "Machine busy %",
        "Peak RSS MiB",
        "KiB/stream",
        "Delay p50 ms",
        "Delay p99 ms",
        "Model lag p50 ms",
        "Model lag p99 ms",
    ]
    return table(header, rows) if rows else "_not run_"


def wire_details(results: dict[str, Any]) -> str:
    rows = []
    for server, data in results.get("throughput", {}).items():
        for variant, wire in data.get("wire_bytes", {}).items():
            rows.append(
                [
                    server,
                    variant,
                    fmt(wire["connections"]),
                    fmt(wire["delta_events"]),
                    fmt(wire["bytes_down"]),
                    fmt(wire["bytes_up"]),
                    fmt(wire["bytes_down_per_token"]),
                    fmt(wire["bytes_total_per_token"]),
                    fmt(wire["deflate_negotiated"]),
                ]
            )
    header = [
        "Server",
        "Variant",
        "Connections",
        "Tokens",
        "Bytes ↓",
        "Bytes ↑",
        "↓ per token",
        "↓+↑ per token",
        "Compressed (gzip / deflate)",
    ]
    return table(header, rows) if rows else "_not run_"


def open_connection_details(results: dict[str, Any]) -> str:
    rows = []
    for server, data in results.get("throughput", {}).items():
        for transport, held in data.get("open_connections", {}).items():
            rows.append(
                [
                    server,
                    transport,
                    f"{held['opened']}/{held['connections']}",
                    fmt(held["server_idle_rss_mib"]),
                    fmt(held["server_open_rss_mib"]),
                    fmt(held["memory_per_connection_kib"]),
                ]
            )
    header = ["Server", "Transport", "Open", "RSS before MiB", "RSS open MiB", "KiB/connection"]
    return table(header, rows) if rows else "_not run_"


def unthrottled_details(results: dict[str, Any]) -> str:
    rows = []
    for server, data in results.get("throughput", {}).items():
        for transport, one in data.get("unthrottled", {}).items():
            rows.append(
                [
                    server,
                    transport,
                    fmt(one["events_per_s"]),
                    fmt(one["completions"]),
                    fmt(one["errors"]),
                    fmt(one["server_cpu_percent"]),
                ]
            )
    header = ["Server", "Transport", "Events/s", "Completions", "Errors", "Server CPU %"]
    return table(header, rows) if rows else "_not run_"


def reconnect_details(results: dict[str, Any]) -> str:
    rec = results.get("reconnect")
    if not rec:
        return "_not run_"
    rows = []
    for transport, data in rec["transports"].items():
        for side, block in data.get("by_side", {}).items():
            rows.append(
                [
                    transport,
                    side,
                    fmt(block["cuts"]),
                    fmt(block["resumed"]),
                    fmt(get(block, "reconnect_ms", "p50"), 2),
                    fmt(get(block, "time_to_flow_ms", "p50"), 2),
                    fmt(get(block, "time_to_flow_ms", "p90"), 2),
                    fmt(get(block, "time_to_flow_ms", "max"), 2),
                    fmt(get(block, "resumed_event_delay_ms", "p50"), 2),
                    fmt(get(block, "resumed_event_delay_ms", "max"), 2),
                ]
            )
    detail = table(
        [
            "Transport",
            "Cut by",
            "Cuts",
            "Resumed on a new connection",
            "Reconnect p50 ms",
            "Events flow again p50 ms",
            "p90 ms",
            "max ms",
            "Resumed event delay p50 ms",
            "max ms",
        ],
        rows,
    )
    totals = table(
        [
            "Transport",
            "Streams",
            "Finished",
            "Connections",
            "Events received",
            "Lost",
            "Duplicated",
            "Text mismatches",
            "Errors",
        ],
        [
            [
                t,
                fmt(d["streams"]),
                fmt(d["finished"]),
                fmt(d["connections"]),
                fmt(d["events_received"]),
                fmt(d["lost"]),
                fmt(d["duplicated"]),
                fmt(d["text_mismatches"]),
                fmt(d["errors"]),
            ]
            for t, d in rec["transports"].items()
        ],
    )
    note = (
        f"{fmt(rec.get('cuts_per_stream'))} cuts per stream, "
        f"{fmt(rec.get('concurrency'))} streams per transport in flight at once; the proxy "
        f"and the clients (one process) used {fmt(rec.get('client_and_proxy_cpu_percent'))} % "
        "of a core."
    )
    sse_ready = get(rec, "transports", "sse", "all", "reconnect_ms", "p50")
    sse_flow = get(rec, "transports", "sse", "all", "time_to_flow_ms", "p50")
    if sse_ready and sse_flow and sse_ready > 0.8 * sse_flow:
        note += (
            " SSE's *connection ready* is close to *events flow again*: the server sent the "
            "response head only together with the first event it relayed, so after a resume "
            "with nothing missed the client learns it is connected only at the next token "
            "(`EventSource` fires `open` on that head)."
        )
    return note + "\n\n" + detail + "\n\n" + totals


# -- the sections: heading, what was measured, the table -------------------------------


def latency_section(results: dict[str, Any]) -> list[str]:
    return ["## Latency", latency_details(results)]


def sweep_section(results: dict[str, Any]) -> list[str]:
    return ["## Throughput: concurrency sweep", throughput_details(results)]


def open_connections_section(results: dict[str, Any]) -> list[str]:
    return [
        "## Memory per open connection",
        "Connections held open, each with a started stream still waiting for its first "
        "token (the model's first-token wait set beyond the test), on a fresh server.",
        open_connection_details(results),
    ]


def unthrottled_section(results: dict[str, Any]) -> list[str]:
    return [
        "## One unthrottled stream",
        "The model at full speed; completions back to back on one connection.",
        unthrottled_details(results),
    ]


def wire_section(results: dict[str, Any]) -> list[str]:
    return [
        "## Wire bytes per token",
        "Counted at a TCP proxy between client and server, both directions, everything "
        "included. Compressed variants: SSE with gzip (`--sse-compression`, the compressor "
        "flushed after every event so none waits for the next) and WebSocket with "
        "permessage-deflate (`--ws-compression`), where the table says they were "
        "negotiated.",
        wire_details(results),
    ]


def reconnect_section(results: dict[str, Any]) -> list[str]:
    return [
        "## Reconnection",
        "Clients reconnect immediately; a browser's `EventSource` would first wait the "
        "`retry:` hint the server sends (1 s by default), so add that for SSE in a browser "
        "(the browser section measures it). "
        "The peer servers keep no event log and cannot resume, so only twinstream is cut.",
        reconnect_details(results),
    ]
