"""The protocol table: what each view of a stream costs, every view in one run.

For every view twinstream speaks (:data:`benchmarks.views.VIEWS`: twinstream SSE and
WebSocket, the ``/v1`` chat chunks, and the views that join it as they land), on
twinstream:

* **bytes per token on the wire**, server -> client, counted at a TCP proxy (headers,
  framing, handshakes included): completions one after another on one session, plain
  and compressed (gzip for event streams, permessage-deflate for WebSockets; the server
  was started with both, used only when the client offers them);
* **server CPU per token** at ``protocol_streams`` concurrent streams (1,000 in the
  full preset) at the model's pace, a new session per stream, from client worker
  processes; the share of the offered tokens delivered beside it;
* **time to first token**, cold (a new session: connection, handshake, request) and
  warm (the session's connection reused), p50 over ``protocol_samples`` each.

Run alone: ``python -m benchmarks protocols [--quick]``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import psutil
from tqdm import tqdm

from server.backends.synthetic import synthetic_tokens

from .clients import Endpoint, prompts_with_tokens, run_with_deadline
from .config import SuiteConfig
from .proxy import CountingProxy
from .servers import TWINSTREAM, ResourceSampler, ServerProcess
from .stats import summarize
from .views import VIEWS, View, view_named

__all__ = ["run_protocols", "view_wire", "view_first_token", "view_cpu"]


async def _wire(view: View, upstream: Endpoint, compression: bool, prompts: Sequence[str]) -> Any:
    async with CountingProxy(upstream.host, upstream.port) as proxy:
        session = view.open(upstream.with_port(proxy.port), compression)
        tokens = errors = 0
        compressed = False
        try:
            for prompt in prompts:
                done = await session.complete(prompt, 4096)
                tokens += done.tokens
                errors += 1 if done.error else 0
                compressed = compressed or done.compressed
        finally:
            await session.close()
        await asyncio.sleep(0.05)  # the closing handshakes pass the proxy
        return {
            "tokens": tokens,
            "errors": errors,
            "bytes_down": proxy.bytes_down,
            "bytes_up": proxy.bytes_up,
            "bytes_per_token": round(proxy.bytes_down / tokens, 2) if tokens else None,
            "compressed": compressed,
        }


def view_wire(view: View, url: str, config: SuiteConfig) -> dict[str, Any]:
    """Bytes per token over ``view``, plain and compressed, against a server at ``url``."""
    prompts = prompts_with_tokens(config.protocol_completions, 100, f"wire-{view.name}")
    return {
        mode: run_with_deadline(
            _wire(view, Endpoint(url), mode == "compressed", prompts), 120, "protocol wire"
        )
        for mode in ("plain", "compressed")
    }


async def _first_tokens(view: View, endpoint: Endpoint, samples: int) -> dict[str, Any]:
    prompts = prompts_with_tokens(samples, 4, f"ttft-{view.name}")
    cold: list[float] = []
    for prompt in prompts:  # a new session each time
        session = view.open(endpoint, False)
        try:
            done = await session.complete(prompt, 2)
        finally:
            await session.close()
        if done.first_token is not None and not done.error:
            cold.append(done.first_token)
    warm: list[float] = []
    session = view.open(endpoint, False)
    try:
        await session.complete(prompts[0], 2)  # opens the connection
        for prompt in prompts:
            done = await session.complete(prompt, 2)
            if done.first_token is not None and not done.error:
                warm.append(done.first_token)
    finally:
        await session.close()
    return {"cold_ms": summarize(cold, 1000.0), "warm_ms": summarize(warm, 1000.0)}


def view_first_token(view: View, url: str, config: SuiteConfig) -> dict[str, Any]:
    """Time to first token over ``view``, cold and warm, against a server at ``url``."""
    return run_with_deadline(
        _first_tokens(view, Endpoint(url), config.protocol_samples), 120, "protocol first token"
    )


# -- server CPU per token at many streams, from worker processes -------------------------


async def _streams(
    view_name: str, url: str, prompts: Sequence[str], max_tokens: int, ramp: float
) -> tuple[int, int]:
    view = view_named(view_name)
    endpoint = Endpoint(url)

    async def one(index: int, prompt: str) -> tuple[int, int]:
        await asyncio.sleep(ramp * index / max(1, len(prompts)))
        session = view.open(endpoint, False)
        try:
            done = await session.complete(prompt, max_tokens)
        finally:
            await session.close()
        return done.tokens, 1 if done.error else 0

    outcomes = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
    return sum(t for t, _ in outcomes), sum(e for _, e in outcomes)


def _worker(
    view_name: str, url: str, prompts: Sequence[str], max_tokens: int, ramp: float
) -> tuple[int, int, float]:
    """One client process's share: (tokens, errors, its CPU seconds)."""
    from .connections.plan import raise_fd_limit

    raise_fd_limit()
    before = psutil.Process().cpu_times()
    tokens, errors = asyncio.run(_streams(view_name, url, prompts, max_tokens, ramp))
    after = psutil.Process().cpu_times()
    return tokens, errors, (after.user + after.system) - (before.user + before.system)


