"""The Node.js peer's "what to choose" line: twinstream against a Node server (node:http
for SSE, ws for WebSocket) in CPU and memory per stream, from the throughput part's
largest level, and in the head-to-head rounds when they ran."""

from __future__ import annotations

from typing import Any

from .format import fmt, get

__all__ = ["node_choice"]


def _top(results: dict[str, Any], server: str, transport: str) -> dict[str, Any] | None:
    levels = get(results, "throughput", server, "sweep", transport)
    return levels[-1] if levels else None


def _rounds(results: dict[str, Any], contender: str) -> float | None:
    return get(
        results, "head_to_head", "contenders", contender, "spread", "cpu_ms_per_1k_events", "median"
    )


def node_choice(results: dict[str, Any]) -> str | None:
    """Leaving Python for Node: what it buys (or costs), transport by transport."""
    parts = []
    behind = []
    for transport, name in (("sse", "SSE"), ("ws", "WebSocket")):
        mine, node = _top(results, "twinstream", transport), _top(results, "node", transport)
        if not mine or not node:
            continue
        cpu_mine = _rounds(results, f"twinstream {transport}") or mine.get(
            "server_cpu_ms_per_1k_events"
        )
        cpu_node = _rounds(results, f"node {transport}") or node.get("server_cpu_ms_per_1k_events")
        if not cpu_mine or not cpu_node:
            continue
        ratio = cpu_mine / cpu_node
        if ratio > 1.05:
            behind.append(f"{name} {100 * (ratio - 1):.0f} % more CPU")
        parts.append(
            f"{name}: {fmt(cpu_mine)} vs {fmt(cpu_node)} ms of server CPU per 1,000 tokens "
            f"({ratio:.2f}×), {fmt(mine.get('memory_per_stream_kib'))} vs "
            f"{fmt(node.get('memory_per_stream_kib'))} KiB per live stream"
        )
    if not parts:
        return None
    streams = fmt(get(_top(results, "twinstream", "sse") or {}, "streams"))
    lead = (
        f"**Leaving Python for Node buys CPU: twinstream is behind ({', '.join(behind)}).**"
        if behind
        else "**Leaving Python for Node buys nothing here: twinstream is at or ahead.**"
    )
    return (
        f"{lead} At {streams} streams, twinstream against a Node server written the usual "
        f"way (`node:http`, `res.write` per event; `ws`, `ws.send` per event) — "
        f"{'; '.join(parts)}. The Node server resumes nothing: exact resume, cancel and "
        "a shared store are what twinstream's extra work per stream buys; it flips where "
        "the server's CPU, not the model, is the cost (thousands of events per second "
        "per core)."
    )
