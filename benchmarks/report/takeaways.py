"""The summary's plain sentences, drawn from one run's numbers."""

from __future__ import annotations

from typing import Any

from .format import fmt, get
from .headline import top_level

__all__ = ["takeaways"]


def _percent_less(smaller: Any, larger: Any) -> str | None:
    if not isinstance(smaller, (int, float)) or not isinstance(larger, (int, float)) or not larger:
        return None
    return f"{100 * (1 - smaller / larger):.0f}%"


def takeaways(results: dict[str, Any]) -> list[str]:
    """Plain sentences drawn from this run's numbers (twinstream SSE vs WebSocket)."""
    lines: list[str] = []
    lat = get(results, "latency", "twinstream", "transports") or {}
    sse_cold = get(lat, "sse", "single", "cold", "time_to_start_ms", "p50")
    ws_cold = get(lat, "ws", "single", "cold", "time_to_start_ms", "p50")
    sse_warm = get(lat, "sse", "single", "warm", "time_to_start_ms", "p50")
    ws_warm = get(lat, "ws", "single", "warm", "time_to_start_ms", "p50")
    if None not in (sse_cold, ws_cold, sse_warm, ws_warm):
        lines.append(
            f"Connection setup: a new connection reaches the first event in {fmt(sse_cold)} ms "
            f"over SSE and {fmt(ws_cold)} ms over WebSocket (median, one stream; the WebSocket "
            f"handshake is an extra HTTP exchange before the `start` message can be sent); on "
            f"an open connection {fmt(sse_warm)} vs {fmt(ws_warm)} ms. Both are small next to "
            f"a model's first-token wait (TTFT includes "
            f"{fmt(get(results, 'meta', 'config', 'first_token_latency'), 2)} s of it)."
        )
    sse_delay = get(lat, "sse", "concurrent", "delivery_delay_ms")
    ws_delay = get(lat, "ws", "concurrent", "delivery_delay_ms")
    streams = get(lat, "sse", "concurrent", "streams")
    busy = max(
        (
            b
            for t in ("sse", "ws")
            if (b := get(lat, t, "concurrent", "machine_cpu_percent")) is not None
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
    wire = get(results, "throughput", "twinstream", "wire_bytes") or {}
    sse_bytes = get(wire, "sse_cold", "bytes_down_per_token")
    ws_bytes = get(wire, "ws_cold", "bytes_down_per_token")
    deflate = get(wire, "ws_deflate_cold")
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
        gzip = get(wire, "sse_gzip_cold")
        if gzip and gzip.get("deflate_negotiated") and deflate:
            sentence += (
                f"; SSE with gzip needs {fmt(gzip['bytes_down_per_token'])} "
                f"({fmt(gzip['bytes_down_per_token'] / deflate['bytes_down_per_token'], 2)}× "
                "WebSocket with permessage-deflate)"
            )
        lines.append(sentence + ".")
    top_sse = top_level(results, "twinstream", "sse")
    top_ws = top_level(results, "twinstream", "ws")
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
    rec = get(results, "reconnect", "transports") or {}
    if rec.get("sse") and rec.get("ws"):
        lost = sum(rec[t]["lost"] for t in ("sse", "ws"))
        duplicated = sum(rec[t]["duplicated"] for t in ("sse", "ws"))
        cuts = sum(rec[t]["all"]["cuts"] for t in ("sse", "ws"))
        lines.append(
            f"Reconnection: {fmt(cuts)} cuts, {fmt(lost)} events lost and {fmt(duplicated)} "
            f"duplicated in all. SSE resumes with the standard `Last-Event-ID` header (the "
            f"browser's `EventSource` sends it by itself, after the `retry:` wait); WebSocket "
            f"needs the application's own `resume` message. After a cut, events flowed again "
            f"in {fmt(get(rec, 'sse', 'all', 'time_to_flow_ms', 'p50'))} ms (SSE) vs "
            f"{fmt(get(rec, 'ws', 'all', 'time_to_flow_ms', 'p50'))} ms (WebSocket), and the "
            f"first resumed event reached the reader "
            f"{fmt(get(rec, 'sse', 'all', 'resumed_event_delay_ms', 'p50'), 2)} vs "
            f"{fmt(get(rec, 'ws', 'all', 'resumed_event_delay_ms', 'p50'), 2)} ms after it "
            f"was produced (medians, reconnecting at once)."
        )
    return lines
