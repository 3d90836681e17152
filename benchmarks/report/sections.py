"""The report's sections for the network, browser and churn parts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .format import DASH, fmt, get, table

__all__ = [
    "variants_of",
    "network_summary",
    "network_details",
    "browser_summary",
    "browser_details",
    "churn_details",
    "browser_rows",
    "network_section",
    "browser_section",
    "churn_section",
]

_KEEP = {True: "yes", False: "no", None: DASH}


def variants_of(profile: dict[str, Any]) -> dict[str, Any]:
    """A network profile's measured variants, by label."""
    return profile.get("variants") or {}


def network_summary(results: dict[str, Any]) -> str | None:
    """One row per profile: cold start per transport, delay tails, who keeps up."""
    network = results.get("network")
    if not network or not network.get("profiles"):
        return None
    labels = ("sse", "sse+gzip", "ws", "ws+deflate")
    header = [
        "Profile",
        "Link",
        "Start event, new conn. SSE / WS (ms, p50)",
        "WS − SSE (ms)",
        "Delivery delay p99 SSE / WS (ms)",
        "Streams sharing the link",
        "Keep up: " + " / ".join(labels),
        "Link bytes per token: " + " / ".join(labels),
    ]
    rows = []
    for name, profile in network["profiles"].items():
        variants = variants_of(profile)

        def value(label: str, *path: str) -> Any:
            return get(variants, f"twinstream {label}", *path)

        sse_start = value("sse", "cold", "time_to_start_ms", "p50")
        ws_start = value("ws", "cold", "time_to_start_ms", "p50")
        gap = ws_start - sse_start if sse_start is not None and ws_start is not None else None
        keep = [
            _KEEP[value(label, "keep_up", "keeps_up")] if label in _labels(variants) else "n/a"
            for label in labels
        ]
        per_token = [
            fmt(value(label, "bytes", "link_down_per_token") or None, 0)
            if label in _labels(variants)
            else "n/a"
            for label in labels
        ]
        rows.append(
            [
                f"`{name}`",
                profile.get("description", "") + ("" if profile.get("shaped") else " (no cap)"),
                f"{fmt(sse_start, 0)} / {fmt(ws_start, 0)}",
                fmt(gap, 0),
                f"{fmt(value('sse', 'cold', 'delivery_delay_ms', 'p99'), 0)} / "
                f"{fmt(value('ws', 'cold', 'delivery_delay_ms', 'p99'), 0)}",
                fmt(profile.get("shared_streams")),
                " / ".join(keep),
                " / ".join(per_token),
            ]
        )
    return table(header, rows)


def _labels(variants: dict[str, Any]) -> set[str]:
    return {k.removeprefix("twinstream ") for k in variants if k.startswith("twinstream ")}


def network_details(results: dict[str, Any]) -> str:
    network = results.get("network")
    if not network:
        return "_not run_"
    lines = [
        f"- Bandwidth: {network.get('shaping')}.",
        f"- {network.get('emulation')}",
        "- *Start event* and *TTFT* are from a new connection per completion (cold), one at "
        "a time; *keep-up* runs the profile's number of streams at once at the model's pace "
        "through the same link: *share* is the pace delivered in the streams' second half "
        "(100 % = keeps up), *delay* is what the tokens waited then. *Proxy bytes* are the "
        "HTTP/WebSocket bytes server → client; *link bytes* are what the capped link carried "
        "(`tc` counters: TCP/IP and Ethernet headers and retransmissions included). *Server "
        "CPU* is the server process's CPU time during the keep-up run per 1,000 tokens "
        "(one variant runs at a time): what compression costs.",
    ]
    for name, profile in network.get("profiles", {}).items():
        for note in profile.get("notes", []):
            lines.append(f"- `{name}`: {note}.")
    rows = []
    for name, profile in network.get("profiles", {}).items():
        for label, data in variants_of(profile).items():
            cold, keep, wire = data["cold"], data["keep_up"], data["bytes"]
            share = keep.get("delivered_share")
            rows.append(
                [
                    f"`{name}`",
                    label,
                    fmt(get(cold, "time_to_start_ms", "n")),
                    fmt(get(cold, "time_to_start_ms", "p50"), 0),
                    fmt(get(cold, "ttft_ms", "p50"), 0),
                    fmt(get(cold, "delivery_delay_ms", "p50"), 0),
                    fmt(get(cold, "delivery_delay_ms", "p99"), 0),
                    fmt(keep.get("streams")),
                    f"{fmt(100 * share, 0)} %" if share is not None else DASH,
                    _KEEP[keep.get("keeps_up")],
                    fmt(get(keep, "delivery_delay_ms", "p50"), 0),
                    fmt(get(keep, "delivery_delay_ms", "p99"), 0),
                    fmt(keep.get("stalls")),
                    fmt(keep.get("server_cpu_ms_per_1k_tokens")),
                    fmt(wire.get("proxy_down_per_token")),
                    fmt(wire.get("link_down_per_token")),
                    fmt(wire.get("link_drops")),
                    ", ".join(data.get("compression_used") or []) or DASH,
                    f"{data['errors']}",
                ]
            )
    header = [
        "Profile",
        "Variant",
        "n",
        "Start event p50 ms",
        "TTFT p50 ms",
        "Delay p50 ms",
        "Delay p99 ms",
        "Keep-up streams",
        "Share of pace",
        "Keeps up",
        "Keep-up delay p50 ms",
        "p99 ms",
        "Stalls",
        "Server CPU ms/1k tokens",
        "Proxy bytes/token",
        "Link bytes/token",
        "Link drops",
        "Compression",
        "Errors",
    ]
    return "\n".join(lines) + "\n\n" + (table(header, rows) if rows else "_no profile ran_")


