"""Turning ``results.json`` into ``report.md`` and PNG plots (matplotlib, Agg).

``python -m benchmarks report DIR`` rebuilds the report of an earlier run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import connections, headtohead, stuck

__all__ = ["write_report", "summary_rows", "summary_table", "plot_all"]

DASH = "—"


def _get(data: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(a: Any, b: Any) -> str:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b:
        return DASH
    return f"{a / b:.2f}×"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _top_level(results: dict[str, Any], server: str, transport: str) -> dict[str, Any] | None:
    levels = _get(results, "throughput", server, "sweep", transport)
    return levels[-1] if levels else None


def _deflate_bytes(results: dict[str, Any], server: str, variant: str = "ws_deflate") -> Any:
    wire = _get(results, "throughput", server, "wire_bytes", f"{variant}_cold")
    if not wire:
        return None
    if not wire.get("deflate_negotiated"):
        return "not negotiated"
    return wire.get("bytes_down_per_token")


def summary_rows(results: dict[str, Any]) -> list[tuple[str, Any, Any, Any, Any]]:
    """``(metric, twinstream SSE, twinstream WS, sse-starlette SSE, websockets WS)``."""
    lat = results.get("latency", {})
    rec = _get(results, "reconnect", "transports") or {}

    def lat_value(server: str, transport: str, *path: str) -> Any:
        return _get(lat, server, "transports", transport, *path)

    columns = [
        ("twinstream", "sse"),
        ("twinstream", "ws"),
        ("sse-starlette", "sse"),
        ("websockets", "ws"),
    ]

    def row(label: str, getter: Any) -> tuple[str, Any, Any, Any, Any]:
        values = [getter(server, transport) for server, transport in columns]
        return (label, values[0], values[1], values[2], values[3])

    concurrency = _get(lat, "twinstream", "transports", "sse", "concurrent", "streams") or _get(
        lat, "sse-starlette", "transports", "sse", "concurrent", "streams"
    )
    top = _top_level(results, "twinstream", "sse") or _top_level(results, "sse-starlette", "sse")
    top_streams = top["streams"] if top else None
    rows = [
        row(
            "TTFT, cold: new connection (ms, p50)",
            lambda s, t: lat_value(s, t, "single", "cold", "ttft_ms", "p50"),
        ),
        row(
            "TTFT, warm: connection reused (ms, p50)",
            lambda s, t: lat_value(s, t, "single", "warm", "ttft_ms", "p50"),
        ),
        row(
            "Time to start event, cold (ms, p50)",
            lambda s, t: lat_value(s, t, "single", "cold", "time_to_start_ms", "p50"),
        ),
        row(
            "Time to start event, warm (ms, p50)",
            lambda s, t: lat_value(s, t, "single", "warm", "time_to_start_ms", "p50"),
        ),
        row(
            "Delivery delay, 1 stream (ms, p50)",
            lambda s, t: lat_value(s, t, "single", "delivery_delay_ms", "p50"),
        ),
        row(
            "Delivery delay, 1 stream (ms, p99)",
            lambda s, t: lat_value(s, t, "single", "delivery_delay_ms", "p99"),
        ),
        row(
            f"TTFT, {fmt(concurrency)} concurrent streams (ms, p50)",
            lambda s, t: lat_value(s, t, "concurrent", "ttft_ms", "p50"),
        ),
        row(
            f"Delivery delay, {fmt(concurrency)} streams (ms, p50)",
            lambda s, t: lat_value(s, t, "concurrent", "delivery_delay_ms", "p50"),
        ),
        row(
            f"Delivery delay, {fmt(concurrency)} streams (ms, p99)",
            lambda s, t: lat_value(s, t, "concurrent", "delivery_delay_ms", "p99"),
        ),
        row(
            f"Inter-token gap, {fmt(concurrency)} streams (ms, p99)",
            lambda s, t: lat_value(s, t, "concurrent", "inter_token_gap_ms", "p99"),
        ),
        row(
            f"Delivered events/s, {fmt(top_streams)} streams",
            lambda s, t: _get(_top_level(results, s, t), "delivered_events_per_s"),
        ),
        row(
            f"Offered events/s, {fmt(top_streams)} streams",
            lambda s, t: _get(_top_level(results, s, t), "offered_events_per_s"),
        ),
        row(
            f"Server CPU, {fmt(top_streams)} streams (% of a core)",
            lambda s, t: _get(_top_level(results, s, t), "server_cpu_percent"),
        ),
        row(
            f"Server CPU per 1k events, {fmt(top_streams)} streams (ms)",
            lambda s, t: _get(_top_level(results, s, t), "server_cpu_ms_per_1k_events"),
        ),
        row(
            f"Client CPU, {fmt(top_streams)} streams (% of a core, all load processes)",
            lambda s, t: _get(_top_level(results, s, t), "client_cpu_percent"),
        ),
        row(
            f"Machine busy, {fmt(top_streams)} streams (% of all cores, every process)",
            lambda s, t: _get(_top_level(results, s, t), "machine_cpu_percent"),
        ),
        row(
            "Memory per open connection, stream waiting for its first token (KiB)",
            lambda s, t: _get(
                results, "throughput", s, "open_connections", t, "memory_per_connection_kib"
            ),
        ),
        row(
            f"Memory per live stream, {fmt(top_streams)} streams (KiB)",
            lambda s, t: _get(_top_level(results, s, t), "memory_per_stream_kib"),
        ),
        row(
            "One unthrottled stream (events/s)",
            lambda s, t: _get(results, "throughput", s, "unthrottled", t, "events_per_s"),
        ),
        row(
            "Wire bytes per token, server → client",
            lambda s, t: _get(
                results, "throughput", s, "wire_bytes", f"{t}_cold", "bytes_down_per_token"
            ),
        ),
        row(
            "Wire bytes per token, compressed (SSE gzip, WebSocket permessage-deflate)",
            lambda s, t: _deflate_bytes(results, s, "ws_deflate" if t == "ws" else "sse_gzip"),
        ),
        row(
            "Reconnect: cut → events flow again (ms, p50)",
            lambda s, t: (
                _get(rec, t, "all", "time_to_flow_ms", "p50") if s == "twinstream" else None
            ),
        ),
        row(
            "Reconnect: cut → new connection ready (ms, p50)",
            lambda s, t: _get(rec, t, "all", "reconnect_ms", "p50") if s == "twinstream" else None,
        ),
        row(
            "Reconnect: first resumed event's delivery delay (ms, p50)",
            lambda s, t: (
                _get(rec, t, "all", "resumed_event_delay_ms", "p50") if s == "twinstream" else None
            ),
        ),
        row(
            "Reconnect: events lost / duplicated",
            lambda s, t: (
                f"{_get(rec, t, 'lost')} / {_get(rec, t, 'duplicated')}"
                if s == "twinstream" and _get(rec, t)
                else None
            ),
        ),
    ]
    rows += connections.summary_rows(results) + stuck.summary_rows(results)
    from .sections import browser_summary

    rows += [(label, sse, ws, None, None) for label, sse, ws in browser_summary(results)]
    return rows


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
        rows.append([label, fmt(sse), fmt(ws), _ratio(ws, sse), fmt(peer_sse), fmt(peer_ws)])
    return _table(header, rows)


def _latency_details(results: dict[str, Any]) -> str:
    rows = []
    for server, data in results.get("latency", {}).items():
        for transport, measures in data.get("transports", {}).items():
            for scope, path in (
                ("1 stream, cold", ("single", "cold")),
                ("1 stream, warm", ("single", "warm")),
                (f"{measures['concurrent']['streams']} streams", ("concurrent",)),
            ):
                block = _get(measures, *path)
                for metric in (
                    "ttft_ms",
                    "time_to_start_ms",
                    "inter_token_gap_ms",
                    "delivery_delay_ms",
                ):
                    stats = _get(block, metric) or {}
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
    return _table(header, rows) if rows else "_not run_"


def _throughput_details(results: dict[str, Any]) -> str:
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
                        fmt(_get(level, "delivery_delay_ms", "p50"), 2),
                        fmt(_get(level, "delivery_delay_ms", "p99"), 2),
                        fmt(_get(level, "model_lag_ms", "p50"), 2),
                        fmt(_get(level, "model_lag_ms", "p99"), 2),
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
    return _table(header, rows) if rows else "_not run_"


def _wire_details(results: dict[str, Any]) -> str:
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
    return _table(header, rows) if rows else "_not run_"


def _open_connection_details(results: dict[str, Any]) -> str:
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
    return _table(header, rows) if rows else "_not run_"


def _unthrottled_details(results: dict[str, Any]) -> str:
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
    return _table(header, rows) if rows else "_not run_"


def _reconnect_details(results: dict[str, Any]) -> str:
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
                    fmt(_get(block, "reconnect_ms", "p50"), 2),
                    fmt(_get(block, "time_to_flow_ms", "p50"), 2),
                    fmt(_get(block, "time_to_flow_ms", "p90"), 2),
                    fmt(_get(block, "time_to_flow_ms", "max"), 2),
                    fmt(_get(block, "resumed_event_delay_ms", "p50"), 2),
                    fmt(_get(block, "resumed_event_delay_ms", "max"), 2),
                ]
            )
    detail = _table(
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
    totals = _table(
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
    sse_ready = _get(rec, "transports", "sse", "all", "reconnect_ms", "p50")
    sse_flow = _get(rec, "transports", "sse", "all", "time_to_flow_ms", "p50")
    if sse_ready and sse_flow and sse_ready > 0.8 * sse_flow:
        note += (
            " SSE's *connection ready* is close to *events flow again*: the server sent the "
            "response head only together with the first event it relayed, so after a resume "
            "with nothing missed the client learns it is connected only at the next token "
            "(`EventSource` fires `open` on that head)."
        )
    return note + "\n\n" + detail + "\n\n" + totals


GLOSSARY = """\
- **TTFT (time to first token)**: from the moment the client starts (cold: before
  opening the TCP connection; warm: before sending the request on an open one) to the
  first `delta` event. It includes the synthetic model's first-token wait
  (`first_token_latency`), identical for every server; **time to start event** is the
  same clock stopped at the `start` event, i.e. the transport's own setup cost.
