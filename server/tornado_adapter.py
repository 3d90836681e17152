"""The one place that reaches into Tornado's private attributes.

They are used where they are worth their speed: the relays write a few dozen
bytes per token to thousands of sockets, and Tornado's public path
(``IOStream.write``) allocates a Future, a done-callback and an event-loop
callback for every write. Here a write goes straight to the socket when
nothing is queued, and falls back to ``IOStream.write`` for the rest.

``missing()`` lists what this module needs and Tornado no longer has;
``tests/server/test_tornado_adapter.py`` fails loudly if it is not empty, and every
function falls back to the public API when an attribute is missing.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Collection
from typing import Any

import tornado.httpserver
import tornado.websocket
from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, StreamClosedError
from tornado.tcpserver import TCPServer
from tornado.web import RequestHandler
from tornado.websocket import WebSocketHandler, WebSocketProtocol13

from .core.relay import TransportClosed
from .wire.websocket import text_frame

__all__ = [
    "missing",
    "IOStreamTransport",
    "wants_chunks",
    "chunk",
    "websocket_frame",
    "add_listening_socket",
    "listening_port",
    "proxy_adapter",
    "wrap_header_parser",
    "unwrap_header_parser",
    "share_trusted_downstream",
    "unapply_xheaders",
    "no_output_transforms",
    "keep_response_open",
    "trim_headers",
    "forget_response_headers",
    "LeanWebSocketHandler",
]


def missing() -> list[str]:
    """Private attributes this module relies on that this Tornado lacks."""
    probe: list[tuple[type, str]] = [
        (IOStream, "_write_buffer"),
        (IOStream, "_total_write_index"),
        (IOStream, "_total_write_done_index"),
        (IOStream, "_connecting"),
        (HTTP1Connection, "_chunking_output"),
        (WebSocketProtocol13, "_compressor"),
        (WebSocketProtocol13, "_message_bytes_out"),
        (WebSocketProtocol13, "_wire_bytes_out"),
        (TCPServer, "_sockets"),
        (TCPServer, "_handlers"),
        (HTTP1Connection, "_parse_headers"),
        (httputil.HTTPHeaders, "_as_list"),
        (httputil.HTTPHeaders, "_combined_cache"),
        (RequestHandler, "_headers"),
        (RequestHandler, "_headers_written"),
        (RequestHandler, "_auto_finish"),
        (RequestHandler, "_transforms"),
        (WebSocketHandler, "_detach_stream"),
        (WebSocketProtocol13, "_handle_message"),
        (WebSocketProtocol13, "_frame_compressed"),
        (WebSocketProtocol13, "_abort"),
        (WebSocketProtocol13, "_write_frame"),
        (WebSocketProtocol13, "server_terminated"),
        (WebSocketProtocol13, "client_terminated"),
    ]
    absent = []
    for name in ("_ProxyAdapter", "_HTTPRequestContext"):
        if not hasattr(tornado.httpserver, name):
            absent.append(f"tornado.httpserver.{name}")
    if not hasattr(tornado.websocket, "_WebSocketParams"):
        absent.append("tornado.websocket._WebSocketParams")
    context = getattr(tornado.httpserver, "_HTTPRequestContext", None)
    if context is not None:
        for name in ("trusted_downstream", "_unapply_xheaders"):
            if not _has_instance_attribute(context, name):
                absent.append(f"_HTTPRequestContext.{name}")
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


class IOStreamTransport:
    """Tornado's IOStream as the relay's :class:`~server.core.relay.Transport`."""

    __slots__ = ("stream",)

    def __init__(self, stream: IOStream) -> None:
        self.stream = stream

    def pending(self) -> int:
        """Bytes written to the stream that the kernel has not taken yet."""
        buffer = getattr(self.stream, "_write_buffer", None)
        return len(buffer) if buffer is not None else 0

    def taken(self) -> int:
        """How many queued bytes the kernel has taken so far (grows while a slow
        reader makes progress; stands still when it does not)."""
        return int(getattr(self.stream, "_total_write_done_index", 0))

    def send(self, data: bytes) -> int:
        """Write ``data`` in order after anything already queued; return how many
        bytes are queued now (0: the kernel took everything).

        When nothing is queued, ``socket.send`` takes what the kernel accepts and
        only the remainder goes through ``IOStream.write``. Raises
        TransportClosed if the connection is closed or breaks.
        """
        stream = self.stream
        if stream.closed():
            raise TransportClosed()
        if (
            type(stream) is not IOStream  # TLS streams have their own write path
            or getattr(stream, "_connecting", True)
            # something queued: every byte IOStream.write took and the kernel has not
            # (the indexes are plain ints; the buffer's len() is a Python call)
            or getattr(stream, "_total_write_index", 1)
            != getattr(stream, "_total_write_done_index", 0)
        ):
            try:
                stream.write(data)
            except StreamClosedError:
                raise TransportClosed() from None
            return self.pending()
        try:
            sent = stream.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:  # reset, broken pipe: the peer is gone
            stream.close(exc_info=exc)
            raise TransportClosed() from None
        if sent < len(data):
            stream.write(memoryview(data)[sent:])
            return self.pending()
        return 0

    def when_sent(self) -> asyncio.Future[None]:
        """Resolves when everything queued is sent (IOStream.write of nothing)."""
        try:
            return self.stream.write(b"")
        except StreamClosedError:
            raise TransportClosed() from None

    def closed(self) -> bool:
        return self.stream.closed()

    def close(self) -> None:
        self.stream.close()


def wants_chunks(connection: Any) -> bool:
    """True if the HTTP/1.1 response body on ``connection`` is sent with
    chunked transfer coding (an HTTP/1.0 response is delimited by closing)."""
    return bool(getattr(connection, "_chunking_output", True))


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def websocket_frame(connection: WebSocketProtocol13, data: bytes) -> bytes:
    """One server text frame carrying the UTF-8 ``data`` (framed by
    :func:`server.wire.websocket.text_frame`), compressed when permessage-deflate
    was negotiated; counted in the connection's byte tallies as Tornado's own
    writes are."""
    connection._message_bytes_out += len(data)
    compressor = connection._compressor
    if compressor is None:
        frame = text_frame(data)
    else:
        frame = text_frame(compressor.compress(data), compressed=True)
    connection._wire_bytes_out += len(frame)
    return frame


# --- the HTTP server (server/edge/server.py) ---------------------------------------------


def add_listening_socket(
    server: TCPServer, sock: socket.socket, remove_handler: Callable[[], None]
) -> None:
    """Register a listening socket whose accept handler the caller installed
    itself (``TCPServer.add_sockets`` would install Tornado's own), so that
    ``server.stop()`` closes it and removes the handler."""
    server._sockets[sock.fileno()] = sock
    server._handlers[sock.fileno()] = remove_handler


def listening_port(server: TCPServer) -> int:
    """The port of the server's first listening socket (for ``--port 0``)."""
    sock = next(iter(server._sockets.values()))
    return int(sock.getsockname()[1])


def proxy_adapter(
    delegate: httputil.HTTPMessageDelegate, request_conn: httputil.HTTPConnection
) -> httputil.HTTPMessageDelegate:
    """Tornado's ``xheaders`` handling (X-Forwarded-For/-Proto, X-Real-IP)
    around ``delegate``, as ``HTTPServer.start_request`` applies it."""
    adapter: httputil.HTTPMessageDelegate = tornado.httpserver._ProxyAdapter(delegate, request_conn)
    return adapter


def wrap_header_parser(
    request_conn: Any,
    wrap: Callable[
        [Callable[[bytes], tuple[str, httputil.HTTPHeaders]]],
        Callable[[bytes], tuple[str, httputil.HTTPHeaders]],
    ],
) -> None:
    """Replace how ``request_conn`` (an HTTP1Connection) parses a request
    head with ``wrap(original)``; nothing happens on another connection type."""
    original = getattr(request_conn, "_parse_headers", None)
    if original is not None:
        request_conn._parse_headers = wrap(original)


def unwrap_header_parser(request_conn: Any) -> None:
    """Undo :func:`wrap_header_parser` once the head is parsed: the wrapper
    would otherwise live as long as a streaming response."""
    attributes = getattr(request_conn, "__dict__", {})
    attributes.pop("_parse_headers", None)


def share_trusted_downstream(context: Any, proxies: frozenset[str]) -> None:
    """Give a connection's request context the server's one set of trusted
    proxies: Tornado builds a set per connection (about 200 bytes each) and
    only ever reads it."""
    if isinstance(getattr(context, "trusted_downstream", None), set):
        context.trusted_downstream = proxies


def unapply_xheaders(context: Any) -> None:
    """Undo what Tornado's ``xheaders`` made of a request's X-Forwarded-For/-Proto
    and X-Real-IP (``remote_ip``, ``protocol``): for a peer that is not a trusted
    proxy, which may not name the client. Nothing happens on another context type."""
    unapply = getattr(context, "_unapply_xheaders", None)
    if unapply is not None:
        unapply()


# --- memory held by long-lived connections --------------------------------------------


def no_output_transforms(handler: RequestHandler) -> None:
    """Drop the response's output transforms (gzip of ``text/*``, chunking is
    written by the caller): nothing may buffer an event stream's body."""
    handler._transforms = []


def keep_response_open(handler: RequestHandler) -> None:
    """Let ``handler``'s method return without Tornado finishing the response
    (as it does for WebSocket handlers): a long response then needs no task
    waiting for it, and whoever writes it calls ``finish()``."""
    handler._auto_finish = False


def trim_headers(headers: httputil.HTTPHeaders, keep: Collection[str] = ()) -> None:
    """Drop every header of ``headers`` but those named in ``keep`` (canonical
    case, e.g. ``"Connection"``), giving their memory back.

    A request's headers live as long as its connection; on a stream that runs
    for minutes they are dead weight once read (about 1-2 KiB a connection).
    Deleting names one by one would leave both dictionaries' tables at full
    size; ``dict.clear()`` frees them."""
    kept = [(name, value) for name, value in headers.get_all() if name in keep]
    as_list = getattr(headers, "_as_list", None)
    combined = getattr(headers, "_combined_cache", None)
    if not isinstance(as_list, dict) or not isinstance(combined, dict):
        return  # another Tornado: keep them (costs memory, not correctness)
    as_list.clear()
    combined.clear()
    for name, value in kept:
        headers.add(name, value)


def forget_response_headers(handler: RequestHandler) -> None:
    """Free a response's headers once they are on the wire: Tornado keeps them
    for the handler's life but reads them only before they are sent."""
    headers = getattr(handler, "_headers", None)
    if getattr(handler, "_headers_written", False) and isinstance(headers, httputil.HTTPHeaders):
        trim_headers(headers)


#: Close codes for a peer that broke the protocol (RFC 6455 7.4.1).
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
#: How long a socket that broke the protocol is kept half-closed after its close
#: frame, so the peer reads the frame before the TCP connection goes.
_FAIL_LINGER = 1.0


class _ClosingProtocol13(WebSocketProtocol13):
    """Tornado's protocol, except that a peer who breaks it gets a close frame
    before the TCP close, as RFC 6455 7.1.7 asks ("Fail the WebSocket
    Connection": the endpoint should send a Close frame with an appropriate
    status code): 1002 for a protocol violation (reserved bits, reserved
    opcodes, bad fragmentation, a fragmented or long control frame), 1007 for a
    text message that is not UTF-8 (8.1). Tornado drops the connection instead.

    It adds no instance attribute: an instance keeps its attributes in a dict
    whose keys its class shares while they are few (CPython's split dicts), and
    one more would double the memory of every open socket's protocol."""

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if opcode == 0x1 and not self._frame_compressed:
            # Tornado decodes it too (and would only drop the connection): client
            # messages are few, so checking first costs nothing that matters.
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(INVALID_DATA)
                return None
        return super()._handle_message(opcode, data)

    def _abort(self) -> None:
        stream = self.stream
        if self.server_terminated or stream is None or stream.closed():
            super()._abort()  # the peer left, or our close frame went already
            return
        self._fail(PROTOCOL_ERROR)

    def _fail(self, code: int) -> None:
        """Send a close frame with ``code``, stop reading (the frame that failed
        is not understood), half-close (FIN after the frame), and let the TCP
        connection go a little later, so that closing with unread input (an RST)
        cannot overtake the frame."""
        stream = self.stream
        try:
            self._write_frame(True, 0x8, struct.pack(">H", code))
        except StreamClosedError:
            super()._abort()
            return
        self.server_terminated = True
        self.client_terminated = True
        self.close_code = code
        try:
            stream.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        stream.io_loop.call_later(_FAIL_LINGER, stream.close)


class LeanWebSocketHandler(WebSocketHandler):
    """A WebSocketHandler without Tornado's per-socket method guards, whose
    protocol errors end with a close frame (:class:`_ClosingProtocol13`).

    When the handshake takes over the connection, Tornado replaces seven
    HTTP response methods (``write``, ``finish``...) on the *instance* with
    functions that raise: a misuse check that adds eight entries to every
    handler's ``__dict__`` (about 1.5 KiB an open socket). Subclasses must
    simply not call those methods after ``open``."""

    def _detach_stream(self) -> IOStream:
        return self.detach()

    def get_websocket_protocol(self) -> Any:
        # Tornado's own method, making the subclass: built as itself from the
        # start, so its instances share their class's attribute keys.
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        params = tornado.websocket._WebSocketParams(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            max_message_size=self.max_message_size,
            compression_options=self.get_compression_options(),
        )
        return _ClosingProtocol13(self, False, params)
