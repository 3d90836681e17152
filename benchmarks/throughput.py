"""Throughput: how many events per second get through, at what cost.

What it measures, per server and transport:

* **concurrency sweep** -- N streams at once (e.g. 1, 10, 100, 1,000) at the
  configured token rate, from separate client processes. Each level gets a
  fresh server. *Offered* events/s is N x tokens/s (what the model produces);
  *delivered* events/s counts ``delta`` events received inside the window when
  every stream was live (from the last stream's first token to the first
  stream's last token). Alongside: the server's CPU use in that window (% of
  one core), server and client CPU-milliseconds per 1,000 events, peak RSS
  and memory per live stream ((peak RSS - idle RSS) / N), delivery delay.
* **memory per open connection** -- N connections (N = the sweep's largest
  level) each holding a started stream that waits for its first token:
  (RSS with them open - RSS before) / N;
* **one unthrottled stream** -- the model at full speed, completions back to
  back on one connection: the most events/s one stream can carry.
* **wire bytes per token** -- every byte both ways counted at a TCP proxy
  (headers, chunked or WebSocket framing, handshakes), per ``delta`` event:
  new connection per completion ("cold") and one connection for all
  ("warm"); WebSocket with and without permessage-deflate.

Run alone: ``python -m benchmarks throughput [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import psutil
from tqdm import tqdm

from server.backends.synthetic import synthetic_tokens

from .clients import (
    Endpoint,
    SSEConnection,
    StreamRecord,
    expected_text,
    live_window,
    one_completion,
    open_websocket,
    prompts_with_tokens,
    run_with_deadline,
    sse_completion,
    sse_path,
    ws_completion,
)
from .config import SERVER_DEFAULTS, SuiteConfig
from .latency import measure_records
from .loadgen import LoadGenerator, LoadSpec
from .proxy import CountingProxy
from .servers import ResourceSampler, ServerProcess, ServerSpec
from .stats import summarize

__all__ = ["run_throughput", "sweep_level", "unthrottled_stream", "wire_bytes"]


def model_lag(records: Sequence[StreamRecord], config: SuiteConfig) -> list[float]:
    """How late the model released each token against its own schedule
    (``first_token_latency`` after ``start``, then one every 1/tokens_per_second),
    from the server's ``t`` stamps only: the server falling behind, whatever the client."""
    if not config.tokens_per_second:
        return []
    interval = 1.0 / config.tokens_per_second
    lags: list[float] = []
    for record in records:
        if not record.kinds or record.kinds[0] != "start":
            continue
        scheduled = record.produced[0] + config.first_token_latency
        index = 0
        for kind, produced in zip(record.kinds, record.produced):
            if kind == "delta":
                lags.append(produced - (scheduled + index * interval))
                index += 1
    return lags


def sweep_load(
    config: SuiteConfig, base_url: str, transport: str, prompts: Sequence[str], streams: int
) -> LoadSpec:
    """One sweep level's client load: ``streams`` completions ramped in, each
    with a generous deadline (ten times its expected length, at least 60 s)."""
    return LoadSpec(
        base_url=base_url,
        transport=transport,
        prompts=tuple(prompts),
        max_tokens=config.sweep_max_tokens,
        ramp_seconds=config.ramp_per_stream * streams,
        timeout=max(60.0, 10 * config.sweep_max_tokens / max(1.0, config.tokens_per_second)),
    )


