"""Head to head: the stream core's targets, measured in interleaved rounds.

On a shared two-core machine one measurement per server decides a 5 % margin by
noise: the server and the client load processes fill both cores, and the other
parts measure the reference servers minutes after twinstream. Here every measure
is taken in rounds. A round measures all four contenders (twinstream SSE,
twinstream WebSocket, ``sse-starlette``, ``websockets``) one after another, each
on a fresh server, in an order that changes from round to round (each goes first
equally often and follows every other one equally often), so the machine's drift
falls on all of them alike. Each contender's figure is the median over the
rounds; each target compares medians (twinstream's median / the reference's
median) and also says in how many rounds the paired comparison held.

The measures, with the workloads of the throughput and latency parts:

* at the sweep's largest level (1,000 streams in the full preset) at the model's
  pace: server CPU per 1,000 delivered events, delivered events/s (the window
  when every stream was live), the share of all expected events that arrived,
  memory per live stream, how busy the machine was;
* at the latency part's concurrent level (500 streams): p99 delivery delay;
* one unthrottled stream: events/s.

The targets are issue 8's: CPU per event at or below ``websockets``, delivered
events/s at or above it, p99 delay no worse than the reference server of the same
transport, memory per live stream at most 1.4x ``websockets``, the unthrottled
stream at or above ``websockets``.

Runs inside ``peers`` with the full preset; alone: ``python -m benchmarks headtohead``.
``--loads throughput --rounds 40`` runs only the throughput load, with only the
contenders its targets compare (twinstream's two transports and ``websockets``), in
many more rounds: a precise measure of CPU per event, where 8 rounds' noise (a few
per cent) is as large as the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from .config import SuiteConfig
from .latency import concurrent_latency
from .loadgen import LoadGenerator
from .servers import LOOPS, ServerSpec, with_loop
from .targets import LOADS, contenders_for, judge, label, round_order, spread, targets_for
from .throughput import sweep_level, unthrottled_stream

__all__ = ["run_head_to_head"]


def _sweep_measures(level: dict[str, Any]) -> dict[str, float | None]:
    """This part's measures from one sweep level's result."""
    expected = level.get("expected_delta_events") or 0
    return {
        "cpu_ms_per_1k_events": level.get("server_cpu_ms_per_1k_events"),
        "delivered_events_per_s": level.get("delivered_events_per_s"),
        "delivered_percent": (
            round(100 * level["delta_events"] / expected, 3) if expected else None
        ),
        "memory_per_stream_kib": level.get("memory_per_stream_kib"),
        "machine_busy_percent": level.get("machine_cpu_percent"),
    }


def run_head_to_head(config: SuiteConfig, progress: bool = True) -> dict[str, Any]:
    """``config.head_to_head_rounds`` rounds of ``config.head_to_head_loads`` over the
    contenders their targets compare. ValueError for an unknown load."""
    rounds = config.head_to_head_rounds
    streams = max(config.sweep)
    loads = list(dict.fromkeys(config.head_to_head_loads))  # a load named twice runs once
    unknown = [load for load in loads if load not in LOADS]
    if unknown or not loads:
        raise ValueError(
            f"unknown head-to-head load(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(LOADS)}"
        )
    contenders = contenders_for(targets_for(loads))
    # each Python contender on every other loop too (issue 25): what the loop buys it
    contenders += tuple(
        (with_loop(spec, loop), transport)
        for loop in config.head_to_head_loops
        if loop != LOOPS[0]
        for spec, transport in contenders
        if not spec.program
    )
    labels = [label(spec, transport) for spec, transport in contenders]
    measured = [measure for load in loads for measure in LOADS[load]]
    samples: dict[str, dict[str, list[float | None]]] = {
        name: {measure: [] for measure in measured} for name in labels
    }
    errors: dict[str, list[str]] = {name: [] for name in labels}
    orders: list[list[str]] = []

    def throughput(spec: ServerSpec, transport: str, load: LoadGenerator) -> dict[str, Any]:
        level = sweep_level(spec, transport, streams, config, load)
        return {"measures": _sweep_measures(level), "errors": level["error_examples"]}

    def latency(spec: ServerSpec, transport: str, load: LoadGenerator) -> dict[str, Any]:
        concurrent = concurrent_latency(spec, transport, config, load)
        return {
            "measures": {"p99_delay_ms": concurrent["delivery_delay_ms"]["p99"]},
            "errors": concurrent["error_examples"],
        }

    def unthrottled(spec: ServerSpec, transport: str, load: LoadGenerator) -> dict[str, Any]:
        result = unthrottled_stream(spec, transport, config)
        failed = [f"{result['errors']} unthrottled completions failed"] if result["errors"] else []
        return {"measures": {"unthrottled_events_per_s": result["events_per_s"]}, "errors": failed}

    runners: dict[str, Callable[[ServerSpec, str, LoadGenerator], dict[str, Any]]] = {
        "throughput": throughput,
        "latency": latency,
        "unthrottled": unthrottled,
    }
    parts = [(runners[load], LOADS[load]) for load in loads]
    bar = tqdm(
        total=len(parts) * rounds * len(contenders),
        desc="head to head",
        unit="run",
        disable=not progress,
        leave=False,
    )
    with LoadGenerator(config.workers) as load, bar:
        for round_index in range(rounds):
            order = round_order(contenders, round_index)
            orders.append([label(spec, transport) for spec, transport in order])
            for measure, names in parts:
                for spec, transport in order:
                    name = label(spec, transport)
                    bar.set_postfix_str(f"round {round_index + 1}: {name}")
                    try:
                        outcome = measure(spec, transport, load)
                    except Exception as exc:  # one failed run leaves a gap, not a lost part
                        outcome = {"measures": {}, "errors": [f"{type(exc).__name__}: {exc}"]}
                    for key in names:
                        samples[name][key].append(outcome["measures"].get(key))
                    errors[name] += outcome["errors"]
                    bar.update()
    return {
        "rounds": rounds,
        "loads": loads,
        "streams": streams,
        "latency_streams": config.latency_concurrency,
        "unthrottled_seconds": config.unthrottled_seconds,
        "orders": orders,
        "contenders": {
            name: {
                "samples": samples[name],
                "spread": {m: spread(values) for m, values in samples[name].items()},
                "error_examples": sorted(set(errors[name]))[:3],
            }
            for name in labels
        },
        "targets": judge(samples, targets_for(loads)),
    }
