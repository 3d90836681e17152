"""Churn: many clients cut at random, again and again, for minutes; nothing may be lost.

After AnyCable's published tests (10k clients force-closed about every 15 s,
offline about 2 s; delivery % and replay p99): ``churn_clients`` clients per
transport each stream completions back to back for ``churn_seconds``. Every
``churn_interval`` seconds a random ``churn_fraction`` of the connected clients is
cut by the server (``POST /debug/drop?stream=S`` -- the server closes the
connection, as a deploy or a load balancer would); a cut client stays offline for
a random time around ``churn_offline`` seconds, then reconnects and resumes (SSE:
``Last-Event-ID``; WebSocket: ``resume``).

Measured per transport: **delivery %** (distinct events received / events the
streams produced; must be 100), **duplicates** (events received twice; must be 0),
exact text, and **replay delay** -- from sending the resume to receiving the last
event produced while the client was away (the backlog fully replayed), p50/p99.

The clients run in worker processes (each with its own share of clients and its
own cutter); the server is one process. Then a **rolling restart**
(:func:`rolling_restart`): two server processes on one port sharing a store, each
restarted in turn under the same churn -- on one redis-server, then on a six-node
Redis Cluster (issue 24); the same measures.

Run alone: ``python -m benchmarks churn [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil
from tqdm import tqdm

from .clients import (
    Endpoint,
    HTTPStatusError,
    SSEConnection,
    expected_text,
    open_websocket,
    post,
    prompts_with_tokens,
    sse_path,
    start_or_resume,
)
from .cluster import store_server_command, worker_pids
from .config import SuiteConfig
from .redis_nodes import start_store
from .servers import TWINSTREAM, ResourceSampler, ServerProcess, ServerSpec
from .stats import summarize

__all__ = ["ChurnSpec", "ChurnStream", "run_churn", "rolling_restart"]


@dataclass(frozen=True)
class ChurnSpec:
    base_url: str
    transport: str
    prompts: tuple[str, ...]  # one client per prompt
    max_tokens: int
    seconds: float
    interval: float
    fraction: float
    offline: float
    seed: int
    start_at: float = 0.0


@dataclass
class ChurnStream:
    """One completion through however many connections it took."""

    prompt: str
    max_tokens: int
    stream_id: str | None = None
    receipts: list[int] = field(default_factory=list)
    contents: dict[int, str] = field(default_factory=dict)
    final_seq: int | None = None
    connections: int = 0
    error: str | None = None
    #: seconds from each resume request to the last event produced before it arrived
    replay_delays: list[float] = field(default_factory=list)
    _resumed_at: float | None = None
    _backlog_seen: bool = False
    _last_backlog: float = 0.0

    @property
    def last_seq(self) -> int:
        return self.receipts[-1] if self.receipts else -1

    @property
    def finished(self) -> bool:
        return self.final_seq is not None

    def resuming(self, at: float | None = None) -> None:
        """A resume is being sent now (or ``at``, a wall-clock time)."""
        self._resumed_at = time.time() if at is None else at
        self._backlog_seen = False

    def receive(self, event: dict[str, Any], at: float | None = None) -> None:
        """Record an event received now (or ``at``)."""
        now = time.time() if at is None else at
        seq = int(event["seq"])
        if self._resumed_at is not None:
            produced = float(event.get("t") or 0)
            if produced and produced < self._resumed_at:
                self._backlog_seen = True
                self._last_backlog = now
            elif self._backlog_seen:
                self.replay_delays.append(self._last_backlog - self._resumed_at)
                self._resumed_at = None
            else:  # nothing was produced while away: no backlog to replay
                self._resumed_at = None
        self.receipts.append(seq)
        if self.stream_id is None and event.get("stream"):
            self.stream_id = str(event["stream"])
        if event.get("type") == "delta":
            self.contents.setdefault(seq, str(event.get("content", "")))
        if event.get("type") in ("done", "error"):
            if self._resumed_at is not None and self._backlog_seen:
                self.replay_delays.append(self._last_backlog - self._resumed_at)
                self._resumed_at = None
            self.final_seq = seq

    def summary(self) -> dict[str, Any]:
        expected = (self.final_seq + 1) if self.final_seq is not None else len(set(self.receipts))
        text = "".join(self.contents[s] for s in sorted(self.contents))
        return {
            "expected": expected,
            "distinct": len(set(self.receipts)),
            "duplicated": len(self.receipts) - len(set(self.receipts)),
            "finished": self.finished,
            "exact_text": self.finished and text == expected_text(self.prompt, self.max_tokens),
            "connections": self.connections,
            "replay_delays": self.replay_delays,
            "error": self.error,
        }


class _Client:
    """One user: completions back to back; reconnects and resumes after every cut."""

    def __init__(self, spec: ChurnSpec, prompt: str, rng: random.Random) -> None:
        self.spec = spec
        self.endpoint = Endpoint(spec.base_url)
        self.prompt = prompt
        self.rng = rng
        self.current: ChurnStream | None = None
        self.connected = False
        self.streams: list[ChurnStream] = []

    async def run(self, until: float) -> None:
        while time.time() < until:
            stream = ChurnStream(self.prompt, self.spec.max_tokens)
            self.current = stream
            self.streams.append(stream)
            await self._one(stream, give_up=until + 120)

    async def _one(self, stream: ChurnStream, give_up: float) -> None:
        while not stream.finished and time.time() < give_up:
            if stream.connections:
                self.connected = False
                # offline for a while, as a phone between cells would be
                await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.spec.offline)
                stream.resuming()
            stream.connections += 1
            try:
                if self.spec.transport == "sse":
                    await self._sse(stream)
                else:
                    await self._ws(stream)
            except HTTPStatusError as exc:
                stream.error = str(exc)
                return
            except Exception:  # the cut: OSError, IncompleteRead, ConnectionClosed...
                pass
            finally:
                self.connected = False
        if not stream.finished:
            stream.error = stream.error or "did not finish"

    async def _sse(self, stream: ChurnStream) -> None:
        connection = SSEConnection(self.endpoint)
        last_id = f"{stream.stream_id}:{stream.last_seq}" if stream.stream_id else None
        try:
            async for _event_id, data in connection.events(
                sse_path(stream.prompt, stream.max_tokens), last_id
            ):
                self.connected = True
                stream.receive(json.loads(data))
                if stream.finished:
                    return
        finally:
            connection.abort()

    async def _ws(self, stream: ChurnStream) -> None:
        websocket = await open_websocket(self.endpoint)
        try:
            request = start_or_resume(
                stream.stream_id, stream.prompt, stream.max_tokens, stream.last_seq
            )
            await websocket.send(json.dumps(request))
            async for message in websocket:
                self.connected = True
                event = json.loads(message)
                if event.get("type") == "error" and event.get("seq") is None:
                    stream.error = f"{event.get('code')}: {event.get('message')}"
                    stream.final_seq = stream.last_seq
                    return
                stream.receive(event)
                if stream.finished:
                    return
        finally:
            websocket.transport.abort()


async def _churn(spec: ChurnSpec) -> tuple[list[dict[str, Any]], int]:
    if spec.start_at:
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
    rng = random.Random(spec.seed)
    clients = [_Client(spec, p, random.Random(rng.random())) for p in spec.prompts]
    until = time.time() + spec.seconds
    endpoint = Endpoint(spec.base_url)
    tasks = [asyncio.ensure_future(c.run(until)) for c in clients]
    cuts = 0
    while time.time() < until:
        await asyncio.sleep(spec.interval)
        live = [c for c in clients if c.connected and c.current and c.current.stream_id]
        chosen = rng.sample(live, min(len(live), round(spec.fraction * len(clients))))
        results = await asyncio.gather(
            *(
                post(endpoint, f"/debug/drop?stream={c.current.stream_id}")
                for c in chosen
                if c.current
            ),
            return_exceptions=True,
        )
        cuts += sum(1 for r in results if isinstance(r, tuple) and r[0] == 200)
    await asyncio.gather(*tasks)
    return [s.summary() for c in clients for s in c.streams], cuts


def _worker(spec: ChurnSpec) -> tuple[list[dict[str, Any]], int, float]:
    cpu = time.process_time()
    streams, cuts = asyncio.run(_churn(spec))
    return streams, cuts, time.process_time() - cpu


def _summarize(streams: list[dict[str, Any]], cuts: int) -> dict[str, Any]:
    expected = sum(s["expected"] for s in streams)
    distinct = sum(s["distinct"] for s in streams)
    delays = [d for s in streams for d in s["replay_delays"]]
    return {
        "streams": len(streams),
        "finished": sum(1 for s in streams if s["finished"]),
        "exact_text": sum(1 for s in streams if s["exact_text"]),
        "errors": sum(1 for s in streams if s["error"]),
        "error_examples": sorted({s["error"] for s in streams if s["error"]})[:3],
        "cuts": cuts,
        "connections": sum(s["connections"] for s in streams),
        "events_expected": expected,
        "events_distinct": distinct,
        "delivery_percent": round(100.0 * distinct / expected, 3) if expected else None,
        "duplicated": sum(s["duplicated"] for s in streams),
        "replays": len(delays),
        "replay_delay_ms": summarize(delays, 1000.0),
    }


def _drive_clients(
    config: SuiteConfig,
    url: str,
    max_tokens: int,
    server_pid: int | None,
    progress: bool,
    on_tick: Callable[[float], None] | None = None,
    tag: str = "churn",
) -> dict[str, Any]:
    """Both transports' churning clients against ``url``, in worker processes;
    ``on_tick(elapsed)`` is called about twice a second meanwhile."""
    results: dict[str, Any] = {"transports": {}}
    workers = max(1, config.workers)
    with ProcessPoolExecutor(
        max_workers=2 * workers, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        start_at = time.time() + 1.5  # the workers' start-up is not in the measure
        futures: dict[str, list[Any]] = {}
        for t_index, transport in enumerate(("sse", "ws")):
            prompts = prompts_with_tokens(config.churn_clients, max_tokens, f"{tag}-{transport}")
            futures[transport] = [
                pool.submit(
                    _worker,
                    ChurnSpec(
                        base_url=url,
                        transport=transport,
                        prompts=tuple(prompts[w::workers]),
                        max_tokens=max_tokens,
                        seconds=config.churn_seconds,
                        interval=config.churn_interval,
                        fraction=config.churn_fraction,
                        offline=config.churn_offline,
                        seed=config.seed * 100 + t_index * 10 + w,
                        start_at=start_at,
                    ),
                )
                for w in range(workers)
                if prompts[w::workers]
            ]
        with (
            ResourceSampler(server_pid) as sampler,
            tqdm(
                total=config.churn_seconds,
                desc=tag,
                unit="s",
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            began = time.time()
            while not all(f.done() for fs in futures.values() for f in fs):
                time.sleep(0.5)
                if on_tick is not None:
                    on_tick(time.time() - start_at)
                bar.n = min(config.churn_seconds, round(time.time() - began, 1))
                bar.refresh()
            ended = time.time()
        client_cpu = 0.0
        for transport, fs in futures.items():
            streams: list[dict[str, Any]] = []
            cuts = 0
            for future in fs:
                got, made, cpu = future.result()
                streams.extend(got)
                cuts += made
                client_cpu += cpu
            results["transports"][transport] = _summarize(streams, cuts)
    results["server_cpu_percent"] = sampler.cpu_percent_between(began, ended)
    results["machine_cpu_percent"] = sampler.machine_cpu_percent_between(began, ended)
    results["client_cpu_percent"] = round(100 * client_cpu / max(1e-9, ended - began), 1)
    return results


def rolling_restart(
    config: SuiteConfig, progress: bool = False, store: str = "redis"
) -> dict[str, Any]:
    """Two server processes sharing one store (``--processes 2``, one port) --
    ``redis``: one redis-server; ``redis-cluster``: a six-node Redis Cluster --
    each restarted in turn (SIGTERM: it drains, its parent starts a new one)
    while the churning clients run; the same measures as the churn."""
    if shutil.which("redis-server") is None:
        return {"run": False, "reason": "redis-server is not installed", "store": store}
    max_tokens = 120
    try:
        redis_server = start_store(store)
    except RuntimeError as exc:
        return {"run": False, "reason": str(exc), "store": store}
    try:
        with ServerProcess(store_server_command(config, redis_server.url, 2)) as server:
            original = worker_pids(server, 2)
            due = [config.churn_seconds * (i + 1) / 3 for i in range(2)]
            restarted: list[dict[str, Any]] = []

            def restart_in_turn(elapsed: float) -> None:
                if due and elapsed >= due[0]:
                    due.pop(0)
                    pid = original[len(restarted)]
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        return
                    restarted.append({"pid": pid, "at_s": round(elapsed, 1)})

            results = _drive_clients(
                config,
                server.url,
                max_tokens,
                server.pid,
                progress,
                on_tick=restart_in_turn,
                tag=f"rolling-{store}",
            )
            assert server.pid is not None
            now_serving = [child.pid for child in psutil.Process(server.pid).children()]
    finally:
        redis_server.stop()
    results.update(
        run=True,
        reason=f"{len(restarted)} of 2 workers restarted in turn (SIGTERM, drain, replaced); "
        f"{sum(1 for pid in now_serving if pid not in original)} new workers serving at the end",
        restarts=restarted,
        store=store,
        processes=2,
    )
    return results


def run_churn(
    config: SuiteConfig, spec: ServerSpec = TWINSTREAM, progress: bool = True
) -> dict[str, Any]:
    """Both transports at once against one server, clients split over worker
    processes; then the same against two processes restarted in turn, on one
    redis-server (``rolling_restart``) and on a Redis Cluster
    (``rolling_restart_cluster``)."""
    max_tokens = 120  # 4 s at 30 tokens/s: several streams per client, several cuts each
    server = ServerProcess(spec.command(config.tokens_per_second, config.first_token_latency))
    results: dict[str, Any] = {
        "server": spec.name,
        "clients_per_transport": config.churn_clients,
        "seconds": config.churn_seconds,
        "interval_s": config.churn_interval,
        "fraction": config.churn_fraction,
        "offline_s": config.churn_offline,
        "max_tokens": max_tokens,
        "cut_by": "server (POST /debug/drop)",
    }
    with server:
        results.update(_drive_clients(config, server.url, max_tokens, server.pid, progress))
    results["rolling_restart"] = rolling_restart(config, progress=progress)
    results["rolling_restart_cluster"] = rolling_restart(config, progress, "redis-cluster")
    return results
