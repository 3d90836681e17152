"""Latency: how soon tokens reach the client, over SSE and over WebSocket.

What it measures, per server and transport:

* **time to first token (TTFT), cold** -- from opening a new connection to the
  first ``delta`` event: a new connection per completion, as ``EventSource``
  does (for WebSocket: connect, handshake, send ``start``);
* **TTFT, warm** -- the connection is already open: a reused WebSocket, or a
  kept-alive HTTP/1.1 connection for SSE; from sending the request to the first
  ``delta``;
* **time to the start event** -- the same, to the first byte of the stream
  (the synthetic model's first-token wait is not in it);
* **inter-token gaps** -- time between consecutive ``delta`` events received;
* **delivery delay** -- client receive time minus the server's ``t`` stamp on
  each event (same machine, same clock; a ``delta``'s ``t`` is when the model
  released the token): time spent waiting in the server, in its relay, the
  kernel and the client;

as p50/p90/p99/max, first one stream at a time (cold and warm samples
interleaved across transports so they share the machine's noise), then at
many concurrent streams (run from separate client processes).

Run alone: ``python -m benchmarks latency [--quick]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from .clients import (
    Endpoint,
    SSEConnection,
    StreamRecord,
    prompts_with_tokens,
    run_with_deadline,
    sse_completion,
    ws_completion,
)
from .config import SuiteConfig
from .loadgen import LoadGenerator, LoadSpec
from .servers import ResourceSampler, ServerProcess, ServerSpec
from .stats import summarize

__all__ = [
    "measure_records",
    "cdf_points",
    "run_latency",
    "measure_server_latency",
    "concurrent_load",
    "concurrent_latency",
]

MS = 1000.0


def cdf_points(values: Sequence[float], limit: int = 1000) -> list[float]:
    """Sorted values, thinned to at most ``limit`` points (for plotting CDFs)."""
    ordered = sorted(values)
    if len(ordered) <= limit:
        return [round(v, 4) for v in ordered]
    step = (len(ordered) - 1) / (limit - 1)
    return [round(ordered[round(i * step)], 4) for i in range(limit)]


def measure_records(records: Sequence[StreamRecord]) -> dict[str, Any]:
    """Latency statistics (milliseconds) over a set of completions."""
    ttft = [v for r in records if (v := r.time_to_first("delta")) is not None]
    to_start = [v for r in records if (v := r.time_to_first("start")) is not None]
    gaps = [gap for r in records for gap in r.inter_token_gaps()]
    delays = [delay for r in records for delay in r.delivery_delays()]
    return {
        "completions": len(records),
        "complete": sum(1 for r in records if r.complete),
        "errors": sum(1 for r in records if r.error),
        "error_examples": sorted({r.error for r in records if r.error})[:3],
        "events": sum(len(r.kinds) for r in records),
        "ttft_ms": summarize(ttft, MS),
        "time_to_start_ms": summarize(to_start, MS),
        "inter_token_gap_ms": summarize(gaps, MS),
        "delivery_delay_ms": summarize(delays, MS),
        "_ttft": ttft,
        "_delays": delays,
    }


def _public(measures: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in measures.items() if not k.startswith("_")}


async def _single_stream_samples(
    endpoint: Endpoint,
    transports: Sequence[str],
    prompts: Sequence[str],
    max_tokens: int,
    progress: tqdm | None,
) -> dict[str, dict[str, list[StreamRecord]]]:
    """Cold then warm completions, one at a time, transports interleaved."""
    samples: dict[str, dict[str, list[StreamRecord]]] = {
        t: {"cold": [], "warm": []} for t in transports
    }
    for prompt in prompts:
        for transport in transports:
            if transport == "sse":
                record, connection = await sse_completion(endpoint, prompt, max_tokens)
                await connection.close()
            else:
                record, websocket = await ws_completion(endpoint, prompt, max_tokens)
                if websocket is not None:
                    await websocket.close()
            samples[transport]["cold"].append(record)
            if progress is not None:
                progress.update()
    # warm: one connection per transport, primed by one completion not counted
    sse_connection: SSEConnection | None = None
    websocket = None
    if "sse" in transports:
        _, sse_connection = await sse_completion(endpoint, prompts[0], max_tokens)
    if "ws" in transports:
        _, websocket = await ws_completion(endpoint, prompts[0], max_tokens)
    try:
        for prompt in prompts:
            for transport in transports:
                if transport == "sse":
                    record, sse_connection = await sse_completion(
                        endpoint, prompt, max_tokens, sse_connection
                    )
                else:
                    record, websocket = await ws_completion(endpoint, prompt, max_tokens, websocket)
                samples[transport]["warm"].append(record)
                if progress is not None:
                    progress.update()
    finally:
        if sse_connection is not None:
            await sse_connection.close()
        if websocket is not None:
            await websocket.close()
    return samples


def concurrent_load(
    endpoint: Endpoint,
    transport: str,
    prompts: Sequence[str],
    config: SuiteConfig,
    load: LoadGenerator,
    pid: int | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``len(prompts)`` streams at once over ``transport`` from the load processes;
    returns the raw measures (with samples for CDFs) and their public summary, with
    the CPU use of the server (``pid``), the clients and the machine meanwhile."""
    with ResourceSampler(pid) as sampler:
        loaded = load.run(
            LoadSpec(
                base_url=endpoint.base_url,
                transport=transport,
                prompts=tuple(prompts),
                max_tokens=config.concurrent_max_tokens,
                ramp_seconds=config.ramp_per_stream * len(prompts),
            )
        )
    measures = measure_records(loaded.records)
    wall = max(1e-9, loaded.ended - loaded.began)
    return measures, {
        "streams": len(prompts),
        **_public(measures),
        "client_cpu_percent": round(100 * loaded.client_cpu_seconds / wall, 1),
        "machine_cpu_percent": sampler.machine_cpu_percent_between(loaded.began, loaded.ended),
        "server_cpu_percent": sampler.cpu_percent_between(loaded.began, loaded.ended),
    }