- **Cold / warm**: cold opens a new connection per completion (what `EventSource`
  does, and a page that opens a WebSocket per question); warm reuses one (a
  WebSocket kept open, or a kept-alive HTTP/1.1 connection for SSE).
- **Delivery delay**: client receive time minus the event's `t` (same machine, same
  clock). A `delta`'s `t` is when the synthetic model released the token (its pacer's
  wake-up), before the token waits for its stream's turn on the server's event loop;
  other events' `t` is when the server made them. So it is the time a token spends
  waiting in the server, in its relay, the kernel and the client's parser. Every
  server here runs the same model code and stamps the same way.
- **Inter-token gap**: time between consecutive `delta` events at the client; at
  30 tokens/s the model's own gap is 33.3 ms, so the spread around it is jitter.
- **Offered / delivered events/s**: offered = streams × the model's tokens/s;
  delivered = `delta` events received per second in the window where all streams
  were live. Delivered below offered means the server (or the client) fell behind.
- **Model lag**: how late the synthetic model *released* each token against its
  schedule, from the server's own `t` stamps. A large lag means the server's event
  loop was too busy to wake the model on time; a small lag with a large delivery
  delay means the tokens then waited in the server, its relay, the kernel or the
  client.
- **Server CPU %**: the server process's CPU time over the window, in % of one core
  (psutil). **ms per 1k events**: CPU time spent per 1,000 delivered tokens over
  the whole level — the cost of streaming, comparable across transports.
