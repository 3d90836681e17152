"""Server memory per idle open connection: one measurement, and the part's runs."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import psutil
from tqdm import tqdm

from ..clients import prompts_with_tokens
from ..config import SERVER_DEFAULTS, SuiteConfig
from ..servers import PEER_SPECS, TWINSTREAM, ServerProcess, ServerSpec
from .holders import HolderWorkers
from .plan import TARGETS_KIB, connection_budget, plan_for, raise_fd_limit

__all__ = ["ALL_SPECS", "idle_connection_memory", "run_connections"]


def _median_rss(process: psutil.Process, samples: int) -> int:
    """The median of ``samples`` RSS readings 0.2 s apart."""
    values = []
    for index in range(samples):
        if index:
            time.sleep(0.2)
        values.append(process.memory_info().rss)
    return int(statistics.median(values))


def _server_command(spec: ServerSpec, config: SuiteConfig, connections: int) -> list[str]:
    """``spec``'s command, its streams kept before their first token."""
    # a first-token wait far beyond the test: every SSE stream stays before its first token
    command = spec.command(config.tokens_per_second or SERVER_DEFAULTS.tokens_per_second, 3600.0)
    if spec.module == "server":
        # the warm-up's streams still count against the cap on streams generating at once
        command += ["--max-streams", str(connections + 100)]
    return command


def idle_connection_memory(
    spec: ServerSpec,
    transport: str,
    config: SuiteConfig,
    connections: int | None = None,
    progress: tqdm | None = None,
) -> dict[str, Any]:
    """Server RSS per idle open connection over ``transport``, on a fresh server."""
    plan = plan_for(config)
    wanted = connections or plan.connections
    limits = raise_fd_limit()
    count, note = connection_budget(wanted, limits)
    workers = max(1, min(config.workers, count))
    prompts = prompts_with_tokens(count + 1, 8, "idle")
    steps = max(1, min(plan.steps, count))
    result: dict[str, Any] = {
        "transport": transport,
        "definition": (
            "GET /sse open, stream started, before its first token"
            if transport == "sse"
            else "WebSocket open, no stream"
        ),
        "connections": wanted,
        "attempted": count,
        "fd_limit": limits,
        "note": note,
        "target_kib": TARGETS_KIB[transport],
    }
    with ServerProcess(_server_command(spec, config, count)) as server:
        process = psutil.Process(server.pid)
        pool = HolderWorkers(server.url, transport, count + 1, workers, prompts)
        try:
            result["client_fd_limits"] = pool.limits
            # warm-up: one connection first (lazy imports, first-use allocations), kept
            first = [1] + [0] * (len(pool.pipes) - 1)
            warm, errors = pool.open(first, 60)
            if warm != 1:
                raise RuntimeError(f"the warm-up connection failed: {errors[:1]}")
            time.sleep(0.5)
            idle = _median_rss(process, plan.samples)
            idle_fds = process.num_fds()
            rss_steps = [idle]
            opened_steps = [0]
            remaining = list(pool.shares)
            remaining[0] -= 1
            began = time.monotonic()
            for step in range(steps):
                share = [math.ceil(left / (steps - step)) if left > 0 else 0 for left in remaining]
                remaining = [left - s for left, s in zip(remaining, share)]
                opened, errors = pool.open(share, 60 + 0.05 * count)
                time.sleep(0.5)
                rss_steps.append(_median_rss(process, plan.samples))
                opened_steps.append(opened - 1)
                if progress is not None:
                    progress.set_postfix_str(f"{spec.name} {transport} {opened - 1}/{count}")
            open_seconds = time.monotonic() - began
            open_fds = process.num_fds()
        finally:
            pool.close()
    opened = opened_steps[-1]
    per_step = [
        round((rss_steps[i + 1] - rss_steps[i]) / 1024 / (opened_steps[i + 1] - opened_steps[i]), 2)
        for i in range(len(opened_steps) - 1)
        if opened_steps[i + 1] > opened_steps[i]
    ]
    per_connection = (rss_steps[-1] - idle) / opened / 1024 if opened else None
    result.update(
        {
            "opened": opened,
            "errors": count - opened,
            "error_examples": sorted(set(errors))[:3],
            "open_seconds": round(open_seconds, 2),
            "server_fds_idle": idle_fds,
            "server_fds_open": open_fds,
            "server_idle_rss_mib": round(idle / 2**20, 2),
            "server_open_rss_mib": round(rss_steps[-1] / 2**20, 2),
            "rss_steps_mib": [round(r / 2**20, 2) for r in rss_steps],
            "opened_steps": opened_steps,
            "step_kib_per_connection": per_step,
            "memory_per_connection_kib": (
                round(per_connection, 2) if per_connection is not None else None
            ),
            "meets_target": (
                per_connection <= TARGETS_KIB[transport] if per_connection is not None else None
            ),
        }
    )
    return result


def run_connections(
    config: SuiteConfig, specs: Sequence[ServerSpec], progress: bool = True
) -> dict[str, Any]:
    """Memory per idle connection for each server in ``specs``, keyed by server name."""
    results: dict[str, Any] = {}
    jobs = [(spec, transport) for spec in specs for transport in spec.transports]
    bar = tqdm(total=len(jobs), desc="connections", unit="run", disable=not progress, leave=False)
    with bar:
        for spec, transport in jobs:
            results.setdefault(spec.name, {"server": spec.name, "transports": {}})
            results[spec.name]["transports"][transport] = idle_connection_memory(
                spec, transport, config, progress=bar
            )
            bar.update()
    return results


ALL_SPECS = (TWINSTREAM, *PEER_SPECS)
