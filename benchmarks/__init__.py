"""twinstream's benchmark suite: SSE vs WebSocket, measured side by side.

``python -m benchmarks`` runs every part against servers it starts itself and
writes ``results.json``, ``report.md`` and PNG plots to ``--out``:

* :mod:`benchmarks.latency` -- time to first token (cold and warm), inter-token
  gaps and per-event delivery delay, at one stream and at many;
* :mod:`benchmarks.throughput` -- a concurrency sweep (delivered vs offered
  events/s, server CPU and memory), one unthrottled stream, wire bytes per token;
* :mod:`benchmarks.reconnect` -- streams cut mid-way from either side, then
  resumed: recovery time, events lost and duplicated;
* :mod:`benchmarks.peers` -- the latency and throughput workloads against the
  reference servers (sse-starlette on uvicorn, the ``websockets`` library, and a
  Node.js server in ``benchmarks/peers/node``: ``node:http`` and ``ws``);
* :mod:`benchmarks.connections` -- server memory per idle open connection at
  10,000 connections (run by ``throughput`` and ``peers``, or alone);
* :mod:`benchmarks.stuck` -- a reader per transport that never reads, next to
  normal clients: time until it is dropped, extra memory, resume, others' delay
  (run by ``throughput``, or alone);
* :mod:`benchmarks.protocols` -- every protocol view of :mod:`benchmarks.views` (one
  registry entry each): bytes per token, server CPU per token, first token;
* :mod:`benchmarks.capacity` -- streams per core at 30 tokens/s, every server, each
  Python one on each event loop (``--loops``), twinstream on Redis too (``--store``);
* :mod:`benchmarks.http2` -- nginx with TLS, HTTP/1.1 against HTTP/2, in Chromium;
* :mod:`benchmarks.conversation` -- 20 turns that each wait for the answer, per view,
  through the link profiles.

``python -m benchmarks --help`` explains the options.
"""