def sweep_level(
    spec: ServerSpec,
    transport: str,
    streams: int,
    config: SuiteConfig,
    load: LoadGenerator,
    url: str | None = None,
) -> dict[str, Any]:
    """``streams`` concurrent completions over ``transport`` against a fresh server."""
    prompts = prompts_with_tokens(streams, config.sweep_max_tokens, f"sweep-{streams}")
    server = (
        None
        if url
        else ServerProcess(
            spec.command(config.tokens_per_second, config.first_token_latency)
        ).start()
    )
    endpoint = Endpoint(url or (server.url if server else ""))
    try:
        # one completion first, so lazy imports and first-use allocations are in the idle RSS
        run_with_deadline(one_completion(endpoint, transport, prompts[0], 2), 60, "warm-up")
        with ResourceSampler(server.pid if server else None) as sampler:
            time.sleep(0.2)
            idle_rss = sampler.sample()
            loaded = load.run(sweep_load(config, endpoint.base_url, transport, prompts, streams))
    finally:
        if server is not None:
            server.stop()
    records = loaded.records
    start, end, all_live = live_window(records)
    in_window = sum(1 for r in records for t in r.delta_times if start <= t <= end)
    window = end - start
    deltas = sum(r.delta_count for r in records)
    expected = sum(len(synthetic_tokens(p)[: config.sweep_max_tokens]) for p in prompts)
    text_ok = sum(1 for r in records if r.text == expected_text(r.prompt, r.max_tokens))
    server_cpu_seconds = sampler.cpu_seconds_between(loaded.began, loaded.ended)
    wall = max(1e-9, loaded.ended - loaded.began)
    peak_rss = sampler.peak_rss_between(loaded.began, loaded.ended)
    idle = idle_rss.rss_bytes if idle_rss else None
    measures = measure_records(records)
    return {
        "streams": streams,
        "transport": transport,
        "offered_events_per_s": (
            round(streams * config.tokens_per_second, 1) if config.tokens_per_second else None
        ),
        "delivered_events_per_s": round(in_window / window, 1) if window > 0 else None,
        "window_s": round(window, 3),
        "window_all_streams_live": all_live,
        "delta_events": deltas,
        "expected_delta_events": expected,
        "completions": len(records),
        "complete": measures["complete"],
        "errors": measures["errors"],
        "error_examples": measures["error_examples"],
        "exact_text": text_ok,
        "server_cpu_percent": sampler.cpu_percent_between(start, end) if window > 0 else None,
        "machine_cpu_percent": (
            sampler.machine_cpu_percent_between(start, end) if window > 0 else None
        ),
        "server_cpu_ms_per_1k_events": (
            round(1e6 * server_cpu_seconds / deltas, 2) if server_cpu_seconds and deltas else None
        ),
        "client_cpu_percent": round(100 * loaded.client_cpu_seconds / wall, 1),
        "client_cpu_ms_per_1k_events": (
            round(1e6 * loaded.client_cpu_seconds / deltas, 2) if deltas else None
        ),
        "client_processes": len(loaded.worker_pids),
        "server_idle_rss_mib": round(idle / 2**20, 2) if idle else None,
        "server_peak_rss_mib": round(peak_rss / 2**20, 2) if peak_rss else None,
        "memory_per_stream_kib": (
            round((peak_rss - idle) / streams / 1024, 1) if peak_rss and idle else None
        ),
        "model_lag_ms": summarize(model_lag(records, config), 1000.0),
        "ttft_ms": measures["ttft_ms"],
        "delivery_delay_ms": measures["delivery_delay_ms"],
        "inter_token_gap_ms": measures["inter_token_gap_ms"],
    }


async def _back_to_back(
    endpoint: Endpoint, transport: str, prompts: Sequence[str], seconds: float
) -> tuple[int, int, float, int]:
    """Completions one after another on one connection for ``seconds``;
    returns (delta events, completions, elapsed, errors)."""
    deltas = completions = errors = 0
    sse_connection: SSEConnection | None = None
    websocket = None
    began = time.perf_counter()
    try:
        while time.perf_counter() - began < seconds:
            prompt = prompts[completions % len(prompts)]
            if transport == "sse":
                record, sse_connection = await sse_completion(
                    endpoint, prompt, 4096, sse_connection
                )
            else:
                record, websocket = await ws_completion(endpoint, prompt, 4096, websocket)
            deltas += record.delta_count
            completions += 1
            errors += 1 if record.error else 0
    finally:
        elapsed = time.perf_counter() - began
        if sse_connection is not None:
            await sse_connection.close()
        if websocket is not None:
            await websocket.close()
    return deltas, completions, elapsed, errors