- **Client CPU %**: the load generator's processes (summed, averaged over the whole
  level), so you can tell when the client,
  not the server, is the bottleneck (client and server share this machine's cores).
- **Machine busy %**: the whole machine's CPU use (all processes, all cores) during the
  window. Near 100 % means server, clients and whatever else runs here competed for
  the cores, so a shortfall of delivered vs offered is not the server's alone.
- **Memory per open connection**: (RSS with N connections open − RSS before) / N,
  each connection holding a started stream that has not produced a token yet.
- **Memory per live stream**: (peak RSS during the level − RSS before it) / streams:
  a connection plus its stream's state, on a fresh server. RSS moves in pages and
  allocator arenas, so at a few streams this is noise; read it at the largest level.
- **Wire bytes per token**: every byte the server sent (HTTP headers, chunked
  framing or WebSocket frames, handshakes) counted at a TCP proxy, divided by the
  number of `delta` events; "cold" = a new connection per completion.
- **Reconnect**: each stream is cut several times, taking in turn the network (a proxy
  between client and server drops both sockets), the client (it aborts its socket) and
  the server (it closes the connection: `POST /debug/drop`); the client resumes at once
  (SSE: `Last-Event-ID`; WebSocket: a `resume` message).
  *Reconnect* = cut → new connection ready (SSE: response head received; WebSocket:
  handshake done). *Events flow again* = cut → first event on
  the new connection; at a paced model this is often just the wait for the next token,
  so *resumed event delay* (that event's receive time − the server's `t`) shows what
  the cut cost the reader. *Lost* = seqs never received, *duplicated* = seqs received
  twice; both must be 0.
"""


def plot_all(results: dict[str, Any], out: Path) -> list[str]:
    """Write the PNG plots; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []
    latency = results.get("latency", {})
    series = [
        (server, transport, data["cdf_ms"])
        for server, server_data in latency.items()
        for transport, data in server_data.get("transports", {}).items()
    ]
    if series:
        panels = (
            ("ttft_cold", "TTFT, cold (ms)"),
            ("ttft_warm", "TTFT, warm (ms)"),
            ("delivery_delay_single", "Delivery delay, 1 stream (ms)"),
            ("delivery_delay_concurrent", "Delivery delay, many streams (ms)"),
        )
        # the real sample count (the stored CDF may be thinned)
        counts = {
            "ttft_cold": ("single", "cold", "ttft_ms", "n"),
            "ttft_warm": ("single", "warm", "ttft_ms", "n"),
            "delivery_delay_single": ("single", "delivery_delay_ms", "n"),
            "delivery_delay_concurrent": ("concurrent", "delivery_delay_ms", "n"),
        }
        figure, axes = plt.subplots(2, 2, figsize=(11, 8))
        for axis, (key, title) in zip(axes.flat, panels):
            for server, transport, cdf in series:
                values = cdf.get(key) or []
                if not values:
                    continue
                n = _get(latency, server, "transports", transport, *counts[key]) or len(values)
                fractions = [(i + 1) / len(values) for i in range(len(values))]
                style = "-" if server == "twinstream" else "--"
                # few samples: show each one, not a line that suggests a distribution
                marker = "o" if len(values) < 30 else None
                axis.step(
                    values,
                    fractions,
                    style,
                    where="post",
                    marker=marker,
                    markersize=3,
                    label=f"{server} {transport} (n={n:,})",
                )
            axis.set_title(title)
            axis.set_ylabel("fraction ≤ x")
            if key.startswith("delivery"):
                axis.set_xscale("log")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
        figure.suptitle("Latency CDFs (solid: twinstream, dashed: peers)")
        figure.tight_layout()
        figure.savefig(out / "latency_cdf.png", dpi=110)
        plt.close(figure)
        written.append("latency_cdf.png")
    throughput = results.get("throughput", {})
    if throughput:
        # delivered as a share of offered (delivered events/s alone restates the offered load)
        figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        for server, data in throughput.items():
            for transport, levels in data.get("sweep", {}).items():
                streams = [level["streams"] for level in levels]
                style = "o-" if server == "twinstream" else "s--"
                n = sum(level.get("delta_events") or 0 for level in levels)
                label = f"{server} {transport} (n={n:,} tokens)"
                share = [
                    100 * level["delivered_events_per_s"] / level["offered_events_per_s"]
                    if level.get("offered_events_per_s") and level.get("delivered_events_per_s")
                    else float("nan")
                    for level in levels
                ]
                axes[0].plot(streams, share, style, label=label)
                axes[1].plot(
                    streams,
                    [level["server_cpu_ms_per_1k_events"] or float("nan") for level in levels],
                    style,
                    label=label,
                )
                axes[2].plot(
                    streams,
                    [level["memory_per_stream_kib"] or float("nan") for level in levels],
                    style,
                    label=label,
                )
        for axis, title in zip(
            axes,
            (
                "Delivered, % of offered",
                "Server CPU per 1,000 events (ms)",
                "Memory per live stream (KiB)",
            ),
        ):
            axis.set_xscale("log")
            axis.set_xlabel("concurrent streams")
            axis.set_title(title)
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
        axes[0].axhline(100, color="k", linestyle=":", linewidth=1)
        figure.suptitle("Throughput vs concurrency")
        figure.tight_layout()
        figure.savefig(out / "throughput.png", dpi=110)
        plt.close(figure)
        written.append("throughput.png")
    from .sections import plot_network

    written += plot_network(results, out)
    return written


def _settings(meta: dict[str, Any]) -> str:
    config = meta.get("config", {})
    lines = [
        f"- Command: `{meta.get('command', '')}`",
        f"- Run: {meta.get('started', '')} UTC, {fmt(meta.get('duration_s'))} s, "
        f"parts: {', '.join(meta.get('parts', []))} "
        f"({', '.join(f'{k} {v} s' for k, v in meta.get('part_seconds', {}).items())})",
        f"- Machine: {meta.get('cpu_model', '?')}, {meta.get('cpus', '?')} cores, "
        f"{fmt(meta.get('memory_gib'))} GiB RAM, {meta.get('platform', '')}; "
        f"load average at start {meta.get('load_average', '?')}, at the end "
        f"{meta.get('load_average_end', '?')} (a shared machine: other work ran too)",
        f"- Python {meta.get('python', '')}; "
        + ", ".join(f"{k} {v}" for k, v in sorted(meta.get("versions", {}).items())),
        f"- Synthetic model: {fmt(config.get('tokens_per_second'))} tokens/s per stream, "
        f"first token after {fmt(config.get('first_token_latency'), 2)} s "
        f"(same for every server); preset `{config.get('name')}`",
        f"- Client load: {config.get('workers')} worker processes (asyncio clients: a raw "
        f"HTTP/SSE reader and the `websockets` client); one connection per stream; "
        f"{fmt(config.get('ramp_per_stream', 0) * 1000, 1)} ms between stream starts",
        f"- Server under test: {meta.get('url') or 'started by the suite (python -m server)'}",
    ]
    return "\n".join(lines)


def _percent_less(smaller: Any, larger: Any) -> str | None:
    if not isinstance(smaller, (int, float)) or not isinstance(larger, (int, float)) or not larger:
        return None
    return f"{100 * (1 - smaller / larger):.0f}%"


def takeaways(results: dict[str, Any]) -> list[str]:
    """Plain sentences drawn from this run's numbers (twinstream SSE vs WebSocket)."""
    lines: list[str] = []
    lat = _get(results, "latency", "twinstream", "transports") or {}
    sse_cold = _get(lat, "sse", "single", "cold", "time_to_start_ms", "p50")
    ws_cold = _get(lat, "ws", "single", "cold", "time_to_start_ms", "p50")
    sse_warm = _get(lat, "sse", "single", "warm", "time_to_start_ms", "p50")
    ws_warm = _get(lat, "ws", "single", "warm", "time_to_start_ms", "p50")
    if None not in (sse_cold, ws_cold, sse_warm, ws_warm):
        lines.append(
            f"Connection setup: a new connection reaches the first event in {fmt(sse_cold)} ms "
            f"over SSE and {fmt(ws_cold)} ms over WebSocket (median, one stream; the WebSocket "
            f"handshake is an extra HTTP exchange before the `start` message can be sent); on "
            f"an open connection {fmt(sse_warm)} vs {fmt(ws_warm)} ms. Both are small next to "
            f"a model's first-token wait (TTFT includes "
            f"{fmt(_get(results, 'meta', 'config', 'first_token_latency'), 2)} s of it)."
        )
    sse_delay = _get(lat, "sse", "concurrent", "delivery_delay_ms")
    ws_delay = _get(lat, "ws", "concurrent", "delivery_delay_ms")
    streams = _get(lat, "sse", "concurrent", "streams")
    busy = max(
        (
            b
            for t in ("sse", "ws")
            if (b := _get(lat, t, "concurrent", "machine_cpu_percent")) is not None
        ),
        default=None,
    )
    if sse_delay and ws_delay and sse_delay.get("p50") is not None:
        lines.append(
            f"Delivery: with {fmt(streams)} concurrent streams an event reaches its reader "
            f"{fmt(sse_delay['p50'], 2)} ms (SSE) vs {fmt(ws_delay['p50'], 2)} ms (WebSocket) "
            f"after it is produced (median; p99 {fmt(sse_delay['p99'], 1)} vs "
            f"{fmt(ws_delay['p99'], 1)} ms)"
            + (
                f": but the machine was {fmt(busy)} % busy meanwhile, so these tails are "
                "partly other work's (see the banner)."
                if busy is not None and busy >= 90
                else ": neither transport adds latency a reader could see."
                if max(sse_delay["p99"], ws_delay["p99"]) < 50
                else ": the p99 tail is long enough to see; the tables below show where."
            )
        )
    wire = _get(results, "throughput", "twinstream", "wire_bytes") or {}
    sse_bytes = _get(wire, "sse_cold", "bytes_down_per_token")
    ws_bytes = _get(wire, "ws_cold", "bytes_down_per_token")
    deflate = _get(wire, "ws_deflate_cold")
    if sse_bytes and ws_bytes:
        sentence = (
            f"Bytes: SSE sends {fmt(sse_bytes)} bytes per token, WebSocket {fmt(ws_bytes)} "
            f"({_percent_less(ws_bytes, sse_bytes)} less: a 2-6 byte frame header instead of "
            f"the `id:`/`data:` lines, the blank line and chunked framing)"
        )
        if deflate and deflate.get("deflate_negotiated"):
            sentence += (
                f"; with permessage-deflate WebSocket needs {fmt(deflate['bytes_down_per_token'])}"
                f" ({_percent_less(deflate['bytes_down_per_token'], sse_bytes)} less than SSE), "
                "at the cost of per-connection compressor memory and CPU"
            )
        gzip = _get(wire, "sse_gzip_cold")
        if gzip and gzip.get("deflate_negotiated") and deflate:
            sentence += (
                f"; SSE with gzip needs {fmt(gzip['bytes_down_per_token'])} "
                f"({fmt(gzip['bytes_down_per_token'] / deflate['bytes_down_per_token'], 2)}× "
                "WebSocket with permessage-deflate)"
            )
        lines.append(sentence + ".")
    top_sse = _top_level(results, "twinstream", "sse")
    top_ws = _top_level(results, "twinstream", "ws")
    if top_sse and top_ws:
        lines.append(
            f"Cost at {fmt(top_sse['streams'])} streams: the server spent "
            f"{fmt(top_sse['server_cpu_ms_per_1k_events'])} ms of CPU per 1,000 tokens over "
            f"SSE and {fmt(top_ws['server_cpu_ms_per_1k_events'])} ms over WebSocket, and "
            f"delivered {fmt(top_sse['delivered_events_per_s'])} vs "
            f"{fmt(top_ws['delivered_events_per_s'])} of "
            f"{fmt(top_sse['offered_events_per_s'])} offered events/s; memory per live stream "
            f"{fmt(top_sse['memory_per_stream_kib'])} vs {fmt(top_ws['memory_per_stream_kib'])} "
            "KiB."
        )
    rec = _get(results, "reconnect", "transports") or {}
    if rec.get("sse") and rec.get("ws"):
        lost = sum(rec[t]["lost"] for t in ("sse", "ws"))
        duplicated = sum(rec[t]["duplicated"] for t in ("sse", "ws"))
        cuts = sum(rec[t]["all"]["cuts"] for t in ("sse", "ws"))
        lines.append(
            f"Reconnection: {fmt(cuts)} cuts, {fmt(lost)} events lost and {fmt(duplicated)} "
            f"duplicated in all. SSE resumes with the standard `Last-Event-ID` header (the "
            f"browser's `EventSource` sends it by itself, after the `retry:` wait); WebSocket "
            f"needs the application's own `resume` message. After a cut, events flowed again "
            f"in {fmt(_get(rec, 'sse', 'all', 'time_to_flow_ms', 'p50'))} ms (SSE) vs "
            f"{fmt(_get(rec, 'ws', 'all', 'time_to_flow_ms', 'p50'))} ms (WebSocket), and the "
            f"first resumed event reached the reader "
            f"{fmt(_get(rec, 'sse', 'all', 'resumed_event_delay_ms', 'p50'), 2)} vs "
            f"{fmt(_get(rec, 'ws', 'all', 'resumed_event_delay_ms', 'p50'), 2)} ms after it "
            f"was produced (medians, reconnecting at once)."
        )
    return lines


def _ratio_note(results: dict[str, Any]) -> list[str]:
    from .verdict import ratio_notes

    note = ratio_notes(results)
    return [note] if note else []


def write_report(results: dict[str, Any], out: Path) -> Path:
    """Write ``report.md`` (and the plots) into ``out``; returns the report's path."""
    from .sections import browser_details, churn_details, network_details, network_summary
    from .verdict import busy_banner, choose

    out.mkdir(parents=True, exist_ok=True)
    plots = plot_all(results, out)
    meta = results.get("meta", {})
    banner = busy_banner(results)
    statements = choose(results)
    network = network_summary(results)
    sections = [
        "# twinstream benchmark: SSE vs WebSocket",
        *([banner] if banner else []),
        "## What to choose",
        "\n".join(f"- {line}" for line in statements)
        if statements
        else "_This run did not include the parts the verdict is drawn from._",
        *(["### Through link profiles", network] if network else []),
        "One LLM chat completion streamed two ways by the same server (twinstream, Tornado), "
        "with two reference servers a Python user would otherwise pick (sse-starlette on "
        "uvicorn for SSE, the `websockets` library for WebSocket) run in the same session "
        "under the same conditions. Numbers are from one run on a shared, noisy machine: "
        "compare medians and ratios within this report rather than absolute values across "
        "machines.",
        "## Summary",
        summary_table(results),
        "\n".join(f"- {line}" for line in takeaways(results) + _ratio_note(results)),
        "## Machine and settings",
        _settings(meta),
        "## What the numbers mean",
        GLOSSARY,
    ]
    if plots:
        sections += ["## Plots"] + [f"![{name}]({name})" for name in plots]
    sections += [
        "## Latency",
        _latency_details(results),
        "## Throughput: concurrency sweep",
        _throughput_details(results),
        "## Memory per open connection",
        "Connections held open, each with a started stream still waiting for its first "
        "token (the model's first-token wait set beyond the test), on a fresh server.",
        _open_connection_details(results),
        connections.report_section(results) or "## Memory per idle connection\n\n_not run_",
        stuck.report_section(results) or "## Stuck readers\n\n_not run_",
        headtohead.report_section(results) or "## Head to head: the stream core's targets"
        "\n\n_not run_",
        "## One unthrottled stream",
        "The model at full speed; completions back to back on one connection.",
        _unthrottled_details(results),
        "## Wire bytes per token",
        "Counted at a TCP proxy between client and server, both directions, everything "
        "included. Compressed variants: SSE with gzip (`--sse-compression`, the compressor "
        "flushed after every event so none waits for the next) and WebSocket with "
        "permessage-deflate (`--ws-compression`), where the table says they were "
        "negotiated.",
        _wire_details(results),
        "## Reconnection",
        "Clients reconnect immediately; a browser's `EventSource` would first wait the "
        "`retry:` hint the server sends (1 s by default), so add that for SSE in a browser "
        "(the browser section measures it). "
        "The peer servers keep no event log and cannot resume, so only twinstream is cut.",
        _reconnect_details(results),
        "## Network profiles",
        network_details(results),
        "## In a real browser",
        browser_details(results),
        "## Churn",
        churn_details(results),
    ]
    if "scaleout" in results:
        from .scaleout import scaleout_details

        sections += ["## Scale-out: Redis store, 1 and 2 processes"]
        sections += [scaleout_details(results["scaleout"])]
    path = out / "report.md"
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return path
