"""The one place that reaches into Tornado's private attributes.

They are used where they are worth their speed: the relays write a few dozen
bytes per token to thousands of sockets, and Tornado's public path
(``IOStream.write``) allocates a Future, a done-callback and an event-loop
callback for every write. Here a write goes straight to the socket when
nothing is queued, and falls back to ``IOStream.write`` for the rest.

``missing()`` lists what this module needs and Tornado no longer has;
``tests/test_tornado_adapter.py`` fails loudly if it is not empty, and every
function falls back to the public API when an attribute is missing.
"""

from __future__ import annotations

import struct
from typing import Any

from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, StreamClosedError
from tornado.websocket import WebSocketProtocol13

__all__ = [
    "missing",
    "pending_bytes",
    "bytes_taken",
    "send",
    "wants_chunks",
    "chunk",
    "websocket_frame",
]

_TEXT = 0x81  # FIN + text opcode (RFC 6455 5.2)
_RSV1 = 0x40  # "compressed" bit of permessage-deflate (RFC 7692 6)


def missing() -> list[str]:
    """Private attributes this module relies on that this Tornado lacks."""
    probe: list[tuple[type, str]] = [
        (IOStream, "_write_buffer"),
        (IOStream, "_total_write_done_index"),
        (IOStream, "_connecting"),
        (HTTP1Connection, "_chunking_output"),
        (WebSocketProtocol13, "_compressor"),
        (WebSocketProtocol13, "_message_bytes_out"),
        (WebSocketProtocol13, "_wire_bytes_out"),
    ]
    absent = []
    for cls, name in probe:
        if not _has_instance_attribute(cls, name):
            absent.append(f"{cls.__name__}.{name}")
    return absent


def _has_instance_attribute(cls: type, name: str) -> bool:
    # Instance attributes are assigned in some __init__ (or a method) along the
    # MRO: look for the name among the attributes their code stores.
    for klass in cls.__mro__:
        if name in vars(klass):
            return True
        for member in vars(klass).values():
            code = getattr(member, "__code__", None)
            if code is not None and name in code.co_names:
                return True
    return False


def pending_bytes(stream: IOStream) -> int:
    """Bytes written to ``stream`` that the kernel has not taken yet."""
    buffer = getattr(stream, "_write_buffer", None)
    return len(buffer) if buffer is not None else 0


def bytes_taken(stream: IOStream) -> int:
    """How many queued bytes the kernel has taken so far (grows while a slow
    reader makes progress; stands still when it does not)."""
    return int(getattr(stream, "_total_write_done_index", 0))


def send(stream: IOStream, data: bytes) -> None:
    """Write ``data`` in order after anything already queued.

    When nothing is queued, ``socket.send`` takes what the kernel accepts and
    only the remainder goes through ``IOStream.write``. Raises
    StreamClosedError if the connection is closed or breaks.
    """
    if stream.closed():
        raise StreamClosedError(real_error=stream.error)
    if (
        type(stream) is not IOStream  # TLS streams have their own write path
        or getattr(stream, "_connecting", True)
        or getattr(stream, "_write_buffer", True)
    ):
        stream.write(data)
        return
    try:
        sent = stream.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError as exc:  # reset, broken pipe: the peer is gone
        stream.close(exc_info=exc)
        raise StreamClosedError(real_error=exc) from None
    if sent < len(data):
        stream.write(memoryview(data)[sent:])


def wants_chunks(connection: Any) -> bool:
    """True if the HTTP/1.1 response body on ``connection`` is sent with
    chunked transfer coding (an HTTP/1.0 response is delimited by closing)."""
    return bool(getattr(connection, "_chunking_output", True))


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def websocket_frame(connection: WebSocketProtocol13, data: bytes) -> bytes:
    """One unmasked server text frame carrying the UTF-8 ``data`` (RFC 6455
    5.2), compressed when permessage-deflate was negotiated."""
    connection._message_bytes_out += len(data)
    first = _TEXT
    compressor = connection._compressor
    if compressor is not None:
        data = compressor.compress(data)
        first |= _RSV1
    length = len(data)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 0x10000:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    frame = header + data
    connection._wire_bytes_out += len(frame)
    return frame
