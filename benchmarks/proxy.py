"""A small TCP proxy that counts wire bytes, can cut connections and can hold bytes
to stand in for a slow network.

Put between a client and a server, it counts every byte each way per
connection -- the real wire payload, headers and framing included, not JSON
lengths -- and :meth:`CountingProxy.cut` drops a connection abruptly on both
sides. To the client, a cut looks exactly like the server (or the network)
dropping it; no server change is needed.

With an :class:`Impairment` it also holds the bytes of each direction for half a
round-trip time (plus jitter), keeping their order, and stops both directions
during *stalls* -- what a lost segment and its retransmission look like to an
application. A new connection's first byte upstream waits one extra round trip,
standing in for TCP's SYN / SYN-ACK. What it cannot emulate: TCP's own reaction
to loss (the kernel between proxy and server sees a clean link), slow start over
a long RTT, and TLS round trips. Bandwidth is not shaped here: the kernel does
that (``tbf``, see :mod:`benchmarks.links`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from dataclasses import dataclass, field

__all__ = ["Impairment", "StallSchedule", "ProxiedConnection", "CountingProxy"]


@dataclass(frozen=True)
class Impairment:
    """What the proxy adds to every connection: delay, jitter, stalls."""

    rtt: float = 0.0  # seconds; each direction holds bytes for rtt / 2
    jitter: float = 0.0  # extra one-way delay, uniform in [0, jitter] seconds
    stall_every: float = 0.0  # mean seconds between stalls (0: none)
    stall_for: float = 0.0  # seconds a stall holds both directions
    handshake_rtt: bool = True  # a new connection's first byte waits one more RTT (TCP's)

    @property
    def active(self) -> bool:
        return self.rtt > 0 or self.jitter > 0 or (self.stall_every > 0 and self.stall_for > 0)


class StallSchedule:
    """Stall windows on the whole link (every connection, both directions), drawn
    lazily from a seeded Poisson process so a run can be repeated."""

    def __init__(self, every: float, length: float, seed: int = 0, start: float = 0.0) -> None:
        self.every = every
        self.length = length
        self._rng = random.Random(seed)
        self._windows: list[tuple[float, float]] = []
        self._next = start
        self.count = 0

    def release_time(self, moment: float) -> float:
        """``moment``, or the end of the stall it falls in."""
        if self.every <= 0 or self.length <= 0:
            return moment
        while self._next <= moment + self.length:
            begin = self._next + self._rng.expovariate(1.0 / self.every)
            self._windows.append((begin, begin + self.length))
            self._next = begin + self.length
        self._windows = [w for w in self._windows if w[1] > moment - 60]
        for begin, end in self._windows:
            if begin <= moment < end:
                return end
        return moment

    def stalls_between(self, start: float, end: float) -> int:
        return sum(1 for begin, _ in self._windows if start <= begin < end)


@dataclass
class ProxiedConnection:
    client_port: int
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client
    cut: bool = False
    _transports: list[asyncio.WriteTransport] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)


class CountingProxy:
    """``async with CountingProxy(host, port) as proxy:`` then connect to ``proxy.port``."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        impairment: Impairment | None = None,
        seed: int = 0,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.impairment = impairment if impairment is not None and impairment.active else None
        self._rng = random.Random(seed)
        self.stalls: StallSchedule | None = None
        if self.impairment is not None:
            self.stalls = StallSchedule(
                self.impairment.stall_every, self.impairment.stall_for, seed=seed
            )
        self.connections: list[ProxiedConnection] = []
        self._by_port: dict[int, ProxiedConnection] = {}
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.stalls is not None:
            self.stalls._next = asyncio.get_running_loop().time()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for connection in self.connections:
            self._abort(connection)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def bytes_up(self) -> int:
        return sum(c.bytes_up for c in self.connections)

    @property
    def bytes_down(self) -> int:
        return sum(c.bytes_down for c in self.connections)

    def reset_counts(self) -> None:
        self.connections = [c for c in self.connections if not c.cut and c._transports]
        for connection in self.connections:
            connection.bytes_up = connection.bytes_down = 0

    def cut(self, client_port: int) -> bool:
        """Drop the connection whose client side uses ``client_port``; True if found."""
        connection = self._by_port.get(client_port)
        if connection is None or connection.cut:
            return False
        connection.cut = True
        self._abort(connection)
        return True

    @staticmethod
    def _abort(connection: ProxiedConnection) -> None:
        for transport in connection._transports:
            transport.abort()  # RST, no goodbye
        for task in connection._tasks:
            task.cancel()

    async def _handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        peer = client_writer.get_extra_info("peername")
        connection = ProxiedConnection(client_port=peer[1] if peer else 0)
        self.connections.append(connection)
        self._by_port[connection.client_port] = connection
        try:
            server_reader, server_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            client_writer.transport.abort()
            return
        for writer in (client_writer, server_writer):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection._transports = [client_writer.transport, server_writer.transport]
        if self.impairment is None:
            up = asyncio.ensure_future(self._pump(client_reader, server_writer, connection, True))
            down = asyncio.ensure_future(
                self._pump(server_reader, client_writer, connection, False)
            )
        else:
            loop = asyncio.get_running_loop()
            # the client could not have sent before TCP's own handshake round trip
            handshake = self.impairment.rtt if self.impairment.handshake_rtt else 0.0
            not_before = loop.time() + handshake
            up = asyncio.ensure_future(
                self._delayed_pump(client_reader, server_writer, connection, True, not_before)
            )
            down = asyncio.ensure_future(
                self._delayed_pump(server_reader, client_writer, connection, False, 0.0)
            )
        connection._tasks = [up, down]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(up, down, return_exceptions=True)
        self._by_port.pop(connection.client_port, None)
        for writer in (client_writer, server_writer):
            writer.close()

    def _release_time(self, arrived: float, not_before: float, previous: float) -> float:
        """When a piece that ``arrived`` now leaves: half an RTT (plus jitter) after it
        was sent -- not before ``not_before`` (TCP's handshake) -- never before the
        piece ahead of it (TCP delivers in order), and not during a stall."""
        impairment = self.impairment
        assert impairment is not None and self.stalls is not None
        due = max(arrived, not_before) + impairment.rtt / 2
        if impairment.jitter > 0:
            due += self._rng.uniform(0.0, impairment.jitter)
        return self.stalls.release_time(max(due, previous))

    async def _delayed_pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: ProxiedConnection,
        up: bool,
        not_before: float,
    ) -> None:
        """Read as bytes arrive, write each piece at its release time, in order."""
        loop = asyncio.get_running_loop()
        held: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def release() -> None:
            while (item := await held.get()) is not None:
                due, data = item
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        releaser = asyncio.ensure_future(release())
        previous = 0.0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if up:
                    connection.bytes_up += len(data)
                else:
                    connection.bytes_down += len(data)
                previous = self._release_time(loop.time(), not_before, previous)
                held.put_nowait((previous, data))
            held.put_nowait(None)
            await releaser
        except (ConnectionError, OSError):
            pass
        finally:
            releaser.cancel()
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: ProxiedConnection,
        up: bool,
    ) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if up:
                    connection.bytes_up += len(data)
                else:
                    connection.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # half-close politely when the other side finished normally
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()
