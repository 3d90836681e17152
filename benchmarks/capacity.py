"""Capacity: how many concurrent chats at 30 tokens/s one core carries before delivery slows.

For each server and transport (twinstream SSE and WebSocket, ``sse-starlette``,
``websockets``, the Node peer's two; each Python server on every event loop of
``capacity_loops``; twinstream on a Redis store, one process and two, when the run is
given ``--store redis``, or on a six-node Redis Cluster with ``--store redis-cluster``),
streams at the model's pace (30 tokens/s per stream) are
raised until delivery falls behind: the level *holds* while the p99 delivery delay
(model release -> client receipt) stays at or under :data:`P99_LIMIT_MS` and at least
:data:`DELIVERED_PERCENT` of the offered tokens arrive. A coarse search doubles the
streams from ``capacity_start`` until a level fails (or ``capacity_limit`` holds); a fine
search then bisects between the last level that held and the first that failed,
``capacity_fine_steps`` times. Every level runs on a fresh server, with the client load
in worker processes as in the throughput sweep; its streams start within
:data:`RAMP_SHARE` of a stream's length, so the level is a steady load, not a trickle.
A level that fails while every core was busy (``BUSY_PERCENT``: other work on a shared
machine, or the client load) runs once more, the first attempt kept beside the second.

*Streams per core* is the largest level that held divided by the server's processes (a
Python or Node server runs on one core; a Redis or Redis Cluster variant on two). On a
two-core machine the client load competes with the server for the cores: the machine's
busy share is kept beside every level, and the figures compare servers, not machines.

The knee (p99 delay against streams, one line per server) is plotted by
:mod:`benchmarks.report.capacity`.

:func:`run_store_scaling` (run by the ``scaleout`` part) asks what a second process
on one Redis carries with the same search, each process held to a CPU budget.

Run alone: ``python -m benchmarks capacity [--quick] [--store redis|redis-cluster]
[--loops ...]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from .config import SuiteConfig
from .connections.plan import raise_fd_limit
from .cpu_budget import CpuBudget
from .loadgen import LoadGenerator
from .redis_nodes import RedisNodes, start_store
from .report.format import BUSY_PERCENT
from .scaleout import measure_variant
from .servers import NODE, SSE_STARLETTE, TWINSTREAM, WEBSOCKETS, ServerSpec, with_loop
from .targets import label
from .throughput import sweep_level

__all__ = [
    "P99_LIMIT_MS",
    "DELIVERED_PERCENT",
    "Contender",
    "contenders",
    "holds",
    "search",
    "RAMP_SHARE",
    "level_config",
    "run_capacity",
    "run_store_scaling",
    "SCALING_TARGET",
]

#: a level holds while its p99 delivery delay is at most this ...
P99_LIMIT_MS = 100.0
#: ... and at least this share of the offered tokens arrived
DELIVERED_PERCENT = 99.0


@dataclass(frozen=True)
class Contender:
    """A server, a transport, and where it keeps streams."""

    spec: ServerSpec
    transport: str
    store: str = "memory"
    processes: int = 1

    @property
    def name(self) -> str:
        base = label(self.spec, self.transport)
        if self.store == "memory":
            return base
        server, _, transport = base.partition(" ")
        return f"{server} {self.store}×{self.processes} {transport}".strip()


def contenders(
    loops: Sequence[str], store: str | None, transports: Sequence[str] = ("sse", "ws")
) -> list[Contender]:
    """Every server on every loop over each of ``transports`` it speaks (a server that
    speaks none of them: over its own); twinstream on ``store`` with one process and
    with two too when given (``redis``, ``redis-cluster``): what a second process buys."""

    def spoken(spec: ServerSpec) -> list[str]:
        return [t for t in spec.transports if t in transports] or list(spec.transports)

    chosen: list[Contender] = []
    for loop in loops:
        for spec in (TWINSTREAM, SSE_STARLETTE, WEBSOCKETS, NODE):
            if spec.program and loop != loops[0]:
                continue  # the Node peer has one loop
            looped = with_loop(spec, loop) if not spec.program else spec
            chosen += [Contender(looped, transport) for transport in spoken(spec)]
    if store:
        chosen += [
            Contender(TWINSTREAM, t, store, processes)
            for t in spoken(TWINSTREAM)
            for processes in (1, 2)
        ]
    return chosen


def holds(point: dict[str, Any]) -> bool:
    """Whether delivery kept up at this level."""
    p99, delivered = point.get("p99_delay_ms"), point.get("delivered_percent")
    return (
        p99 is not None
        and delivered is not None
        and p99 <= P99_LIMIT_MS
        and delivered >= DELIVERED_PERCENT
    )


def search(
    measure: Callable[[int], dict[str, Any]], start: int, limit: int, fine_steps: int
) -> dict[str, Any]:
    """The coarse-then-fine search: ``measure(streams)`` gives a level's point. Returns
    the points (in the order measured), the largest level that held (0: none did) and
    whether the search stopped at ``limit`` with every level holding."""
    points: list[dict[str, Any]] = []

    def at(streams: int) -> bool:
        point = {"streams": streams, **measure(streams)}
        point["holds"] = holds(point)
        points.append(point)
        return bool(point["holds"])

    held, failed = 0, None
    streams = max(1, start)
    while True:  # coarse: double up while it holds; halve down while the start fails
        if at(streams):
            held = streams
            if failed is not None or streams >= limit:
                break
            streams = min(limit, streams * 2)
        else:
            failed = streams
            if held or streams <= 1 or start >= limit:  # start == limit: one point only
                break
            streams //= 2
    for _ in range(fine_steps):  # fine: bisect the gap
        if failed is None:
            break
        middle = (held + failed) // 2
        if middle in (held, failed):
            break
        if at(middle):
            held = middle
        else:
            failed = middle
    return {"points": points, "capacity": held, "at_limit": failed is None}


#: the streams' starts spread over at most this share of a stream's length, so every
#: stream of a level is live at once for most of the level (a level is a steady load)
RAMP_SHARE = 0.4


def level_config(config: SuiteConfig, streams: int) -> SuiteConfig:
    """``config`` for one level of ``streams``: streams of ``capacity_max_tokens`` tokens,
    their starts spread over at most :data:`RAMP_SHARE` of a stream's length."""
    seconds = config.capacity_max_tokens / max(1.0, config.tokens_per_second)
    ramp = min(config.ramp_per_stream, RAMP_SHARE * seconds / max(1, streams))
    return config.replace(sweep_max_tokens=config.capacity_max_tokens, ramp_per_stream=ramp)