def unthrottled_stream(spec: ServerSpec, transport: str, config: SuiteConfig) -> dict[str, Any]:
    """One client, the model unthrottled, completions back to back on one connection."""
    prompts = prompts_with_tokens(8, 200, "unthrottled")
    with ServerProcess(spec.command(0, 0)) as server:
        endpoint = Endpoint(server.url)
        run_with_deadline(one_completion(endpoint, transport, prompts[0], 2), 60, "warm-up")
        with ResourceSampler(server.pid) as sampler:
            began = time.time()
            deltas, completions, elapsed, errors = run_with_deadline(
                _back_to_back(endpoint, transport, prompts, config.unthrottled_seconds),
                60 + config.unthrottled_seconds,
                "unthrottled stream",
            )
            ended = time.time()
    return {
        "transport": transport,
        "events_per_s": round(deltas / elapsed, 1) if elapsed > 0 else None,
        "delta_events": deltas,
        "completions": completions,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "server_cpu_percent": sampler.cpu_percent_between(began, ended),
    }


async def _wire_variant(
    upstream: Endpoint, transport: str, compression: bool, prompts: Sequence[str], warm: bool
) -> dict[str, Any]:
    async with CountingProxy(upstream.host, upstream.port) as proxy:
        endpoint = upstream.with_port(proxy.port)
        deltas = events = errors = 0
        negotiated: bool | None = None
        sse_connection: SSEConnection | None = None
        websocket = None
        for prompt in prompts:
            if transport == "sse":
                record, sse_connection = await sse_completion(
                    endpoint, prompt, 4096, sse_connection if warm else None, compression
                )
                negotiated = sse_connection.content_encoding == "gzip"
                if not warm:
                    await sse_connection.close()
            else:
                record, websocket = await ws_completion(
                    endpoint, prompt, 4096, websocket if warm else None, compression=compression
                )
                if websocket is not None:
                    extensions = websocket.protocol.extensions
                    negotiated = any("deflate" in type(e).__name__.lower() for e in extensions)
                    if not warm:
                        await websocket.close()
            deltas += record.delta_count
            events += len(record.kinds)
            errors += 1 if record.error else 0
        if sse_connection is not None:
            await sse_connection.close()
        if websocket is not None:
            await websocket.close()
        await asyncio.sleep(0.05)  # let the closing handshakes pass the proxy
        return {
            "connections": len(proxy.connections),
            "completions": len(prompts),
            "delta_events": deltas,
            "events": events,
            "errors": errors,
            "bytes_down": proxy.bytes_down,
            "bytes_up": proxy.bytes_up,
            "bytes_down_per_token": round(proxy.bytes_down / deltas, 2) if deltas else None,
            "bytes_total_per_token": (
                round((proxy.bytes_down + proxy.bytes_up) / deltas, 2) if deltas else None
            ),
            # permessage-deflate (WebSocket) or gzip (SSE) was used
            "deflate_negotiated": negotiated,
        }


def wire_bytes(spec: ServerSpec, config: SuiteConfig, url: str | None = None) -> dict[str, Any]:
    """Bytes on the wire per token for each transport variant the server speaks.

    Pacing does not change byte counts (one frame or chunk per event either
    way), so this runs the model unthrottled when it starts the server itself."""
    prompts = prompts_with_tokens(config.wire_streams, 200, "wire")
    variants: list[tuple[str, str, bool]] = []
    if "sse" in spec.transports:
        variants.append(("sse", "sse", False))
        if spec.module == "server":
            variants.append(("sse_gzip", "sse", True))
    if "ws" in spec.transports:
        variants.append(("ws", "ws", False))
        if spec.module == "server":
            variants.append(("ws_deflate", "ws", True))
    server = None if url else ServerProcess(spec.command(0, 0)).start()
    try:
        upstream = Endpoint(url or (server.url if server else ""))
        results: dict[str, Any] = {}
        for name, transport, compression in variants:
            for mode in ("cold", "warm"):
                results[f"{name}_{mode}"] = run_with_deadline(
                    _wire_variant(upstream, transport, compression, prompts, warm=mode == "warm"),
                    120 + 60 * len(prompts),
                    "wire bytes",
                )
                results[f"{name}_{mode}"].update(transport=transport, compression=compression)
        return results
    finally:
        if server is not None:
            server.stop()


