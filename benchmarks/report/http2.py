"""HTTP/2 in front (nginx, TLS) in the report and the README: the browser's streams over
HTTP/1.1 and HTTP/2, and the verdict's HTTP/2 line, computed from the run."""

from __future__ import annotations

from typing import Any

from .format import fmt, get, table

__all__ = ["http2_table", "http2_section", "http2_choice", "http2_flip"]

_VERSIONS = {"http1": "HTTP/1.1", "http2": "HTTP/2"}
_TRANSPORTS = {"sse": "EventSources", "ws": "streams on one WebSocket"}


def _at(results: dict[str, Any], version: str, count: Any, transport: str) -> Any:
    return get(results, "http2", "versions", version, "counts", str(count), transport)


def http2_table(results: dict[str, Any]) -> str | None:
    data = results.get("http2")
    if not data or not data.get("available"):
        return None
    rows = []
    for count in data["counts"]:
        for transport in ("sse", "ws"):
            row = [f"{fmt(count)} {_TRANSPORTS[transport]}"]
            for version in ("http1", "http2"):
                entry = _at(results, version, count, transport) or {}
                row += [
                    fmt(entry.get("first_event_p50_ms")),
                    fmt(entry.get("last_first_event_ms"))
                    if entry.get("last_first_event_ms") is not None
                    else f"{fmt(entry.get('started'))} of {fmt(count)} started",
                    fmt(entry.get("connections")),
                ]
            rows.append(row)
    header = ["Streams from one page"] + [
        f"{_VERSIONS[v]}: {what}"
        for v in ("http1", "http2")
        for what in ("first event p50 (ms)", "last stream's first event (ms)", "connections")
    ]
    return table(header, rows)


def http2_section(results: dict[str, Any]) -> list[str]:
    heading = "## HTTP/2 in front: many streams from one page"
    data = results.get("http2")
    rendered = http2_table(results)
    if not data or rendered is None:
        reason = f" ({data['reason']})" if data and data.get("reason") else ""
        return [f"{heading}\n\n_not run_{reason}"]
    protocols = {v: get(data, "versions", v, "protocol") for v in ("http1", "http2")}
    intro = (
        "Debian's nginx with TLS (a throw-away self-signed certificate, trusted by key in "
        "Chromium) on two ports, one HTTP/1.1 and one HTTP/2 "
        f"(`http2_max_concurrent_streams {fmt(data.get('max_concurrent_streams'))}`), both "
        "proxying to one twinstream over HTTP/1.1 with buffering off. One Chromium page per "
        f"measure opens the streams at once, {fmt(data.get('tokens'))} tokens each at "
        f"{fmt(data.get('tokens_per_second'), 0)} tokens/s; times are from the page's clock, "
        "connections are those nginx saw carry the page's requests. The pages' own "
        f"protocol: {protocols['http1']} and {protocols['http2']}."
    )
    return [f"{heading}\n\n{intro}\n\n{rendered}"]


def _largest(results: dict[str, Any]) -> Any:
    counts = get(results, "http2", "counts") or []
    return max(counts) if counts else None


def http2_flip(results: dict[str, Any]) -> str | None:
    """The sentence that says, from the run, where "more than six EventSources" flips."""
    count = _largest(results)
    h2 = _at(results, "http2", count, "sse") if count else None
    if not h2 or h2.get("last_first_event_ms") is None:
        return None
    limit = get(results, "http2", "max_concurrent_streams")
    return (
        f"It flips with HTTP/2 in front of the server (measured: behind nginx speaking "
        f"HTTP/2, {fmt(count)} `EventSource`s all had their first event within "
        f"{fmt(h2['last_first_event_ms'], 0)} ms over {fmt(h2['connections'])} connection(s)) "
        f"up to the {fmt(limit)} streams one HTTP/2 connection carries, or with at most six "
        "streams per origin, counted across the user's tabs."
    )


def http2_choice(results: dict[str, Any]) -> str | None:
    """The HTTP/2 line of "what to choose"."""
    count = _largest(results)
    if not count:
        return None
    h1, h2 = _at(results, "http1", count, "sse"), _at(results, "http2", count, "sse")
    ws1, ws2 = _at(results, "http1", count, "ws"), _at(results, "http2", count, "ws")
    if not (h1 and h2 and ws2):
        return None
    h1_last, h2_last = h1.get("last_first_event_ms"), h2.get("last_first_event_ms")
    ws_last = ws2.get("last_first_event_ms")
    if h2_last is None or h1_last is None:
        return None
    limit = get(results, "http2", "max_concurrent_streams")
    lead = (
        "**Many streams from one page, behind HTTP/2: SSE is as good as WebSocket.**"
        if ws_last is not None and h2_last <= max(2 * ws_last, ws_last + 100)
        else "**Many streams from one page: WebSocket, even behind HTTP/2.**"
    )
    return (
        f"{lead} {fmt(count)} `EventSource`s from one page: over HTTP/1.1 the last one's "
        f"first event came after {fmt(h1_last, 0)} ms on {fmt(h1['connections'])} "
        f"connections; with nginx speaking HTTP/2 in front, after {fmt(h2_last, 0)} ms on "
        f"{fmt(h2['connections'])}; {fmt(count)} streams on one WebSocket: "
        f"{fmt(ws_last, 0)} ms on {fmt(ws2['connections'])} connection of its own (a WebSocket "
        f"never rides inside HTTP/2; HTTP/1.1 origin: {fmt(get(ws1, 'last_first_event_ms'), 0)}"
        f" ms). It flips past {fmt(limit)} concurrent streams per origin (one HTTP/2 "
        "connection's limit: the next streams queue as on HTTP/1.1), and without HTTP/2 "
        "end to end to the browser (a proxy or CDN in between that speaks HTTP/1.1 to it)."
    )