def _memory_level(
    contender: Contender, streams: int, config: SuiteConfig, load: LoadGenerator
) -> dict[str, Any]:
    config = level_config(config, streams)
    level = sweep_level(contender.spec, contender.transport, streams, config, load)
    expected = level.get("expected_delta_events") or 0
    return {
        "p99_delay_ms": level["delivery_delay_ms"]["p99"],
        "p50_delay_ms": level["delivery_delay_ms"]["p50"],
        "delivered_percent": round(100 * level["delta_events"] / expected, 2) if expected else None,
        "server_cpu_percent": level.get("server_cpu_percent"),
        "machine_busy_percent": level.get("machine_cpu_percent"),
        "errors": level.get("errors"),
    }


def _store_level(
    contender: Contender,
    streams: int,
    config: SuiteConfig,
    load: LoadGenerator,
    redis_server: RedisNodes | None,
    budget: CpuBudget | None = None,
) -> dict[str, Any]:
    config = level_config(config, streams)
    row = measure_variant(
        config,
        load,
        contender.transport,
        streams,
        contender.store,
        contender.processes,
        redis_server,
        budget,
    )
    expected = streams * config.sweep_max_tokens  # each prompt has at least that many
    return {
        "p99_delay_ms": row["delivery_delay_ms"]["p99"],
        "p50_delay_ms": row["delivery_delay_ms"]["p50"],
        "delivered_percent": round(100 * row["delta_events"] / expected, 2),
        "server_cpu_percent": None,
        "machine_busy_percent": None,
        "errors": row["errors"],
        "server_cores": row["server_cores"],  # each process's CPU budget (None: none)
    }


def _search_settings(config: SuiteConfig) -> dict[str, Any]:
    """What a capacity search's results say of how it searched."""
    return {
        "p99_limit_ms": P99_LIMIT_MS,
        "delivered_percent_limit": DELIVERED_PERCENT,
        "start": config.capacity_start,
        "limit": config.capacity_limit,
        "fine_steps": config.capacity_fine_steps,
        "max_tokens": config.capacity_max_tokens,
    }


