"""Clients on raw sockets, for tests that must see the bytes a server sends: whether a
chunked body ends with its last chunk, which close frame (if any) ends a WebSocket.
Requests and frames are built, and responses parsed, by the benchmarks' pure codec
(``benchmarks.rawwire``); these helpers only move bytes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from typing import Any

from benchmarks import rawwire

HOST = "127.0.0.1"


class RawConnection:
    """One TCP connection and everything read from it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.data = bytearray()

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        """Send ``data``; a peer that closes first (refusing a body from its
        Content-Length, say) is not an error here: its answer is read after."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass

    async def read_some(self, timeout: float) -> bytes:
        chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
        self.data += chunk
        return chunk

    async def read_until(self, marker: bytes, timeout: float) -> None:
        """Read until ``marker`` is among the bytes read (TimeoutError if not)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while marker not in self.data:
            if not await self.read_some(max(0.01, deadline - loop.time())):
                raise EOFError(f"closed before {marker!r}")

    async def read_to_end(self, timeout: float) -> bytes:
        """Read until the peer closes (TimeoutError if it does not in time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while await self.read_some(max(0.01, deadline - loop.time())):
                pass
        except ConnectionResetError:
            pass  # what arrived before the reset is in self.data
        return bytes(self.data)

    def close(self) -> None:
        self.writer.close()


async def open_sse(port: int, query: str) -> RawConnection:
    """``GET /sse?QUERY``, its response head read."""
    connection = await RawConnection.open(port)
    await connection.send(rawwire.http_request("GET", f"/sse?{query}", HOST, port))
    await connection.read_until(rawwire.HEAD_END, 10)
    return connection


async def post_json(
    port: int, path: str, body: Any, raw: bytes | None = None, close: bool = True
) -> RawConnection:
    """``POST PATH`` with a JSON body (or ``raw`` bytes)."""
    payload = raw if raw is not None else json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    if close:
        headers.append(("Connection", "close"))
    connection = await RawConnection.open(port)
    await connection.send(rawwire.http_request("POST", path, HOST, port, headers) + payload)
    return connection


def client_frame(first_byte: int, payload: bytes) -> bytes:
    """A masked client frame with the given first byte (FIN, RSV bits, opcode) and
    an all-zero mask, so the payload goes as it is (RFC 6455 5.3: XOR with 0)."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first_byte, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first_byte, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first_byte, 0x80 | 127, length)
    return head + b"\x00\x00\x00\x00" + payload


def text_frame(text: str | bytes) -> bytes:
    payload = text.encode() if isinstance(text, str) else text
    return client_frame(0x81, payload)


async def open_ws(port: int, path: str = "/ws") -> RawConnection:
    """A WebSocket after its handshake; ``data`` then holds only frames."""
    connection = await RawConnection.open(port)
    key = base64.b64encode(os.urandom(16)).decode()
    await connection.send(rawwire.ws_upgrade_request(HOST, port, key, path))
    await connection.read_until(rawwire.HEAD_END, 10)
    end = rawwire.head_end(bytes(connection.data))
    head = bytes(connection.data[: end - len(rawwire.HEAD_END)])
    assert rawwire.has_status(head, 101), rawwire.status_line(head)
    del connection.data[:end]
    return connection


def sse_events(body: bytes) -> list[dict[str, Any]]:
    """The JSON of every ``data:`` line of an event stream (``[DONE]`` left out)."""
    out = []
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out
