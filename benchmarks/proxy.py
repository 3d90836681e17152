"""A small TCP proxy that counts wire bytes and can cut connections.

Put between a client and a server (both on loopback), it counts every byte
each way per connection -- the real wire payload, headers and framing
included, not JSON lengths -- and :meth:`CountingProxy.cut` drops a
connection abruptly on both sides. To the client, a cut looks exactly like the
server (or the network) dropping it; no server change is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

__all__ = ["ProxiedConnection", "CountingProxy"]


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

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.connections: list[ProxiedConnection] = []
        self._by_port: dict[int, ProxiedConnection] = {}
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
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
        up = asyncio.ensure_future(self._pump(client_reader, server_writer, connection, up=True))
        down = asyncio.ensure_future(self._pump(server_reader, client_writer, connection, up=False))
        connection._tasks = [up, down]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(up, down, return_exceptions=True)
        self._by_port.pop(connection.client_port, None)
        for writer in (client_writer, server_writer):
            writer.close()

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
