"""The stuck-readers scenario: a baseline and a stuck run per transport, compared."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import psutil
from tqdm import tqdm

from ..clients import Endpoint, prompts_with_tokens
from ..config import SuiteConfig
from ..servers import REPO_ROOT, ResourceSampler, ServerProcess, ServerSpec
from ..stats import ratio, summarize
from .normal_clients import normal_worker
from .outcome import StuckOutcome
from .plan import (
    MIB,
    STUCK_MAX_TOKENS,
    TARGET_DELAY_RATIO,
    TARGET_EXTRA_MIB,
    StuckPlan,
    bounds_flags,
    plan_for,
)
from .readers import stuck_sse, stuck_websocket

__all__ = ["start_server", "stuck_scenario", "run_stuck"]


def start_server(command: list[str]) -> tuple[ServerProcess | None, str | None]:
    """Start ``command``; a usage error (exit 2) gives ``(None, its message)``."""
    server = ServerProcess(command)
    try:
        return server.start(), None
    except RuntimeError:
        if server.process is None or server.process.returncode != 2:
            raise
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    )
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=30, cwd=REPO_ROOT, env=env
    )
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    return None, lines[-1] if lines else f"exit status {completed.returncode}"


def _run_once(
    spec: ServerSpec,
    transport: str,
    config: SuiteConfig,
    plan: StuckPlan,
    pool: ProcessPoolExecutor,
    stuck: bool,
    bounded: bool,
) -> dict[str, Any]:
    pace = (
        plan.tokens_per_second if plan.tokens_per_second is not None else config.tokens_per_second
    )
    command = spec.command(pace, config.first_token_latency)
    command += ["--ws-ping-interval", str(plan.ws_ping_interval)]
    if bounded:
        command += bounds_flags(plan)
    server = ServerProcess(command).start()
    try:
        endpoint = Endpoint(server.url)
        process = psutil.Process(server.pid)
        with ResourceSampler(server.pid) as sampler:
            time.sleep(0.3)
            idle = sampler.sample()
            start_at = time.time() + 0.5
            end_at = start_at + plan.window
            normal = pool.submit(
                normal_worker,
                server.url,
                transport,
                plan.normal_clients,
                start_at,
                end_at,
                STUCK_MAX_TOKENS,
            )
            outcome: StuckOutcome | None = None
            if stuck:
                time.sleep(max(0.0, start_at + 1.0 - time.time()))
                prompts = prompts_with_tokens(64, STUCK_MAX_TOKENS, "stuck")
                if transport == "ws":
                    work = stuck_websocket(endpoint, process, plan, prompts, end_at - 1.0)
                else:
                    work = stuck_sse(endpoint, process, plan, prompts[0], end_at - 1.0)
                outcome = asyncio.run(work)
            loaded = normal.result(timeout=plan.window + 120)
            ended = time.time()
            retained = _store_streams(server.url)
    finally:
        server.stop()
    peak = sampler.peak_rss_between(start_at, ended)
    growth = (peak - idle.rss_bytes) if peak and idle else None
    return {
        "normal_clients": plan.normal_clients,
        "completions": loaded["completions"],
        "errors": loaded["errors"],
        "error_examples": loaded["error_examples"],
        "delivery_delay_ms": summarize(loaded["delays"], 1000.0),
        # near 100: everything on this machine competed for the cores, so delays say
        # as much about the machine as about the server
        "machine_cpu_percent": sampler.machine_cpu_percent_between(start_at, ended),
        "server_cpu_percent": sampler.cpu_percent_between(start_at, ended),
        "server_idle_rss_mib": round(idle.rss_bytes / MIB, 2) if idle else None,
        "server_peak_rss_mib": round(peak / MIB, 2) if peak else None,
        "rss_growth_mib": round(growth / MIB, 2) if growth is not None else None,
        "server_streams": retained,
        "stuck": outcome.as_dict() if outcome else None,
    }


def _store_streams(base_url: str) -> int | None:
    """How many streams the server keeps (``GET /healthz``'s ``streams``), if it says."""
    try:
        with urllib.request.urlopen(base_url + "healthz", timeout=10) as response:
            count = json.loads(response.read()).get("streams")
    except (OSError, ValueError):
        return None
    return count if isinstance(count, int) else None


def stuck_scenario(
    spec: ServerSpec, transport: str, config: SuiteConfig, pool: ProcessPoolExecutor
) -> dict[str, Any]:
    """Baseline and stuck runs over ``transport``, and the comparison of the two."""
    plan = plan_for(config)
    pace = (
        plan.tokens_per_second if plan.tokens_per_second is not None else config.tokens_per_second
    )
    probe, usage_error = start_server(
        spec.command(pace, config.first_token_latency) + bounds_flags(plan)
    )
    if probe is not None:
        probe.stop()
    bounded = usage_error is None
    baseline = _run_once(spec, transport, config, plan, pool, stuck=False, bounded=bounded)
    loaded = _run_once(spec, transport, config, plan, pool, stuck=True, bounded=bounded)
    outcome = loaded["stuck"] or {}
    # the streams the stuck reader made the server start: what the server keeps (every
    # stream is retained far longer than a run) minus the normal clients' completions;
    # failing that, the streams whose start event reached the stuck reader
    if loaded["server_streams"] is not None:
        streams = max(0, loaded["server_streams"] - loaded["completions"])
        counted_by = "server (GET /healthz)"
    else:
        streams = outcome.get("streams_seen") or 0
        counted_by = "stuck reader (start events it received)"
    per_stream = (
        baseline["rss_growth_mib"] / baseline["completions"]
        if baseline["rss_growth_mib"] is not None and baseline["completions"]
        else None
    )
    # the stuck run's growth, less the baseline's and less the cost of the streams it
    # had beyond the baseline's (the stuck reader's, and any difference in normal ones)
    extra = (
        loaded["rss_growth_mib"]
        - baseline["rss_growth_mib"]
        - per_stream * (streams + loaded["completions"] - baseline["completions"])
        if per_stream is not None and loaded["rss_growth_mib"] is not None
        else None
    )
    p99_ratio = ratio(loaded["delivery_delay_ms"]["p99"], baseline["delivery_delay_ms"]["p99"])
    deadline = plan.write_timeout
    return {
        "transport": transport,
        "supported": bounded,
        "note": None if bounded else f"not supported by this server ({usage_error})",
        "flags": bounds_flags(plan) if bounded else [],
        "window_s": plan.window,
        "write_timeout_s": plan.write_timeout,
        "max_pending_bytes": plan.max_pending_bytes,
        "baseline": baseline,
        "with_stuck": loaded,
        "seconds_to_disconnect": outcome.get("seconds_to_disconnect"),
        "extra_memory_mib": round(extra, 2) if extra is not None else None,
        "memory_per_stream_kib": round(per_stream * 1024, 1) if per_stream is not None else None,
        "stuck_streams": streams,
        "stuck_streams_counted_by": counted_by,
        "events_lost": (
            outcome.get("events_lost")
            if outcome.get("resumed") or outcome.get("complete_before_cut")
            else None
        ),
        "p99_ratio": p99_ratio,
        "meets": {
            "disconnected": bool(outcome.get("disconnected")),
            "extra_memory": extra is not None and extra <= TARGET_EXTRA_MIB,
            "nothing_lost": bool(outcome.get("resumed") or outcome.get("complete_before_cut"))
            and outcome.get("events_lost") == 0
            and outcome.get("text_mismatches") == 0
            and not outcome.get("resume_failures"),
            "p99_within_2x": p99_ratio is not None and p99_ratio <= TARGET_DELAY_RATIO,
        },
        "deadline_note": (
            f"--write-timeout {deadline:g} s after the kernel's buffers filled" if bounded else None
        ),
    }


def run_stuck(config: SuiteConfig, spec: ServerSpec, progress: bool = True) -> dict[str, Any]:
    """Both transports' stuck-reader scenarios against ``spec`` (twinstream)."""
    results: dict[str, Any] = {"server": spec.name, "transports": {}}
    bar = tqdm(total=len(spec.transports), desc="stuck", unit="transport", disable=not progress)
    context = multiprocessing.get_context("spawn")
    with bar, ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(os.getpid).result()  # start the worker before anything is timed
        for transport in spec.transports:
            bar.set_postfix_str(transport)
            results["transports"][transport] = stuck_scenario(spec, transport, config, pool)
            bar.update()
    return results
