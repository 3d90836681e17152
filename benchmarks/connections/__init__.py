"""Connections: server memory per idle open connection, at 10,000 connections.

What it measures, per server and transport, on a fresh server each time:

* **SSE** -- an idle connection is an open ``GET /sse`` response whose stream has
  sent its ``start`` event but not its first token yet (the model's first-token wait
  is set far beyond the test). This is the same definition as the throughput part's
  *memory per open connection*; over SSE a connection cannot exist without a stream.
* **WebSocket** -- an idle connection is an open ``/ws`` socket with no stream
  (handshake done, nothing sent). The throughput part's measure covers a socket with
  a started stream.

Connections are opened in a few steps; after each step the server's RSS is read
several times and the median kept. *Memory per connection* is (median RSS with all
of them open - median RSS before) / connections; the per-step figures show whether
growth is linear. Targets from issue 8: at most 16 KiB (WebSocket) and 20 KiB (SSE).

Holding 10,000 connections needs 10,000 file descriptors in the server and as many
in the clients: the suite raises its soft ``RLIMIT_NOFILE`` to the hard limit (the
server subprocesses and the client worker processes inherit it, and each worker
raises its own again), and opens fewer connections, saying so, when even the hard
limit is too low. Clients run in worker processes, each binding its connections to
its own loopback source address (127.0.0.2, 127.0.0.3, ...), so ephemeral ports
(about 28,000 per source address and destination) never run out.

Run alone: ``python -m benchmarks connections [--quick]``.

Modules: :mod:`.plan` (sizes, targets, file-descriptor limits), :mod:`.holders` (the
client worker processes holding the connections), :mod:`.measure` (the server's RSS
per connection) and :mod:`.report`; raw HTTP goes through :mod:`benchmarks.rawwire`.
"""

from __future__ import annotations

from .measure import ALL_SPECS, idle_connection_memory, run_connections
from .plan import (
    FD_MARGIN,
    PLANS,
    TARGETS_KIB,
    ConnectionsPlan,
    connection_budget,
    plan_for,
    raise_fd_limit,
)
from .report import report_section, summary_rows

__all__ = [
    "ConnectionsPlan",
    "PLANS",
    "TARGETS_KIB",
    "raise_fd_limit",
    "connection_budget",
    "idle_connection_memory",
    "run_connections",
    "summary_rows",
    "report_section",
    "ALL_SPECS",
    "FD_MARGIN",
    "plan_for",
]