async def _hold_open(
    endpoint: Endpoint, transport: str, prompts: Sequence[str], measure: Any
) -> tuple[int, Any]:
    """Open one stream per prompt, read up to its ``start`` event, then call
    ``measure()`` while every connection is still open; returns (opened, measure())."""
    gate = asyncio.Semaphore(50)  # do not flood the listen backlog
    held: list[Any] = []

    async def open_one(prompt: str) -> bool:
        async with gate:
            try:
                if transport == "sse":
                    connection = SSEConnection(endpoint)
                    events = connection.events(sse_path(prompt, 8)).__aiter__()
                    await asyncio.wait_for(events.__anext__(), 30)
                    held.append((connection, events))
                else:
                    websocket = await open_websocket(endpoint)
                    held.append((websocket, None))
                    await websocket.send(
                        json.dumps({"type": "start", "prompt": prompt, "max_tokens": 8})
                    )
                    await asyncio.wait_for(websocket.recv(), 30)
                return True
            except Exception:
                return False

    try:
        opened = sum(await asyncio.gather(*(open_one(p) for p in prompts)))
        await asyncio.sleep(0.5)
        return opened, measure()
    finally:
        for connection, events in held:
            if events is not None:
                await events.aclose()
                connection.abort()
            else:
                connection.transport.abort()


def open_connection_memory(
    spec: ServerSpec, transport: str, connections: int, config: SuiteConfig
) -> dict[str, Any]:
    """RSS cost of open connections that each carry a started stream still waiting
    for its first token (the model's first-token wait is set far beyond the test)."""
    prompts = prompts_with_tokens(connections, 8, "open")
    tokens_per_second = config.tokens_per_second or SERVER_DEFAULTS.tokens_per_second
    with ServerProcess(spec.command(tokens_per_second, 600.0)) as server:
        endpoint = Endpoint(server.url)
        run_with_deadline(  # warm up
            _hold_open(endpoint, transport, prompts[:1], lambda: None), 60, "warm-up"
        )
        time.sleep(0.3)
        process = psutil.Process(server.pid)
        idle = process.memory_info().rss
        opened, open_rss = run_with_deadline(
            _hold_open(endpoint, transport, prompts, lambda: process.memory_info().rss),
            120 + 0.1 * connections,
            "open connections",
        )
    return {
        "transport": transport,
        "connections": connections,
        "opened": opened,
        "server_idle_rss_mib": round(idle / 2**20, 2),
        "server_open_rss_mib": round(open_rss / 2**20, 2),
        "memory_per_connection_kib": (
            round((open_rss - idle) / opened / 1024, 1) if opened else None
        ),
    }


def run_throughput(
    config: SuiteConfig,
    specs: Sequence[ServerSpec],
    url: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The throughput part for each server in ``specs``; results keyed by server name."""
    results: dict[str, Any] = {}
    with LoadGenerator(config.workers) as load:
        for spec in specs:
            own_url = url if spec.module == "server" else None
            steps = len(config.sweep) * len(spec.transports) + len(spec.transports) + 2
            bar = tqdm(
                total=steps,
                desc=f"throughput {spec.name}",
                unit="step",
                disable=not progress,
                leave=False,
            )
            sweep: dict[str, list[dict[str, Any]]] = {t: [] for t in spec.transports}
            unthrottled: dict[str, Any] = {}
            with bar:
                for streams in config.sweep:
                    for transport in spec.transports:  # interleaved: same drift for both
                        bar.set_postfix_str(f"{transport} x{streams}")
                        sweep[transport].append(
                            sweep_level(spec, transport, streams, config, load, own_url)
                        )
                        bar.update()
                for transport in spec.transports:
                    if own_url is None:
                        unthrottled[transport] = unthrottled_stream(spec, transport, config)
                    bar.update()
                wire = wire_bytes(spec, config, own_url)
                bar.update()
                open_connections: dict[str, Any] = {}
                if own_url is None:
                    for transport in spec.transports:
                        open_connections[transport] = open_connection_memory(
                            spec, transport, max(config.sweep), config
                        )
                bar.update()
            results[spec.name] = {
                "server": spec.name,
                "sweep": sweep,
                "unthrottled": unthrottled,
                "wire_bytes": wire,
                "open_connections": open_connections,
            }
    return results
