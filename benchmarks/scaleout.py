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
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import redis

from .clients import Endpoint, prompts_with_tokens, run_with_deadline
from .config import SuiteConfig
from .loadgen import LoadGenerator
from .servers import TWINSTREAM, ResourceSampler, ServerProcess
from .stats import summarize
from .throughput import _one_completion, _window, sweep_load

__all__ = ["run_scaleout", "RedisProcess", "VARIANTS", "readme_section"]

#: (label, store, processes)
VARIANTS: tuple[tuple[str, str, int], ...] = (
    ("memory", "memory", 1),
    ("redis, 1 process", "redis", 1),
    ("redis, 2 processes", "redis", 2),
)


class RedisProcess:
    """Debian's redis-server on a free loopback port, no persistence, a temp dir."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.dir = tempfile.mkdtemp(prefix="twinstream-bench-redis-")
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        """Empty it and zero its command counters."""
        client = redis.Redis.from_url(self.url)
        client.flushall()
        client.config_resetstat()
        client.close()

    def calls(self) -> dict[str, int]:
        """Commands served since :meth:`flush`, by name."""
        client = redis.Redis.from_url(self.url, decode_responses=True)
        stats = client.info("commandstats")
        client.close()
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _command(config: SuiteConfig, store: str, processes: int) -> list[str]:
    """The suite's twinstream command line, with a store and a process count."""
    return TWINSTREAM.command(config.tokens_per_second, config.first_token_latency) + [
        "--store",
        store,
        "--processes",
        str(processes),
    ]


def _worker_pids(server: ServerProcess, processes: int) -> list[int]:
    """The processes that serve: the server itself, or its forked workers."""
    assert server.pid is not None
    if processes == 1:
        return [server.pid]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = psutil.Process(server.pid).children()
        if len(children) >= processes:
            return [child.pid for child in children]
        time.sleep(0.05)
    raise RuntimeError("the server's worker processes did not start")


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
    with ServerProcess(_command(config, url, processes), stderr=log_path) as server:
        endpoint = Endpoint(server.url)
        pids = _worker_pids(server, processes)
        for prompt in prompts[: 2 * processes]:  # warm every worker up
            run_with_deadline(_one_completion(endpoint, transport, prompt, 2), 60, "warm-up")
        samplers = [ResourceSampler(pid).start() for pid in pids]
        redis_sampler = ResourceSampler(
            redis_server.process.pid if redis_server and url != "memory" else None
        )
        redis_sampler.start()
        try:
            loaded = load.run(
                sweep_load(config, endpoint.base_url, transport, prompts, streams)
            )
        finally:
            for sampler in [*samplers, redis_sampler]:
                sampler.stop()
    records = loaded.records
    start, end, all_live = _window(records)
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


