"""The 20-turn conversation in the report and the README, and its "what to choose" line."""

from __future__ import annotations

from typing import Any

from .format import fmt, get, table

__all__ = ["conversation_table", "conversation_section", "conversation_choice"]


def conversation_table(results: dict[str, Any]) -> str | None:
    """Per turn (ms, the conversation's total over its turns) by profile and variant."""
    profiles = get(results, "conversation", "profiles") or {}
    if not profiles:
        return None
    labels = list(dict.fromkeys(v for p in profiles.values() for v in p["variants"]))
    rows = []
    for name, profile in profiles.items():
        row = [f"`{name}`"]
        for label in labels:
            entry = profile["variants"].get(label)
            row.append(
                f"{fmt(entry['per_turn_ms'])} ({fmt(entry['connections'])})" if entry else "—"
            )
        rows.append(row)
    return table(["Profile", *labels], rows)


def conversation_section(results: dict[str, Any]) -> list[str]:
    heading = "## A conversation: turns that wait for the answer"
    data = results.get("conversation")
    rendered = conversation_table(results)
    if not data or rendered is None:
        return [f"{heading}\n\n_not run_"]
    intro = (
        f"{fmt(data['turns'])} turns of {fmt(data['tokens'])} tokens, each sent when the "
        "previous answer ended, on twinstream with the model unthrottled (the time is the "
        "transport's and the link's). WebSocket views keep one socket; SSE views make a "
        "request per turn on a kept-alive connection, and once more with a new connection "
        "per turn. Links: round trip, jitter and stalls of each profile from the suite's "
        "proxy (no bandwidth cap). Cells: ms per turn (the conversation's total over its "
        "turns) and, in brackets, the connections opened."
    )
    return [f"{heading}\n\n{intro}\n\n{rendered}"]


def conversation_choice(results: dict[str, Any]) -> str | None:
    """One socket against a request per turn, on the slowest profile measured."""
    profiles = get(results, "conversation", "profiles") or {}
    if not profiles:
        return None
    name = list(profiles)[-1]  # the run's last profile: the full preset's slowest
    found = profiles[name]["variants"]
    ws, sse = found.get("twinstream ws"), found.get("twinstream sse")
    fresh = found.get("twinstream sse, new connection per turn")
    if not ws or not sse:
        return None
    turns = get(results, "conversation", "turns")
    gain = sse["per_turn_ms"] - ws["per_turn_ms"]
    # a tenth and at least 5 ms per turn: what a user could ever notice over 20 turns
    notice = max(5.0, 0.1 * ws["per_turn_ms"])
    reopening = bool(fresh) and fresh["per_turn_ms"] - ws["per_turn_ms"] > notice
    if gain > notice:
        lead = "**A multi-turn chat or tool loop: WebSocket.**"
    elif reopening and gain >= -notice:
        lead = "**A multi-turn chat or tool loop: WebSocket, or SSE on a kept-alive connection.**"
    elif gain < -notice:
        lead = "**A multi-turn chat or tool loop: SSE on a kept-alive connection.**"
    else:
        lead = "**A multi-turn chat or tool loop: either.**"
    apart = (
        f"the socket {fmt(gain)} ms a turn ahead"
        if gain >= 0
        else f"the kept-alive requests {fmt(-gain)} ms a turn ahead"
    )
    fresh_text = (
        f", {fmt(fresh['per_turn_ms'])} ms when each turn opens a new connection" if fresh else ""
    )
    return (
        f"{lead} On `{name}`, {fmt(turns)} turns that each wait for the answer took "
        f"{fmt(ws['per_turn_ms'])} ms per turn over one WebSocket and "
        f"{fmt(sse['per_turn_ms'])} ms with an SSE request per turn on a kept-alive "
        f"connection ({apart}){fresh_text}. The socket's gain is the "
        "connection it never reopens: it flips to no difference when the HTTP client keeps "
        "its connection alive between turns (HTTP/2 does by design), and grows by a round "
        "trip per turn (TLS: two or three) when it does not."
    )
