"""Scale-out: what keeping streams in Redis costs, and whether a second process splits the work.

For the sweep's largest level (1,000 streams at the model's pace in the full
preset), per transport, three fresh servers in turn:

* ``memory``: one process, the in-memory store (the baseline);
* ``redis, 1 process``: ``--store redis://...``;
* ``redis, 2 processes``: the same with ``--processes 2`` on one port.

Each reports delivered events/s and server CPU per 1,000 delivered events --
all twinstream processes summed -- and, separately, the CPU that
``redis-server`` itself used. Redis is Debian's ``redis-server``, started on a
free loopback port without persistence. The targets (issue 9): the Redis store
at most 1.5x the memory store's server CPU per 1,000 events, and two processes
within 1.2x of one (no coordination tax). The machine's core count is recorded:
with two processes and the load generator on two cores, everything competes.

Run alone: ``python -m benchmarks scaleout [--quick]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from .clients import Endpoint, live_window, one_completion, prompts_with_tokens, run_with_deadline
from .cluster import RedisProcess, redis_version, store_server_command, worker_pids
from .config import SuiteConfig
from .loadgen import LoadGenerator
from .servers import ResourceSampler, ServerProcess
from .stats import summarize
from .throughput import sweep_load

__all__ = ["run_scaleout", "measure_variant", "ratios", "VARIANTS"]

#: (label, store, processes)
VARIANTS: tuple[tuple[str, str, int], ...] = (
    ("memory", "memory", 1),
    ("redis, 1 process", "redis", 1),
    ("redis, 2 processes", "redis", 2),
)


def measure_variant(
    config: SuiteConfig,
    load: LoadGenerator,
    transport: str,
    streams: int,
    store: str,
    processes: int,
    redis_server: RedisProcess | None,
) -> dict[str, Any]:
    """One fresh server (``processes`` workers) under ``streams`` concurrent streams."""
    if redis_server is not None:
        redis_server.flush()
    prompts = prompts_with_tokens(streams, config.sweep_max_tokens, f"scale-{streams}")
    url = redis_server.url if (store == "redis" and redis_server is not None) else "memory"
    handle, name = tempfile.mkstemp(prefix="twinstream-scaleout-", suffix=".log")
    os.close(handle)
    log_path = Path(name)
    with ServerProcess(store_server_command(config, url, processes), stderr=log_path) as server:
        endpoint = Endpoint(server.url)
        pids = worker_pids(server, processes)
        for prompt in prompts[: 2 * processes]:  # warm every worker up
            run_with_deadline(one_completion(endpoint, transport, prompt, 2), 60, "warm-up")
        samplers = [ResourceSampler(pid).start() for pid in pids]
        redis_sampler = ResourceSampler(
            redis_server.process.pid if redis_server and url != "memory" else None
        )
        redis_sampler.start()
        try:
            loaded = load.run(sweep_load(config, endpoint.base_url, transport, prompts, streams))
        finally:
            for sampler in [*samplers, redis_sampler]:
                sampler.stop()
    records = loaded.records
    start, end, all_live = live_window(records)
    window = end - start
    in_window = sum(1 for r in records for t in r.delta_times if start <= t <= end)
    deltas = sum(r.delta_count for r in records)
    server_cpu = sum(s.cpu_seconds_between(loaded.began, loaded.ended) or 0.0 for s in samplers)
    redis_cpu = redis_sampler.cpu_seconds_between(loaded.began, loaded.ended)
    complete = sum(1 for r in records if r.complete and not r.error)
    # what the server logged (warnings and worse), kept only when something failed
    log_lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    log_path.unlink()
    calls = redis_server.calls() if redis_server is not None and url != "memory" else {}
    return {
        "transport": transport,
        "store": store,
        "processes": processes,
        "streams": streams,
        "offered_events_per_s": (
            round(streams * config.tokens_per_second, 1) if config.tokens_per_second else None
        ),
        "delivered_events_per_s": round(in_window / window, 1) if window > 0 else None,
        "window_all_streams_live": all_live,
        "delta_events": deltas,
        "complete": complete,
        "errors": len(loaded.errors),
        "error_examples": loaded.errors[:3],
        "server_log": log_lines[-20:] if loaded.errors else [],
        "server_cpu_ms_per_1k_events": round(1e6 * server_cpu / deltas, 2) if deltas else None,
        "redis_cpu_ms_per_1k_events": (
            round(1e6 * redis_cpu / deltas, 2) if redis_cpu is not None and deltas else None
        ),
        # append calls (one EVALSHA carries every event appended meanwhile, all streams)
        "redis_appends_per_1k_events": (
            round(1000 * calls.get("evalsha", 0) / deltas, 1) if calls and deltas else None
        ),
        # produced (server clock) -> received (client clock): the write-through's cost
        "delivery_delay_ms": summarize([d for r in records for d in r.delivery_delays()], 1000.0),
        "client_cpu_ms_per_1k_events": (
            round(1e6 * loaded.client_cpu_seconds / deltas, 2) if deltas else None
        ),
    }


def ratios(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Redis vs memory, and 2 processes vs 1, of server CPU per 1,000 events."""
    by_key = {(r["store"], r["processes"]): r["server_cpu_ms_per_1k_events"] for r in rows}
    memory, one, two = by_key.get(("memory", 1)), by_key.get(("redis", 1)), by_key.get(("redis", 2))
    return {
        "redis_vs_memory": round(one / memory, 2) if one and memory else None,
        "two_vs_one_process": round(two / one, 2) if one and two else None,
        "targets": {"redis_vs_memory": 1.5, "two_vs_one_process": 1.2},
    }


def run_scaleout(
    config: SuiteConfig,
    transports: Sequence[str] = ("sse", "ws"),
    progress: bool = True,
) -> dict[str, Any]:
    """The scale-out part: every variant for each transport at the sweep's top level."""
    streams = max(config.sweep)
    try:
        redis_server = RedisProcess()
    except RuntimeError as exc:
        return {"skipped": str(exc)}
    results: dict[str, Any] = {
        "streams": streams,
        "cpus": psutil.cpu_count(),
        "redis_server": redis_version(),
        "by_transport": {},
    }
    try:
        with LoadGenerator(config.workers) as load:
            for transport in transports:
                rows = []
                for label, store, processes in VARIANTS:
                    if progress:
                        print(f"   {transport} {label}: {streams} streams", file=sys.stderr)
                    row = measure_variant(
                        config, load, transport, streams, store, processes, redis_server
                    )
                    row["label"] = label
                    rows.append(row)
                results["by_transport"][transport] = {"rows": rows, "ratios": ratios(rows)}
    finally:
        redis_server.stop()
    return results
