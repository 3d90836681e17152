"""The protocol table in the report and the README, and its "what to choose" line."""

from __future__ import annotations

from typing import Any

from .format import fmt, get, table

__all__ = ["protocol_table", "protocols_section", "protocol_choice"]


def protocol_table(results: dict[str, Any]) -> str | None:
    """One row per view: bytes per token (plain, compressed), server CPU per 1,000 tokens
    at the run's stream count with the share delivered, time to first token cold and warm."""
    data = results.get("protocols")
    if not data or not data.get("views"):
        return None
    streams = fmt(data.get("streams"))
    header = [
        "View",
        "What",
        "Bytes/token",
        "Bytes/token compressed",
        f"Server CPU per 1k tokens, {streams} streams (ms)",
        "Delivered (%)",
        "First token cold (ms, p50)",
        "First token warm (ms, p50)",
    ]
    rows = []
    for name, view in data["views"].items():
        compressed = get(view, "wire", "compressed")
        rows.append(
            [
                name,
                view.get("what", ""),
                fmt(get(view, "wire", "plain", "bytes_per_token")),
                fmt(compressed.get("bytes_per_token"))
                if compressed and compressed.get("compressed")
                else "not negotiated",
                fmt(get(view, "cpu", "server_cpu_ms_per_1k_tokens")),
                fmt(get(view, "cpu", "delivered_percent"), 2),
                fmt(get(view, "first_token", "cold_ms", "p50")),
                fmt(get(view, "first_token", "warm_ms", "p50")),
            ]
        )
    return table(header, rows)


def protocols_section(results: dict[str, Any]) -> list[str]:
    rendered = protocol_table(results)
    heading = "## What each protocol view costs"
    if rendered is None:
        return [f"{heading}\n\n_not run_"]
    intro = (
        "Every view of a stream twinstream speaks, measured in one run on twinstream: "
        "bytes per token server → client at a TCP proxy (headers, framing, handshakes; "
        "completions one after another on one session; compressed = gzip for event "
        "streams, permessage-deflate for WebSockets), server CPU per 1,000 delivered "
        "tokens with every stream on its own new session at the model's pace, and the "
        "time from asking to the first token on a new session (cold) and a reused one "
        "(warm). A view is one entry in `benchmarks/views.py`."
    )
    return [f"{heading}\n\n{intro}\n\n{rendered}"]


def protocol_choice(results: dict[str, Any]) -> str | None:
    """The "what to choose" line: the leanest view per token, and what it costs to carry
    the OpenAI shapes instead."""
    views = get(results, "protocols", "views") or {}
    plain = {
        name: get(view, "wire", "plain", "bytes_per_token")
        for name, view in views.items()
        if get(view, "wire", "plain", "bytes_per_token")
    }
    cpu = {
        name: get(view, "cpu", "server_cpu_ms_per_1k_tokens")
        for name, view in views.items()
        if get(view, "cpu", "server_cpu_ms_per_1k_tokens")
    }
    if len(plain) < 2:
        return None
    lean = min(plain, key=plain.__getitem__)
    heavy = max(plain, key=plain.__getitem__)
    cpu_text = ""
    if lean in cpu and heavy in cpu:
        cpu_text = (
            f"; server CPU {fmt(cpu[lean])} vs {fmt(cpu[heavy])} ms per 1,000 tokens at "
            f"{fmt(get(results, 'protocols', 'streams'))} streams"
        )
    compressed = {
        name: get(view, "wire", "compressed", "bytes_per_token")
        for name, view in views.items()
        if get(view, "wire", "compressed", "compressed")
    }
    flip = (
        f" Compression narrows it to {fmt(min(compressed.values()))}–"
        f"{fmt(max(compressed.values()))} B/token"
        if len(compressed) >= 2
        else ""
    )
    return (
        f"**Fewest bytes per token: {lean}.** {fmt(plain[lean])} B/token against "
        f"{fmt(plain[heavy])} for {heavy} ({plain[heavy] / plain[lean]:.1f}×){cpu_text}. "
        "It flips only for a client that must read an existing shape (the OpenAI SDKs read "
        f"the /v1 views, the AI SDK its UI message stream).{flip}."
    )
