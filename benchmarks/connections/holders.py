"""The client side: worker processes that open idle connections and hold them.

Each worker binds its connections to its own loopback source addresses, so
ephemeral ports never run out; the parent drives them over pipes.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import socket
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from ..clients import Endpoint, sse_path
from ..rawwire import HEAD_END, has_status, holds_an_event, http_request, status_line
from .plan import raise_fd_limit

__all__ = ["PORTS_PER_SOURCE", "HolderWorkers"]

#: ephemeral ports used per loopback source address (Linux offers ~28,000)
PORTS_PER_SOURCE = 16000
# Linux's IP_BIND_ADDRESS_NO_PORT: bind() picks the address only, connect() the port,
# so a source address's ports are shared across destinations (Python < 3.12 lacks it).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


async def _bound_socket(endpoint: Endpoint, source: str) -> socket.socket:
    """A connected, non-blocking socket bound to the loopback address ``source``."""
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
    head = await reader.readuntil(HEAD_END)
    if not has_status(head, 200):
        raise RuntimeError(status_line(head))
    body = b""
    # sse-starlette ends lines with CRLF, twinstream with LF
    while not holds_an_event(body):
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
                        http_request(
                            "GET",
                            sse_path(prompt, 8),
                            self.endpoint.host,
                            self.endpoint.port,
                            [("Accept", "text/event-stream")],
                        )
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


class HolderWorkers:
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