def view_cpu(view: View, config: SuiteConfig, pool: ProcessPoolExecutor) -> dict[str, Any]:
    """``protocol_streams`` concurrent streams over ``view`` on a fresh, paced server, from
    the client processes of ``pool`` (``config.workers`` of them)."""
    streams = config.protocol_streams
    prompts = prompts_with_tokens(streams, config.protocol_max_tokens, f"cpu-{view.name}")
    expected = sum(len(synthetic_tokens(p)[: config.protocol_max_tokens]) for p in prompts)
    workers = max(1, min(config.workers, streams))
    shares = [prompts[i::workers] for i in range(workers)]
    ramp = config.ramp_per_stream * streams
    command = TWINSTREAM.command(config.tokens_per_second, config.first_token_latency)
    with ServerProcess(command) as server:
        # one completion warms the server up (and each worker's imports, the first time)
        list(pool.map(_worker, *zip(*[(view.name, server.url, shares[0][:1], 2, 0.0)] * workers)))
        with ResourceSampler(server.pid) as sampler:
            began = time.time()
            futures = [
                pool.submit(_worker, view.name, server.url, share, config.protocol_max_tokens, ramp)
                for share in shares
            ]
            outcomes = [future.result(timeout=300) for future in futures]
            ended = time.time()
    tokens = sum(o[0] for o in outcomes)
    cpu = sampler.cpu_seconds_between(began, ended)
    return {
        "streams": streams,
        "tokens": tokens,
        "expected_tokens": expected,
        "delivered_percent": round(100 * tokens / expected, 2) if expected else None,
        "errors": sum(o[1] for o in outcomes),
        "server_cpu_ms_per_1k_tokens": round(1e6 * cpu / tokens, 2) if cpu and tokens else None,
        "client_cpu_ms_per_1k_tokens": (
            round(1e6 * sum(o[2] for o in outcomes) / tokens, 2) if tokens else None
        ),
        "seconds": round(ended - began, 2),
    }


def run_protocols(
    config: SuiteConfig, views: Sequence[View] = VIEWS, progress: bool = True
) -> dict[str, Any]:
    """Every view's row of the protocol table."""
    results: dict[str, Any] = {"streams": config.protocol_streams, "views": {}}
    bar = tqdm(
        total=3 * len(views), desc="protocols", unit="step", disable=not progress, leave=False
    )
    with bar:
        # bytes per token: pacing changes no byte, so the model runs unthrottled
        with ServerProcess(TWINSTREAM.command(0, 0)) as fast:
            for view in views:
                bar.set_postfix_str(f"{view.name} wire")
                results["views"][view.name] = {
                    "what": view.what,
                    "wire": view_wire(view, fast.url, config),
                }
                bar.update()
        paced = TWINSTREAM.command(config.tokens_per_second, config.first_token_latency)
        with ServerProcess(paced) as server:
            for view in views:
                bar.set_postfix_str(f"{view.name} first token")
                results["views"][view.name]["first_token"] = view_first_token(
                    view, server.url, config
                )
                bar.update()
        workers = max(1, min(config.workers, config.protocol_streams))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, context) as pool:
            for view in views:
                bar.set_postfix_str(f"{view.name} x{config.protocol_streams}")
                results["views"][view.name]["cpu"] = view_cpu(view, config, pool)
                bar.update()
    return results