def browser_summary(results: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(label, SSE, WebSocket)`` rows for the headline table."""
    browser = results.get("browser") or {}
    if not browser.get("available"):
        return []
    rows: list[tuple[str, Any, Any]] = []
    if browser.get("reconnect"):
        rows.append(
            (
                f"Chromium: server cut → next token (ms, p50; SSE waits `retry: "
                f"{browser.get('retry_ms')}`)",
                get(browser, "reconnect", "sse", "cut_to_next_event_ms", "p50"),
                get(browser, "reconnect", "ws", "cut_to_next_event_ms", "p50"),
            )
        )
    if browser.get("limit"):
        rows.append(
            (
                "Chromium: 7 streams from one page, the 7th's first event (ms)",
                get(browser, "limit", "sse", "seventh_start_ms"),
                get(browser, "limit", "ws", "seventh_start_ms"),
            )
        )
    if browser.get("cpu"):
        rows.append(
            (
                "Chromium: browser CPU per 1k events (ms)",
                get(browser, "cpu", "sse", "cpu_ms_per_1k_events"),
                get(browser, "cpu", "ws", "cpu_ms_per_1k_events"),
            )
        )
    return rows


def browser_details(results: dict[str, Any]) -> str:
    browser = results.get("browser")
    if not browser:
        return "_not run_"
    if not browser.get("available"):
        return f"_Not measured: {browser.get('reason')}._"
    out = [
        f"{browser.get('chromium')}, headless, driven by Playwright; the server's SSE "
        f"`retry:` hint is {browser.get('retry_ms')} ms."
    ]
    rec = browser.get("reconnect")
    if rec:
        out.append(
            "**Recovery after a server-side cut** (`POST /debug/drop`, one per stream, a "
            "quarter of the way in): SSE through the browser's own `EventSource` reconnect, "
            "WebSocket through the demo's reconnect code (`server/static/transports.js`)."
        )
        out.append(
            table(
                [
                    "Transport",
                    "Cuts",
                    "Resumed",
                    "Cut → noticed p50 ms",
                    "Cut → next token p50 ms",
                    "max ms",
                    "Lost",
                    "Duplicated",
                    "Text mismatches",
                    "Outcomes",
                ],
                [
                    [
                        t,
                        fmt(d["cuts"]),
                        fmt(d["resumed"]),
                        fmt(get(d, "cut_to_noticed_ms", "p50")),
                        fmt(get(d, "cut_to_next_event_ms", "p50")),
                        fmt(get(d, "cut_to_next_event_ms", "max")),
                        fmt(d["lost"]),
                        fmt(d["duplicated"]),
                        fmt(d["text_mismatches"]),
                        ", ".join(d["outcomes"]),
                    ]
                    for t, d in rec.items()
                ],
            )
        )
    limit = browser.get("limit")
    if limit:
        out.append(
            "**Seven streams at once from one page**: each stream's time to its `start` "
            "event (ms), in the order they were opened."
        )
        out.append(
            table(
                ["Transport", "Start event per stream (ms)", "7th waited after the 6th (ms)",
                 "First stream done (ms)"],
                [
                    [
                        t,
                        ", ".join(fmt(v, 0) for v in d["time_to_start_ms"]),
                        fmt(d["seventh_waited_ms"], 0),
                        fmt(d["first_done_ms"], 0),
                    ]
                    for t, d in limit.items()
                ],
            )
        )  # fmt: skip
    cpu = browser.get("cpu")
    if cpu:
        out.append(
            "**Browser CPU per 1,000 events**: streams received one after another and each "
            "event parsed with `JSON.parse`; every Chromium process counted, the browser's "
            "idle CPU over as long subtracted."
        )
        out.append(
            table(
                ["Transport", "Events", "Events/s", "CPU ms per 1k events", "By process (ms)"],
                [
                    [
                        t,
                        fmt(d["events"]),
                        fmt(d["events_per_s"]),
                        fmt(d["cpu_ms_per_1k_events"]),
                        ", ".join(
                            f"{k} {fmt(v)}"
                            for k, v in d["cpu_ms_per_1k_events_by_process"].items()
                            if v
                        ),
                    ]
                    for t, d in cpu.items()
                ],
            )
        )
    return "\n\n".join(out)


def churn_details(results: dict[str, Any]) -> str:
    churn = results.get("churn")
    if not churn:
        return "_not run_"
    note = (
        f"{churn['clients_per_transport']} clients per transport for "
        f"{fmt(churn['seconds'], 0)} s, each streaming completions of {churn['max_tokens']} "
        f"tokens back to back; every {fmt(churn['interval_s'])} s the server cut "
        f"{fmt(100 * churn['fraction'], 0)} % of the connected clients (`POST /debug/drop`); "
        f"a cut client stayed offline ~{fmt(churn['offline_s'])} s, then resumed. "
        f"Server CPU {fmt(churn.get('server_cpu_percent'))} % of a core, clients "
        f"{fmt(churn.get('client_cpu_percent'))} %, machine "
        f"{fmt(churn.get('machine_cpu_percent'))} % busy. *Replay delay*: resume sent → the "
        "last event produced while away received."
    )

    def rows_of(part: dict[str, Any]) -> list[list[str]]:
        return [
            [
                t,
                fmt(d["streams"]),
                fmt(d["cuts"]),
                fmt(d["connections"]),
                fmt(d["events_expected"]),
                f"{fmt(d['delivery_percent'], 3)} %",
                fmt(d["duplicated"]),
                fmt(d["exact_text"]),
                fmt(d["replays"]),
                fmt(get(d, "replay_delay_ms", "p50"), 2),
                fmt(get(d, "replay_delay_ms", "p99"), 2),
                fmt(d["errors"]),
            ]
            for t, d in part["transports"].items()
        ]

    header = [
        "Transport",
        "Streams",
        "Cuts",
        "Connections",
        "Events",
        "Delivered",
        "Duplicates",
        "Exact text",
        "Replays",
        "Replay p50 ms",
        "Replay p99 ms",
        "Errors",
    ]
    tail = "".join(
        _rolling_restart(churn.get(key) or {}, where, header, rows_of)
        for key, where in (
            ("rolling_restart", "one redis-server (`--store redis://… --processes 2`)"),
            (
                "rolling_restart_cluster",
                "a six-node Redis Cluster, three masters and a replica each "
                "(`--store redis-cluster://… --processes 2`)",
            ),
        )
        if key in churn or key == "rolling_restart"
    )
    return note + "\n\n" + table(header, rows_of(churn)) + tail


def _rolling_restart(
    restart: dict[str, Any],
    where: str,
    header: list[str],
    rows_of: Callable[[dict[str, Any]], list[list[str]]],
) -> str:
    """The churn section's paragraph and table for one rolling restart."""
    if not restart.get("run"):
        return (
            f"\n\n**Rolling restart** of two server processes on {where} under churn: not "
            f"run — {restart.get('reason', '')}."
        )
    when = ", ".join(f"{r['at_s']} s" for r in restart.get("restarts", []))
    return (
        "\n\n**Rolling restart**: the same clients and cuts against two server "
        f"processes on one port sharing {where}; each worker got SIGTERM in turn (at "
        f"{when or '—'}), drained (SSE: `retry:` and end; WebSocket: close 1012) and was "
        "replaced by its parent, while clients reconnected to the other. "
        f"{restart.get('reason', '')}. Server CPU "
        f"{fmt(restart.get('server_cpu_percent'))} % of a core (the parent process "
        "only), machine "
        f"{fmt(restart.get('machine_cpu_percent'))} % busy.\n\n" + table(header, rows_of(restart))
    )


def browser_rows(results: dict[str, Any]) -> list[tuple[str, Any, Any, Any, Any]]:
    """:func:`browser_summary` as headline rows (the reference servers' columns empty)."""
    return [(label, sse, ws, None, None) for label, sse, ws in browser_summary(results)]


def network_section(results: dict[str, Any]) -> list[str]:
    return ["## Network profiles", network_details(results)]


def browser_section(results: dict[str, Any]) -> list[str]:
    return ["## In a real browser", browser_details(results)]


def churn_section(results: dict[str, Any]) -> list[str]:
    return ["## Churn", churn_details(results)]
