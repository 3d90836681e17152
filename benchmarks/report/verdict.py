""" "What to choose": the report's opening, drawn from one run's numbers.

Each statement names a figure from ``results.json`` and when the answer flips; a
statement whose figures the run does not have is left out rather than guessed.
:func:`busy_banner` names the figures a busy machine tainted.
"""

from __future__ import annotations

from typing import Any

from .capacity import busy_capacity_levels
from .choices import more_choices
from .format import BUSY_PERCENT, fmt, get
from .http2 import http2_flip
from .summary import summary_rows

__all__ = ["choose", "busy_banner", "tainted_figures", "ratio_notes", "BUSY_PERCENT"]


def _lower(sse: Any, ws: Any, margin: float = 1.25) -> str | None:
    """``"SSE"`` or ``"WebSocket"`` when that one's figure is lower by more than ``margin``
    times, ``None`` when they are within it (or missing)."""
    if not isinstance(sse, (int, float)) or not isinstance(ws, (int, float)):
        return None
    if sse * margin < ws:
        return "SSE"
    if ws * margin < sse:
        return "WebSocket"
    return None


def _slowest_profile(results: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``3g`` (a phone's link, where the handshake's round trip is plain to see) when it
    ran, else the profile with the longest RTT; both twinstream transports measured."""
    profiles = get(results, "network", "profiles") or {}
    best: tuple[str, dict[str, Any]] | None = None
    for name, profile in profiles.items():
        variants = profile.get("variants", {})
        if not all(
            get(variants, v, "cold", "time_to_start_ms", "p50") is not None
            for v in ("twinstream sse", "twinstream ws")
        ):
            continue
        if name == "3g":
            return (name, profile)
        if best is None or profile.get("rtt_ms", 0) > best[1].get("rtt_ms", 0):
            best = (name, profile)
    return best


def _cold_start(results: dict[str, Any]) -> str | None:
    found = _slowest_profile(results)
    if found is None or not found[1].get("rtt_ms"):
        return None
    name, profile = found
    variants = profile["variants"]
    sse = get(variants, "twinstream sse", "cold", "time_to_start_ms", "p50")
    ws = get(variants, "twinstream ws", "cold", "time_to_start_ms", "p50")
    sse_ttft = get(variants, "twinstream sse", "cold", "ttft_ms", "p50")
    ws_ttft = get(variants, "twinstream ws", "cold", "ttft_ms", "p50")
    rtt = profile["rtt_ms"]
    warm_sse = get(results, "latency", "twinstream", "transports", "sse", "single", "warm")
    warm_ws = get(results, "latency", "twinstream", "transports", "ws", "single", "warm")
    flip = (
        "It flips once the socket is open: a stream started on an open WebSocket needs one "
        "round trip (`start` up, events down), as SSE does"
    )
    if warm_sse and warm_ws:
        flip += (
            f" (on loopback, warm: {fmt(get(warm_ws, 'time_to_start_ms', 'p50'))} ms "
            f"WebSocket vs {fmt(get(warm_sse, 'time_to_start_ms', 'p50'))} ms SSE to the "
            "`start` event)"
        )
    faster = "SSE" if ws > sse else "WebSocket"
    return (
        f"**Streams that start on a new connection over a slow link: {faster}.** On `{name}` "
        f"({fmt(rtt, 0)} ms RTT) a new SSE stream's first event arrived after "
        f"{fmt(sse, 0)} ms, a new WebSocket's after {fmt(ws, 0)} ms (p50; first token "
        f"{fmt(sse_ttft, 0)} vs {fmt(ws_ttft, 0)} ms): the upgrade costs "
        f"{fmt(ws - sse, 0)} ms, about {fmt((ws - sse) / rtt, 1)} round trips. {flip}."
    )


def _capped_link(results: dict[str, Any]) -> str | None:
    profiles = get(results, "network", "profiles") or {}
    capped = [
        (name, p)
        for name, p in profiles.items()
        if p.get("shaped") and p.get("down_bps") and p.get("variants")
    ]
    if not capped:
        unshaped = [n for n, p in profiles.items() if p.get("down_bps") and not p.get("shaped")]
        if unshaped:
            reason = get(results, "network", "shaping")
            return (
                f"**Bytes on a capped link: not measured in this run** ({reason}); the "
                "proxy-counted bytes per token below still hold."
            )
        return None
    name, profile = min(capped, key=lambda item: item[1]["down_bps"])
    rows = []
    cpu = []
    kept: list[str] = []
    failed: list[str] = []
    for label, data in profile["variants"].items():
        if not label.startswith("twinstream"):
            continue
        per_token = get(data, "bytes", "link_down_per_token")
        share = get(data, "keep_up", "delivered_share")
        rows.append(f"{label.removeprefix('twinstream ')} {fmt(per_token, 0)} B/token")
        cpu_cost = get(data, "keep_up", "server_cpu_ms_per_1k_tokens")
        if cpu_cost is not None:
            cpu.append(f"{label.removeprefix('twinstream ')} {fmt(cpu_cost, 0)} ms")
        (kept if get(data, "keep_up", "keeps_up") else failed).append(
            f"{label.removeprefix('twinstream ')} ({fmt(100 * share, 0) if share else '—'} %)"
        )
    streams = profile.get("shared_streams")
    rate = profile["down_bps"] / 1000
    compressed_only = all("+" in k for k in kept) and any("+" not in f for f in failed)
    lead = (
        "**A capped link: compress.**"
        if kept and compressed_only
        else "**A capped link: every variant kept up here.**"
        if not failed
        else "**A capped link: the leanest framing keeps up.**"
    )
    sentence = (
        f"{lead} On `{name}` ({fmt(rate, 0)} kbit/s) with {streams} "
        f"streams of {fmt(get(results, 'network', 'tokens_per_second'), 0)} tokens/s "
        f"sharing it, the link carried {', '.join(rows)} (TCP/IP headers included). "
    )
    if cpu:
        sentence += f"Server CPU per 1,000 tokens meanwhile: {', '.join(cpu)}. "
    if kept:
        sentence += f"Kept up: {', '.join(kept)}. "
    if failed:
        sentence += f"Fell behind: {', '.join(failed)} (share of the pace delivered). "
    gzip = "twinstream sse+gzip" in profile["variants"]
    if not gzip:
        sentence += "SSE with gzip was not available from this server. "
    sentence += (
        "It flips on an uncapped link, where a token's 100–200 bytes cost nothing a reader notices."
    )
    return sentence


def _browser_reconnect(results: dict[str, Any]) -> str | None:
    rec = get(results, "browser", "reconnect")
    if not rec:
        return None
    sse = get(rec, "sse", "cut_to_next_event_ms", "p50")
    ws = get(rec, "ws", "cut_to_next_event_ms", "p50")
    if sse is None or ws is None:
        return None
    retry = get(results, "browser", "retry_ms")
    lost = sum(get(rec, t, "lost") or 0 for t in ("sse", "ws"))
    duplicated = sum(get(rec, t, "duplicated") or 0 for t in ("sse", "ws"))
    cuts = sum(get(rec, t, "cuts") or 0 for t in ("sse", "ws"))
    return (
        f"**Recovery you do not write: SSE.** In Chromium, after the server cut a stream, "
        f"`EventSource` reconnected by itself and the next token showed {fmt(sse, 0)} ms "
        f"after the cut (it waits the server's `retry: {retry}`); the demo's WebSocket code "
        f"took {fmt(ws, 0)} ms (its own 250 ms back-off, then `resume`); {cuts} cuts, "
        f"{lost} events lost, {duplicated} duplicated. It flips when a second of silence "
        "matters more than the code: lower `retry` (`--retry-ms`) or use WebSocket with "
        "your own reconnect."
    )


def _connection_limit(results: dict[str, Any]) -> str | None:
    limit = get(results, "browser", "limit")
    if not limit:
        return None
    waited = get(limit, "sse", "seventh_waited_ms")
    seventh_sse = get(limit, "sse", "seventh_start_ms")
    seventh_ws = get(limit, "ws", "seventh_start_ms")
    if waited is None or seventh_ws is None:
        return None
    lead = (
        "**More than six streams at once in one browser: WebSocket.**"
        if waited > 100
        else "**Seven streams at once in one browser: no difference seen here.**"
    )
    return (
        f"{lead} Seven `EventSource`s "
        f"from one page: the seventh's first event came after {fmt(seventh_sse, 0)} ms, "
        f"{fmt(waited, 0)} ms after the sixth's, because HTTP/1.1 allows six connections per "
        f"origin and it waited for a stream to end; seven streams on one WebSocket all "
        f"started within {fmt(seventh_ws, 0)} ms. "
        + (
            http2_flip(results)  # measured, when the run had nginx with HTTP/2 in front
            or "It flips with HTTP/2 in front of the server (streams share one connection) "
            "or with at most six streams per origin, counted across the user's tabs."
        )
    )


def _cpu(results: dict[str, Any]) -> str | None:
    levels_sse = get(results, "throughput", "twinstream", "sweep", "sse")
    levels_ws = get(results, "throughput", "twinstream", "sweep", "ws")
    browser = get(results, "browser", "cpu")
    parts = []
    cheaper: list[tuple[str | None, str]] = []  # (the cheaper transport or None, where)
    if levels_sse and levels_ws:
        top_sse, top_ws = levels_sse[-1], levels_ws[-1]
        cheaper.append(
            (
                _lower(
                    top_sse.get("server_cpu_ms_per_1k_events"),
                    top_ws.get("server_cpu_ms_per_1k_events"),
                ),
                "on the server",
            )
        )
        parts.append(
            f"the server spent {fmt(top_sse.get('server_cpu_ms_per_1k_events'))} ms of CPU per "
            f"1,000 tokens over SSE and {fmt(top_ws.get('server_cpu_ms_per_1k_events'))} ms "
            f"over WebSocket at {fmt(top_sse.get('streams'))} streams"
        )
        peer = get(results, "throughput", "websockets", "sweep", "ws")
        if peer:
            parts[-1] += (
                f" (the `websockets` reference server: "
                f"{fmt(peer[-1].get('server_cpu_ms_per_1k_events'))} ms)"
            )
    if browser and get(browser, "sse", "cpu_ms_per_1k_events") is not None:
        cheaper.append(
            (
                _lower(
                    get(browser, "sse", "cpu_ms_per_1k_events"),
                    get(browser, "ws", "cpu_ms_per_1k_events"),
                ),
                "in the browser",
            )
        )
        parts.append(
            f"Chromium spent {fmt(get(browser, 'sse', 'cpu_ms_per_1k_events'), 0)} ms per "
            f"1,000 events through `EventSource` and "
            f"{fmt(get(browser, 'ws', 'cpu_ms_per_1k_events'), 0)} ms through a WebSocket"
        )
    if not parts:
        return None
    verdicts = [
        f"{winner} cheaper {side}" if winner else f"within 25 % {side}" for winner, side in cheaper
    ]
    lead = f"**CPU per event: {'; '.join(verdicts)}.**"
    text = "; ".join(parts)
    return (
        f"{lead} {text[0].upper()}{text[1:]}. It weighs only at thousands of events per "
        "second per core; a model's own pace is tens per stream."
    )


def _memory(results: dict[str, Any]) -> str | None:
    levels_sse = get(results, "throughput", "twinstream", "sweep", "sse")
    levels_ws = get(results, "throughput", "twinstream", "sweep", "ws")
    if not levels_sse or not levels_ws:
        return None
    top_sse, top_ws = levels_sse[-1], levels_ws[-1]
    sse, ws = top_sse.get("memory_per_stream_kib"), top_ws.get("memory_per_stream_kib")
    if sse is None or ws is None:
        return None
    leaner = _lower(sse, ws)
    lead = (
        f"**Memory per stream: {leaner} is leaner.**"
        if leaner
        else "**Memory per stream: within 25 % either way.**"
    )
    return (
        f"{lead} At {fmt(top_sse.get('streams'))} "
        f"streams: {fmt(sse)} KiB (SSE) vs {fmt(ws)} KiB (WebSocket) per live stream "
        "(its connection and its resumable log; permessage-deflate adds a compressor "
        "per socket)."
    )


def _churn(results: dict[str, Any]) -> str | None:
    churn = get(results, "churn", "transports")
    if not churn or "sse" not in churn or "ws" not in churn:
        return None
    sse, ws = churn["sse"], churn["ws"]
    machine = get(results, "churn", "machine_cpu_percent")
    busy = (
        f"; the machine was {fmt(machine, 0)} % busy, so the tail is partly waiting for a CPU"
        if machine is not None and machine >= BUSY_PERCENT
        else ""
    )
    exact = all(d["delivery_percent"] == 100 and d["duplicated"] == 0 for d in (sse, ws))
    lead = (
        "**Exact resume holds under churn, on both.**"
        if exact
        else "**Under churn, events were lost or repeated: see the churn section.**"
    )
    return (
        f"{lead} {fmt(sse['cuts'] + ws['cuts'])} server "
        f"cuts over {fmt(get(results, 'churn', 'seconds'), 0)} s of "
        f"{get(results, 'churn', 'clients_per_transport')} clients per transport: "
        f"delivered {fmt(sse['delivery_percent'], 2)} % (SSE) and "
        f"{fmt(ws['delivery_percent'], 2)} % (WebSocket), duplicates {sse['duplicated']} and "
        f"{ws['duplicated']}, backlog replayed within {fmt(get(sse, 'replay_delay_ms', 'p99'))} "
        f"/ {fmt(get(ws, 'replay_delay_ms', 'p99'))} ms (p99{busy}). Exact resume is the "
        "server's log's doing, on either transport."
    )


def choose(results: dict[str, Any]) -> list[str]:
    """The "What to choose" statements this run's figures support, most decisive first."""
    statements = [
        _cold_start(results),
        _capped_link(results),
        _connection_limit(results),
        _browser_reconnect(results),
        _cpu(results),
        _memory(results),
        _churn(results),
        *more_choices(results),  # issue 25's: protocols, node, capacity, loop, HTTP/2, turns
    ]
    return [s for s in statements if s]


def tainted_figures(results: dict[str, Any]) -> list[tuple[str, float]]:
    """``(figure, machine busy %)`` for every measure taken while the machine was busier
    than :data:`BUSY_PERCENT` (server, clients and other work competing for the cores)."""
    tainted: list[tuple[str, float]] = []
    for server, data in (results.get("latency") or {}).items():
        for transport, measures in (data.get("transports") or {}).items():
            busy = get(measures, "concurrent", "machine_cpu_percent")
            if busy is not None and busy >= BUSY_PERCENT:
                streams = get(measures, "concurrent", "streams")
                tainted.append((f"latency at {_streams(streams)} — {server} {transport}", busy))
    for server, data in (results.get("throughput") or {}).items():
        for transport, levels in (data.get("sweep") or {}).items():
            for level in levels:
                busy = level.get("machine_cpu_percent")
                if busy is not None and busy >= BUSY_PERCENT:
                    tainted.append(
                        (
                            f"throughput at {_streams(level['streams'])} — {server} {transport}",
                            busy,
                        )
                    )
    busy = get(results, "churn", "machine_cpu_percent")
    if busy is not None and busy >= BUSY_PERCENT:
        tainted.append(("churn (replay delay)", busy))
    tainted += busy_capacity_levels(results)
    return tainted


def _streams(count: Any) -> str:
    return f"{fmt(count)} stream" + ("" if count == 1 else "s")


def _grouped(tainted: list[tuple[str, float]]) -> str:
    """``latency at 100 streams (4 measures, 99–100 %); ...``: one entry per scope."""
    groups: dict[str, list[float]] = {}
    for name, busy in tainted:
        scope = name.split(" — ")[0]
        groups.setdefault(scope, []).append(busy)
    entries = []
    for scope, values in groups.items():
        low, high = min(values), max(values)
        span = f"{high:.0f} %" if round(low) == round(high) else f"{low:.0f}–{high:.0f} %"
        count = f"{len(values)} measures, " if len(values) > 1 else ""
        entries.append(f"{scope} ({count}{span})")
    return "; ".join(entries)


def busy_banner(results: dict[str, Any]) -> str | None:
    """A warning naming the tainted figures, or ``None`` when the machine had room."""
    tainted = tainted_figures(results)
    meta = results.get("meta", {})
    load = meta.get("load_average") or []
    cpus = meta.get("cpus") or 0
    loaded_at_start = bool(load and cpus and load[0] >= cpus)
    if not tainted and not loaded_at_start:
        return None
    lines = ["> **The machine was busy during this run.**"]
    if loaded_at_start:
        lines.append(
            f"> Load average {load[0]} on {cpus} cores when it started: other work was running."
        )
    if tainted:
        lines.append(
            f"> Measured while every core was at least {BUSY_PERCENT:.0f} % busy, so these "
            "figures include waiting for a CPU, not only the server's own cost: "
            + _grouped(tainted)
            + ". Delivered events/s, delays and CPU per event in them are pessimistic; "
            "ratios between transports measured side by side are less affected."
        )
    return "\n".join(lines)


def ratio_notes(results: dict[str, Any], limit: int = 4) -> str | None:
    """A sentence on the headline table's largest WS / SSE ratios (2x or more either way):
    whether each is a difference a reader would notice, too small to notice, or taken
    while the machine was busy."""
    # "latency at 100 streams, ..." -> "100 streams": the rows measured then
    busy_levels = {name.split(" — ")[0].split(" at ")[-1] for name, _ in tainted_figures(results)}
    meta = results.get("meta", {})
    load, cpus = meta.get("load_average") or [0], meta.get("cpus") or 0
    loaded = bool(cpus and load[0] >= cpus)
    found = []
    for label, sse, ws, *_peers in summary_rows(results):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (sse, ws)):
            continue
        if sse <= 0 or ws <= 0 or 0.5 < ws / sse < 2:
            continue
        if "(ms" in label and max(sse, ws) < 20:
            why = "both under 20 ms: too small for a reader to notice"
        elif any(level in label for level in busy_levels):
            why = "measured while every core was busy: partly other work's"
        elif loaded and not label.startswith("Chromium"):
            why = "the machine was loaded by other work during the run: check it on a quiet one"
        else:
            why = "a real difference; the detail tables show where it comes from"
        ratio = ws / sse
        found.append((max(ratio, 1 / ratio), f"{label}: {ratio:.2f}× ({why})"))
    if not found:
        return None
    found.sort(reverse=True)
    return (
        "Largest WebSocket / SSE ratios in the table: "
        + "; ".join(text for _, text in found[:limit])
        + "."
    )
