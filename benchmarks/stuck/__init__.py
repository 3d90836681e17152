"""Stuck readers: a client that never reads, next to normal clients.

Per transport, two runs on fresh servers, each with ``N`` normal clients (50 in the
full preset) streaming completions back to back on their own connections:

* **baseline** -- the normal clients alone;
* **stuck** -- the same, plus one *stuck reader* started a second in. It sets a tiny
  ``SO_RCVBUF`` and never reads a byte after its handshake:

  - WebSocket: a hand-written client on a raw socket. It floods ``start`` messages
    (50 a second; the server may start up to ``--max-streams-per-socket`` streams for
    it) and every half second sends an unsolicited pong and a ping -- what a client
    that answers pings sends, since one that never reads cannot see the server's
    pings to answer them. Pongs must not keep a non-reader alive.
  - SSE: one stream, and on one connection many pipelined ``GET /sse`` requests that
    resume it from the start. A loopback socket's kernel buffers take about 2 MB even
    at the smallest receive buffer, more than one synthetic stream has (at most ~33 KB),
    so a stuck reader of one plain response would never make the server wait; the
    pipelined replays do, as a reader of a long answer or backlog would.

  The server is started with ``--max-pending-bytes`` (1 MiB, the default) and
  ``--write-timeout`` (a few seconds). The stuck reader counts as *disconnected*
  when the server process no longer holds its socket (seen in the server's own
  connection table, so no read is needed). Then the reader drains what reached its
  socket, notes how the server ended it (WebSocket close code, e.g. 4008; SSE: the
  response's end) and resumes every stream it learned about from its last event:
  *events lost* counts seqs it never got, and the texts must equal the model's.

Measured: time from the stuck reader's start to its disconnection; the server's
extra memory in the stuck run, beyond the streams the stuck reader started (peak
RSS growth minus the baseline's, minus its streams at the baseline's cost per
stream); the normal clients' p99 delivery delay against the baseline run's. Targets
from issue 8: disconnected within the deadline, at most 2 MiB extra, 0 events lost,
p99 within 2x.

A server without ``--max-pending-bytes`` / ``--write-timeout`` (it exits with a
usage error) is reported as *not supported by this server*; the stuck runs still
happen without the flags, for as long as the window, to show what that server does.

Run alone: ``python -m benchmarks stuck [--quick]``.

Modules: :mod:`.plan` (knobs, targets), :mod:`.probes` (the server's connection table
and kernel queue), :mod:`.readers` (the stuck readers), :mod:`.outcome` (what happened
to one), :mod:`.normal_clients`, :mod:`.scenario` (the runs and their comparison) and
:mod:`.report`; the raw wire codec is :mod:`benchmarks.rawwire`.
"""

from __future__ import annotations

from ..rawwire import HTTPResponse, WSFrames, parse_http_responses, parse_ws_frames, ws_frame
from .outcome import StuckOutcome
from .plan import (
    MIB,
    PLANS,
    STUCK_MAX_TOKENS,
    TARGET_DELAY_RATIO,
    TARGET_EXTRA_MIB,
    StuckPlan,
    plan_for,
)
from .readers import stuck_sse, stuck_websocket
from .report import report_section, summary_rows
from .scenario import run_stuck, start_server, stuck_scenario

__all__ = [
    "StuckPlan",
    "PLANS",
    "parse_ws_frames",
    "parse_http_responses",
    "ws_frame",
    "stuck_scenario",
    "run_stuck",
    "summary_rows",
    "report_section",
    "HTTPResponse",
    "WSFrames",
    "MIB",
    "STUCK_MAX_TOKENS",
    "TARGET_DELAY_RATIO",
    "TARGET_EXTRA_MIB",
    "StuckOutcome",
    "plan_for",
    "start_server",
    "stuck_sse",
    "stuck_websocket",
]
