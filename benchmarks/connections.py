"""Connections: server memory per idle open connection, at 10,000 connections.

What it measures, per server and transport, on a fresh server each time:

* **SSE** -- an idle connection is an open ``GET /sse`` response whose stream has
  sent its ``start`` event but not its first token yet (the model's first-token wait
  is set far beyond the test). This is the same definition as the throughput part's
  *memory per open connection*; over SSE a connection cannot exist without a stream.
* **WebSocket** -- an idle connection is an open ``/ws`` socket with no stream
  (handshake done, nothing sent). The throughput part's measure covers a socket with
  a started stream.

Connections are opened in a few steps; after each step the server's RSS is read
several times and the median kept. *Memory per connection* is (median RSS with all
of them open - median RSS before) / connections; the per-step figures show whether
growth is linear. Targets from issue 8: at most 16 KiB (WebSocket) and 20 KiB (SSE).

Holding 10,000 connections needs 10,000 file descriptors in the server and as many
in the clients: the suite raises its soft ``RLIMIT_NOFILE`` to the hard limit (the
server subprocesses and the client worker processes inherit it, and each worker
raises its own again), and opens fewer connections, saying so, when even the hard
limit is too low. Clients run in worker processes, each binding its connections to
its own loopback source address (127.0.0.2, 127.0.0.3, ...), so ephemeral ports
(about 28,000 per source address and destination) never run out.

Run alone: ``python -m benchmarks connections [--quick]``.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import resource
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import psutil
from tqdm import tqdm

from .clients import Endpoint, prompts_with_tokens, sse_path
from .config import SuiteConfig
from .servers import PEER_SPECS, TWINSTREAM, ServerProcess, ServerSpec

__all__ = [
    "ConnectionsPlan",
    "PLANS",
    "TARGETS_KIB",
    "raise_fd_limit",
    "connection_budget",
    "idle_connection_memory",
    "run_connections",
    "summary_rows",
    "report_section",
]

#: issue 8's targets, KiB of server memory per idle open connection
TARGETS_KIB = {"ws": 16.0, "sse": 20.0}
#: file descriptors the server and each client process need beyond the connections
FD_MARGIN = 200
#: ephemeral ports used per loopback source address (Linux offers ~28,000)
PORTS_PER_SOURCE = 16000
# Linux's IP_BIND_ADDRESS_NO_PORT: bind() picks the address only, connect() the port,
# so a source address's ports are shared across destinations (Python < 3.12 lacks it).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


@dataclass(frozen=True)
class ConnectionsPlan:
    """How many connections, opened in how many steps, RSS read how often per step."""

    connections: int
    steps: int
    samples: int


PLANS = {
    "tiny": ConnectionsPlan(connections=40, steps=2, samples=3),
    "quick": ConnectionsPlan(connections=500, steps=2, samples=3),
    "full": ConnectionsPlan(connections=10000, steps=4, samples=5),
}


def plan_for(config: SuiteConfig) -> ConnectionsPlan:
    return PLANS.get(config.name, PLANS["full"])


def raise_fd_limit() -> dict[str, int]:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit (children inherit
    it); returns ``{"before": soft, "soft": new soft, "hard": hard}``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return {"before": before, "soft": soft, "hard": hard}
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        # 1 << 20 can exceed fs.nr_open when the hard limit is unlimited
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, 1 << 16), hard))
        except (ValueError, OSError):
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {"before": before, "soft": soft, "hard": hard}


# -- the client side: worker processes -------------------------------------------------


async def _bound_socket(endpoint: Endpoint, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (endpoint.host, endpoint.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except BaseException:
        sock.close()
        raise


async def _read_first_event(reader: asyncio.StreamReader) -> None:
    """Read a ``200`` response head and up to the end of its first event (``start``)."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode("latin-1"))
    body = b""
    # sse-starlette ends lines with CRLF, twinstream with LF
    while b"\n\n" not in body and b"\r\n\r\n" not in body:
        chunk = await reader.read(4096)
        if not chunk:
            raise ConnectionError("the response ended before its first event")
        body += chunk