def _ratios(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
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
        "redis_server": _redis_version(),
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
                results["by_transport"][transport] = {"rows": rows, "ratios": _ratios(rows)}
    finally:
        redis_server.stop()
    return results


def _redis_version() -> str:
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except OSError:
        return "?"
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip()


def scaleout_details(results: dict[str, Any]) -> str:
    """The report.md section: a table per transport, ratios against the targets."""
    if "skipped" in results:
        return f"Not run: {results['skipped']}."
    lines = [
        f"{results['streams']:,} concurrent streams per run on a machine with "
        f"{results['cpus']} CPU cores (the load generator shares them); redis-server "
        f"{results['redis_server']} on loopback, no persistence. Server CPU sums every "
        "twinstream process; redis-server's own CPU is counted apart.",
    ]
    for transport, data in results["by_transport"].items():
        name = "SSE" if transport == "sse" else "WebSocket"
        lines.append(f"**{name}**\n")
        lines.append(
            "| store | processes | delivered events/s | server CPU ms / 1k events "
            "| redis-server CPU ms / 1k events | Redis append calls / 1k events "
            "| delivery delay p50 / p99 (ms) | complete | errors |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for row in data["rows"]:
            delay = row.get("delivery_delay_ms") or {}
            lines.append(
                f"| {row['store']} | {row['processes']} | {_num(row['delivered_events_per_s'])} "
                f"| {_num(row['server_cpu_ms_per_1k_events'], 1)} "
                f"| {_num(row['redis_cpu_ms_per_1k_events'], 1)} "
                f"| {_num(row.get('redis_appends_per_1k_events'), 1)} "
                f"| {_num(delay.get('p50'), 1)} / {_num(delay.get('p99'), 1)} "
                f"| {row['complete']}/{row['streams']} | {row['errors']} |"
            )
        ratios = data["ratios"]
        lines.append(
            f"\nServer CPU per 1k events: Redis / memory = {_num(ratios['redis_vs_memory'], 2)}× "
            f"(target ≤ {ratios['targets']['redis_vs_memory']}×); 2 processes / 1 = "
            f"{_num(ratios['two_vs_one_process'], 2)}× "
            f"(target ≤ {ratios['targets']['two_vs_one_process']}×).\n"
        )
    return "\n".join(lines)


def readme_section(results: dict[str, Any]) -> str | None:
    """The README's scale-out figures from a run with this part (``results`` is the
    whole ``results.json``): one table, both transports, each variant beside memory."""
    data = results.get("scaleout")
    if not data or "skipped" in data or not data.get("by_transport"):
        return None
    meta = results.get("meta", {})
    config = meta.get("config", {})
    rows = {t: {r["label"]: r for r in d["rows"]} for t, d in data["by_transport"].items()}
    labels = [label for label, _store, _processes in VARIANTS]
    names = {"sse": "SSE", "ws": "WebSocket"}

    def cpu_cell(transport: str, label: str) -> str:
        row = rows[transport].get(label)
        value = row.get("server_cpu_ms_per_1k_events") if row else None
        if value is None:
            return "—"
        # the ratios the part computed (_ratios): Redis against memory, 2 processes against 1
        ratios = data["by_transport"][transport]["ratios"]
        if label == "redis, 1 process" and ratios.get("redis_vs_memory"):
            return f"{value:.1f} ({ratios['redis_vs_memory']:.2f}×)"
        if label == "redis, 2 processes" and ratios.get("two_vs_one_process"):
            return f"{value:.1f} ({ratios['two_vs_one_process']:.2f}× of 1 process)"
        return f"{value:.1f}"

    def pair(key: str, digits: int, label: str, inner: str | None = None) -> str:
        values = []
        for transport in rows:
            row = rows[transport].get(label) or {}
            value = row.get(key)
            if inner is not None and isinstance(value, dict):
                value = value.get(inner)
            values.append(_num(value, digits))
        return " / ".join(values) if any(v != "—" for v in values) else "—"

    both = " / ".join(names[t] for t in rows)
    table = [
        f"| {data['streams']:,} streams | {' | '.join(labels)} |",
        "|---" * (len(labels) + 1) + "|",
        *(
            f"| {names[t]}: server CPU per 1k events (ms) | "
            + " | ".join(cpu_cell(t, label) for label in labels)
            + " |"
            for t in rows
        ),
        f"| redis-server CPU per 1k events (ms), {both} | "
        + " | ".join(pair("redis_cpu_ms_per_1k_events", 1, label) for label in labels)
        + " |",
        f"| Redis append calls per 1k events, {both} | "
        + " | ".join(pair("redis_appends_per_1k_events", 1, label) for label in labels)
        + " |",
        f"| delivery delay p50 (ms), {both} | "
        + " | ".join(pair("delivery_delay_ms", 1, label, "p50") for label in labels)
        + " |",
    ]
    every = [r for d in data["by_transport"].values() for r in d["rows"]]
    complete = all(r["complete"] == r["streams"] and not r["errors"] for r in every)
    outcome = (
        f"Every run delivered all {data['streams']:,} streams complete, without errors."
        if complete
        else "Not every run delivered all streams complete: "
        + "; ".join(
            f"{r['transport']} {r['label']}: {r['complete']}/{r['streams']} complete, "
            f"{r['errors']} errors"
            for r in every
            if r["complete"] != r["streams"] or r["errors"]
        )
        + "."
    )
    intro = (
        f"What it costs, from one run of `{meta.get('command') or 'python -m benchmarks scaleout'}`"
        f" ({str(meta.get('started', ''))[:10]}, {data['cpus']} cores of a shared "
        f"{meta.get('cpu_model')}, Python {meta.get('python')}, redis-server "
        f"{data['redis_server']} on loopback; {data['streams']:,} streams × "
        f"{_num(config.get('tokens_per_second'))} tokens/s, medians of one run; server CPU "
        "sums every twinstream process, redis-server's own CPU is apart):"
    )
    return "\n\n".join([intro, "\n".join(table), outcome])


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"
