"""``report.md``: the sections in their order, the machine and settings, the glossary.

``python -m benchmarks report DIR`` rebuilds the report of an earlier run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .format import fmt
from .plots import plot_all
from .sections import network_summary
from .summary import part_sections, summary_table
from .takeaways import takeaways
from .verdict import busy_banner, choose, ratio_notes

__all__ = ["write_report", "REPORT_LAYOUT", "GLOSSARY"]

#: the detail sections after the plots, in order: ``part`` or ``part.section`` (a part's
#: sections are declared in :mod:`benchmarks.parts`)
REPORT_LAYOUT = (
    "latency",
    "throughput.sweep",
    "throughput.open_connections",
    "connections",
    "stuck",
    "headtohead",
    "capacity",
    "protocols",
    "throughput.unthrottled",
    "throughput.wire",
    "reconnect",
    "network",
    "conversation",
    "browser",
    "http2",
    "churn",
    "scaleout",
)

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


def settings_section(meta: dict[str, Any]) -> str:
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


def write_report(results: dict[str, Any], out: Path) -> Path:
    """Write ``report.md`` (and the plots) into ``out``; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_all(results, out)
    meta = results.get("meta", {})
    banner = busy_banner(results)
    statements = choose(results)
    network = network_summary(results)
    ratio_note = ratio_notes(results)
    sections = [
        "# twinstream benchmark: SSE vs WebSocket",
        *([banner] if banner else []),
        "## What to choose",
        "\n".join(f"- {line}" for line in statements)
        if statements
        else "_This run did not include the parts the verdict is drawn from._",
        *(["### Through link profiles", network] if network else []),
        "One LLM chat completion streamed two ways by the same server (twinstream, Tornado), "
        "with the reference servers a user would otherwise pick (sse-starlette on "
        "uvicorn for SSE, the `websockets` library for WebSocket, and a Node.js server: "
        "`node:http` for SSE, the `ws` package for WebSocket) run in the same session "
        "under the same conditions. Numbers are from one run on a shared, noisy machine: "
        "compare medians and ratios within this report rather than absolute values across "
        "machines.",
        "## Summary",
        summary_table(results),
        "\n".join(
            f"- {line}" for line in takeaways(results) + ([ratio_note] if ratio_note else [])
        ),
        "## Machine and settings",
        settings_section(meta),
        "## What the numbers mean",
        GLOSSARY,
    ]
    if plots:
        sections += ["## Plots"] + [f"![{name}]({name})" for name in plots]
    for section in REPORT_LAYOUT:
        sections += part_sections(section, results)
    path = out / "report.md"
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return path