def run_capacity(
    config: SuiteConfig, store: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """The capacity search for every contender; ``store`` adds twinstream with two
    processes on a Redis store: ``redis`` (one redis-server) or ``redis-cluster`` (a
    six-node Redis Cluster, three masters and a replica each)."""
    raise_fd_limit()  # thousands of sockets in the servers and the client workers
    chosen = contenders(config.capacity_loops, store, config.capacity_transports)
    redis_server = start_store(store) if store else None
    results: dict[str, Any] = {
        "tokens_per_second": config.tokens_per_second,
        **_search_settings(config),
        "contenders": {},
    }
    bar = tqdm(total=len(chosen), desc="capacity", unit="server", disable=not progress, leave=False)
    try:
        with LoadGenerator(config.workers) as load, bar:
            # the client workers' first load pays for their lazy imports and first
            # connections: a throw-away one first, so the first server measured does not
            _memory_level(chosen[0], 4, config.replace(capacity_max_tokens=5), load)
            for contender in chosen:
                bar.set_postfix_str(contender.name)

                def once(streams: int, contender: Contender = contender) -> dict[str, Any]:
                    if contender.store == "memory":
                        return _memory_level(contender, streams, config, load)
                    return _store_level(contender, streams, config, load, redis_server)

                def measure(streams: int) -> dict[str, Any]:
                    # a level that failed while every core was busy (other work, the
                    # client load) runs once more; the first attempt is kept beside it
                    point = once(streams)
                    busy = point.get("machine_busy_percent")
                    if not holds(point) and busy is not None and busy >= BUSY_PERCENT:
                        point = {**once(streams), "first_attempt": point}
                    return point

                found = search(
                    measure,
                    config.capacity_start,
                    config.capacity_limit,
                    config.capacity_fine_steps,
                )
                found.update(
                    server=contender.spec.name,
                    transport=contender.transport,
                    loop=contender.spec.loop,
                    store=contender.store,
                    processes=contender.processes,
                    streams_per_core=round(found["capacity"] / contender.processes, 1),
                )
                results["contenders"][contender.name] = found
                bar.update()
    finally:
        if redis_server is not None:
            redis_server.stop()
    return results


#: two processes on one Redis should carry at least this many times one process's
#: streams at the same delay limit (issue 24)
SCALING_TARGET = 1.6


def run_store_scaling(config: SuiteConfig, progress: bool = True) -> dict[str, Any]:
    """What a second process on one Redis carries: the capacity search (the levels,
    limits and tokens of :func:`run_capacity`) for twinstream on Redis with one
    process and with two, over each of ``capacity_transports``, every server process
    held to ``scaleout_capacity_cores`` cores by a cgroup CPU quota
    (:mod:`.cpu_budget`).

    Without the budget the question cannot be asked of a small machine: one process
    at its limit takes a core, so two processes, redis-server and the load generator
    need more cores than two. With it, two processes get twice one process's CPU,
    as on a machine with a core for each, and what they carry against one process
    says whether the shared store lets a second process add capacity."""
    raise_fd_limit()
    cores = config.scaleout_capacity_cores
    results: dict[str, Any] = {
        "cores_per_process": cores,
        **_search_settings(config),
        "target": SCALING_TARGET,
        "by_transport": {},
    }
    transports = list(config.capacity_transports)
    bar = tqdm(
        total=2 * len(transports),
        desc="capacity, per-process budget",
        unit="search",
        disable=not progress,
        leave=False,
    )
    redis_server = start_store("redis")
    try:
        with CpuBudget(cores) as budget, LoadGenerator(config.workers) as load, bar:
            for transport in transports:
                found: dict[str, Any] = {}
                for processes in (1, 2):
                    contender = Contender(TWINSTREAM, transport, "redis", processes)
                    bar.set_postfix_str(contender.name)

                    def measure(streams: int, contender: Contender = contender) -> dict[str, Any]:
                        return _store_level(contender, streams, config, load, redis_server, budget)

                    found[str(processes)] = search(
                        measure,
                        config.capacity_start,
                        config.capacity_limit,
                        config.capacity_fine_steps,
                    )
                    bar.update()
                one, two = found["1"]["capacity"], found["2"]["capacity"]
                found["two_vs_one"] = round(two / one, 2) if one else None
                results["by_transport"][transport] = found
    finally:
        redis_server.stop()
    return results