class _Holder:
    """Opens idle connections and keeps them until told to close them."""

    def __init__(self, endpoint: Endpoint, transport: str, sources: Sequence[str]) -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.sources = list(sources)
        self.held: list[Any] = []
        self.errors: list[str] = []
        self.opened_total = 0
        self._gate = asyncio.Semaphore(64)  # the server's listen backlog is small (128)

    async def _open_one(self, index: int, prompt: str) -> None:
        source = self.sources[index // PORTS_PER_SOURCE % len(self.sources)]
        async with self._gate:
            try:
                sock = await asyncio.wait_for(_bound_socket(self.endpoint, source), 30)
                if self.transport == "ws":
                    from websockets.asyncio.client import connect as ws_connect

                    # the library answers the server's pings, so keepalive holds
                    websocket = await ws_connect(
                        self.endpoint.ws_url,
                        sock=sock,
                        compression=None,
                        ping_interval=None,
                        open_timeout=30,
                        close_timeout=1,
                        max_size=None,
                    )
                    self.held.append((websocket, websocket.transport))
                else:
                    reader, writer = await asyncio.open_connection(sock=sock)
                    # kept first, so it is closed even after a bad answer; a StreamWriter
                    # that is garbage-collected closes its connection
                    self.held.append((writer, writer.transport))
                    writer.write(
                        (
                            f"GET {sse_path(prompt, 8)} HTTP/1.1\r\n"
                            f"Host: {self.endpoint.host}:{self.endpoint.port}\r\n"
                            "Accept: text/event-stream\r\n\r\n"
                        ).encode("ascii")
                    )
                    await asyncio.wait_for(_read_first_event(reader), 30)
                self.opened_total += 1
            except Exception as exc:  # refused, reset, timed out, wrong answer
                if len(self.errors) < 5:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    self.errors.append("")

    async def open(self, prompts: Sequence[str]) -> None:
        start = len(self.held) + len(self.errors)
        await asyncio.gather(*(self._open_one(start + i, p) for i, p in enumerate(prompts)))

    async def close(self) -> None:
        for _owner, transport in self.held:
            transport.abort()
        self.held.clear()
        await asyncio.sleep(0)


def _holder_worker(
    pipe: Connection, base_url: str, transport: str, sources: list[str], prompts: list[str]
) -> None:
    """A worker process: on ``("open", n)`` open ``n`` more connections and answer
    ``(opened so far, errors)``; on ``("close",)`` close them all and exit."""
    limits = raise_fd_limit()

    async def serve() -> None:
        holder = _Holder(Endpoint(base_url), transport, sources)
        loop = asyncio.get_running_loop()
        pipe.send(("ready", limits))
        used = 0
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command[0] == "open":
                batch = prompts[used : used + command[1]]
                used += len(batch)
                await holder.open(batch)
                pipe.send(("opened", holder.opened_total, [e for e in holder.errors if e]))
            else:
                await holder.close()
                pipe.send(("closed", time.process_time()))
                return

    asyncio.run(serve())


class _Workers:
    """The client worker processes of one measurement."""

    def __init__(
        self, base_url: str, transport: str, connections: int, workers: int, prompts: list[str]
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.shares = [len(range(w, connections, workers)) for w in range(workers)]
        self.pipes: list[Connection] = []
        self.processes = []
        next_source = 2
        for worker, share in enumerate(self.shares):
            count = max(1, math.ceil(share / PORTS_PER_SOURCE))
            sources = [f"127.0.0.{next_source + i}" for i in range(count)]
            next_source += count
            parent, child = context.Pipe()
            process = context.Process(
                target=_holder_worker,
                args=(child, base_url, transport, sources, prompts[worker::workers]),
                daemon=True,
            )
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
        self.limits = [self._recv(pipe, 60)[1] for pipe in self.pipes]

    def _recv(self, pipe: Connection, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        process = self.processes[self.pipes.index(pipe)]
        while not pipe.poll(0.2):
            if not process.is_alive():
                raise RuntimeError(f"a connection worker exited with {process.exitcode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"a connection worker did not answer within {timeout:.0f} s")
        return pipe.recv()

    def open(self, per_worker: Sequence[int], timeout: float) -> tuple[int, list[str]]:
        for pipe, count in zip(self.pipes, per_worker):
            pipe.send(("open", count))
        opened, errors = 0, []
        for pipe in self.pipes:
            _, count, worker_errors = self._recv(pipe, timeout)
            opened += count
            errors += worker_errors
        return opened, errors

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("close",))
            except OSError:
                pass
        for pipe in self.pipes:
            try:
                self._recv(pipe, 60)
            except (RuntimeError, EOFError, OSError):
                pass
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)


def connection_budget(wanted: int, limits: dict[str, int]) -> tuple[int, str | None]:
    """How many of ``wanted`` connections the file-descriptor limit allows (the server
    holds one descriptor per connection, each client worker its share), and a note
    saying so when that is fewer."""
    count = min(wanted, max(0, limits["soft"] - FD_MARGIN))
    if count == wanted:
        return count, None
    return count, (
        f"the file-descriptor limit ({limits['soft']}, hard {limits['hard']}) allows "
        f"{count} of the {wanted} connections asked for"
    )


def _median_rss(process: psutil.Process, samples: int) -> int:
    values = []
    for index in range(samples):
        if index:
            time.sleep(0.2)
        values.append(process.memory_info().rss)
    return int(statistics.median(values))


def _server_command(spec: ServerSpec, config: SuiteConfig, connections: int) -> list[str]:
    # a first-token wait far beyond the test: every SSE stream stays before its first token
    command = spec.command(config.tokens_per_second or 30.0, 3600.0)
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
        pool = _Workers(server.url, transport, count + 1, workers, prompts)
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


# -- report ---------------------------------------------------------------------------


def _entry(results: dict[str, Any], server: str, transport: str) -> dict[str, Any] | None:
    entry = results.get("connections", {}).get(server, {}).get("transports", {}).get(transport)
    return entry if isinstance(entry, dict) else None


def summary_rows(results: dict[str, Any]) -> list[tuple[str, Any, Any, Any, Any]]:
    """Rows for the headline table: (label, twinstream SSE, twinstream WS, sse-starlette,
    websockets)."""
    columns = [
        ("twinstream", "sse"),
        ("twinstream", "ws"),
        ("sse-starlette", "sse"),
        ("websockets", "ws"),
    ]
    entries = [_entry(results, s, t) for s, t in columns]
    if not any(entries):
        return []
    count = next(e["attempted"] for e in entries if e)
    values = [e.get("memory_per_connection_kib") if e else None for e in entries]
    return [
        (
            f"Memory per idle connection, {count:,} connections (KiB; target ≤20 SSE, ≤16 WS)",
            values[0],
            values[1],
            values[2],
            values[3],
        )
    ]


def report_section(results: dict[str, Any]) -> str:
    """The report's section for this part (empty when it did not run)."""
    data = results.get("connections")
    if not data:
        return ""
    rows = []
    notes = []
    reference = {"sse": "sse-starlette", "ws": "websockets"}
    for server, block in data.items():
        for transport, e in block.get("transports", {}).items():
            value = e.get("memory_per_connection_kib")
            peer = (
                _entry(results, reference[transport], transport)
                if server != reference[transport]
                else None
            )
            peer_value = peer.get("memory_per_connection_kib") if peer else None
            rows.append(
                [
                    server,
                    transport,
                    e["definition"],
                    f"{e['opened']:,}/{e['connections']:,}",
                    f"{e['server_idle_rss_mib']:.1f} → {e['server_open_rss_mib']:.1f}",
                    " / ".join(f"{v:.1f}" for v in e["step_kib_per_connection"]),
                    "—" if value is None else f"{value:.1f}",
                    f"{value / peer_value:.2f}×" if value and peer_value else "—",
                    f"≤{e['target_kib']:.0f}" if server == "twinstream" else "—",
                    ("yes" if e["meets_target"] else "no") if server == "twinstream" else "—",
                ]
            )
            if e.get("note"):
                notes.append(f"{server} {transport}: {e['note']}.")
            if e.get("error_examples"):
                notes.append(f"{server} {transport} errors: {'; '.join(e['error_examples'])}")
    header = [
        "Server",
        "Transport",
        "Idle connection",
        "Open",
        "RSS MiB",
        "KiB/connection per step",
        "KiB/connection",
        "vs reference (same transport)",
        "Target",
        "Met",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    limits: dict[str, Any] = next(
        (e["fd_limit"] for b in data.values() for e in b.get("transports", {}).values()), {}
    )
    intro = (
        "Connections opened on a fresh server in steps, from worker processes bound to "
        "their own loopback source addresses; after each step the server's RSS is read "
        "several times and the median kept. KiB/connection = (RSS with all open − RSS "
        "before) / open connections. The suite raised its file-descriptor limit from "
        f"{limits.get('before', '?')} to {limits.get('soft', '?')} (hard "
        f"{limits.get('hard', '?')}); servers and workers inherit it. Targets from issue 8."
    )
    return "\n\n".join(
        ["## Memory per idle connection", intro, "\n".join(lines)]
        + (["\n".join(f"- {n}" for n in notes)] if notes else [])
    )
