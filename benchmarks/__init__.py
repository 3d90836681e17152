"""twinstream's benchmark suite: SSE vs WebSocket, measured side by side.

``python -m benchmarks`` runs every part against servers it starts itself and
writes ``results.json``, ``report.md`` and PNG plots to ``--out``:

* :mod:`benchmarks.latency` -- time to first token (cold and warm), inter-token
  gaps and per-event delivery delay, at one stream and at many;
* :mod:`benchmarks.throughput` -- a concurrency sweep (delivered vs offered
  events/s, server CPU and memory), one unthrottled stream, wire bytes per token;
* :mod:`benchmarks.reconnect` -- streams cut mid-way from either side, then
  resumed: recovery time, events lost and duplicated;
* :mod:`benchmarks.peers` -- the latency and throughput workloads against two
  reference servers (sse-starlette on uvicorn, the ``websockets`` library);
* :mod:`benchmarks.connections` -- server memory per idle open connection at
  10,000 connections (run by ``throughput`` and ``peers``, or alone);
* :mod:`benchmarks.stuck` -- a reader per transport that never reads, next to
  normal clients: time until it is dropped, extra memory, resume, others' delay
  (run by ``throughput``, or alone).

``python -m benchmarks --help`` explains the options.
"""