def concurrent_latency(
    spec: ServerSpec, transport: str, config: SuiteConfig, load: LoadGenerator
) -> dict[str, Any]:
    """The latency part's concurrent load (``latency_concurrency`` streams) against a
    fresh server, after one completion that warms it up: the public summary only."""
    many = prompts_with_tokens(
        config.latency_concurrency, config.concurrent_max_tokens, "latency-many"
    )
    with ServerProcess(
        spec.command(config.tokens_per_second, config.first_token_latency)
    ) as server:
        endpoint = Endpoint(server.url)
        run_with_deadline(
            _single_stream_samples(endpoint, (transport,), many[:1], 2, None),
            60,
            "warm-up",
        )
        return concurrent_load(endpoint, transport, many, config, load, server.pid)[1]


def measure_server_latency(
    spec: ServerSpec,
    config: SuiteConfig,
    load: LoadGenerator,
    url: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Latency of one server over each transport it speaks."""
    transports = spec.transports
    prompts = prompts_with_tokens(config.latency_samples, config.latency_max_tokens, "latency")
    many = prompts_with_tokens(
        config.latency_concurrency, config.concurrent_max_tokens, "latency-many"
    )
    server = (
        None
        if url
        else ServerProcess(
            spec.command(config.tokens_per_second, config.first_token_latency)
        ).start()
    )
    result: dict[str, Any] = {"server": spec.name, "transports": {}}
    try:
        endpoint = Endpoint(url or (server.url if server else ""))
        bar = tqdm(
            total=2 * len(prompts) * len(transports) + len(transports),
            desc=f"latency {spec.name}",
            unit="run",
            disable=not progress,
            leave=False,
        )
        with bar:
            samples = run_with_deadline(
                _single_stream_samples(
                    endpoint, transports, prompts, config.latency_max_tokens, bar
                ),
                60 + 30 * len(prompts) * len(transports),
                "single-stream latency samples",
            )
            for transport in transports:
                concurrent, concurrent_public = concurrent_load(
                    endpoint, transport, many, config, load, server.pid if server else None
                )
                bar.update()
                cold = measure_records(samples[transport]["cold"])
                warm = measure_records(samples[transport]["warm"])
                single = measure_records(samples[transport]["cold"] + samples[transport]["warm"])
                result["transports"][transport] = {
                    "single": {
                        "cold": _public(cold),
                        "warm": _public(warm),
                        "inter_token_gap_ms": single["inter_token_gap_ms"],
                        "delivery_delay_ms": single["delivery_delay_ms"],
                    },
                    "concurrent": concurrent_public,
                    "cdf_ms": {
                        "ttft_cold": cdf_points([v * MS for v in cold["_ttft"]]),
                        "ttft_warm": cdf_points([v * MS for v in warm["_ttft"]]),
                        "ttft_concurrent": cdf_points([v * MS for v in concurrent["_ttft"]]),
                        "delivery_delay_single": cdf_points([v * MS for v in single["_delays"]]),
                        "delivery_delay_concurrent": cdf_points(
                            [v * MS for v in concurrent["_delays"]]
                        ),
                    },
                }
    finally:
        if server is not None:
            server.stop()
    return result


def run_latency(
    config: SuiteConfig,
    specs: Sequence[ServerSpec],
    url: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The latency part for each server in ``specs``; results keyed by server name."""
    results: dict[str, Any] = {}
    with LoadGenerator(config.workers) as load:
        for spec in specs:
            results[spec.name] = measure_server_latency(
                spec, config, load, url if spec.module == "server" else None, progress
            )
    return results
