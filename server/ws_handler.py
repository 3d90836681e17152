"""``GET /ws``: streams over a WebSocket; start, resume and cancel as JSON messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

from . import protocol
from .streams import MemoryStreamStore, Stream
from .web import ConnectionRegistry

__all__ = ["StreamSocketHandler"]

log = logging.getLogger("twinstream.ws")


def _consume_outcome(future: asyncio.Future[None]) -> None:
    """Mark an un-awaited write's failure as seen (a later awaited write, or
    on_close, reports the closed socket)."""
    if not future.cancelled():
        future.exception()


_TEXT = 0x1  # WebSocket opcode of a text frame (RFC 6455 5.2)


class StreamSocketHandler(WebSocketHandler):
    """One socket, any number of streams.

    Each stream followed on this socket has its own relay task; closing the
    socket cancels the relays but not the streams, which a later socket can
    resume. Bad messages get an ``error`` event and the socket stays open.
    """

    def initialize(
        self,
        store: MemoryStreamStore,
        limits: protocol.Limits,
        allowed_origins: tuple[str, ...] = (),
        compression: bool = False,
        connections: ConnectionRegistry | None = None,
        max_streams_per_socket: int = 100,
    ) -> None:
        self.connections = connections
        self.max_streams_per_socket = max_streams_per_socket
        self._started: list[Stream] = []
        self.store = store
        self.limits = limits
        self.allowed_origins = allowed_origins
        self.compression = compression
        self._relays: dict[str, asyncio.Task[None]] = {}

    def check_origin(self, origin: str) -> bool:
        """Same-origin pages, listed origins (``*`` for any) and non-browser
        clients (which send no Origin header, so this is not called)."""
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        return urlsplit(origin).netloc.lower() == self.request.host.lower()

    def get_compression_options(self) -> dict[str, Any] | None:
        # permessage-deflate (RFC 7692), negotiated only if the client offers it.
        return {} if self.compression else None

    def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self._send_error(None, "binary_not_supported", "send JSON text messages")
            return
        try:
            request = protocol.parse_client_message(message, self.limits)
        except protocol.ProtocolError as exc:
            extra = {"ref": exc.ref} if exc.ref is not None else {}
            await self._send_error(None, exc.code, exc.message, **extra)
            return
        if isinstance(request, protocol.StartRequest):
            await self._start(request)
            return
        found = self.store.get(request.stream)
        if found is None:
            await self._send_error(
                request.stream,
                "stream_not_found",
                "this stream is unknown or expired and cannot be resumed; start a new one",
            )
        elif isinstance(request, protocol.ResumeRequest):
            if request.after > found.last_seq:
                await self._send_error(found.id, "invalid_after", "'after' is ahead of the stream")
            elif found.ended and request.after == found.last_seq:
                # SSE answers 204 here: nothing left, and nothing will come.
                await self._send_error(
                    found.id, "stream_ended", "this stream ended and every event was delivered"
                )
            else:
                self._follow(found, after=request.after, ref=None)
        else:
            found.cancel()  # the relay delivers done/cancelled, if one is following

    async def _start(self, request: protocol.StartRequest) -> None:
        extra = {"ref": request.ref} if request.ref is not None else {}
        self._started = [stream for stream in self._started if not stream.ended]
        if len(self._started) >= self.max_streams_per_socket:
            await self._send_error(
                None,
                "too_many_streams",
                f"this socket already runs {len(self._started)} streams; wait for one to end",
                **extra,
            )
            return
        try:
            stream = self.store.create(request.chat)
        except protocol.ProtocolError as exc:
            await self._send_error(None, exc.code, exc.message, **extra)
            return
        self._started.append(stream)
        self._follow(stream, after=-1, ref=request.ref)

    def _follow(self, stream: Stream, after: int, ref: Any) -> None:
        previous = self._relays.pop(stream.id, None)
        if previous is not None:
            previous.cancel()  # a resume replaces this socket's earlier relay
        self._relays[stream.id] = asyncio.ensure_future(self._relay(stream, after, ref))

    def _drop(self) -> None:
        """Cut the TCP connection without a close frame, as a network failure would."""
        stream = getattr(self.ws_connection, "stream", None)
        if stream is not None:
            stream.close()

    async def _relay(self, stream: Stream, after: int, ref: Any) -> None:
        if self.connections is not None:
            self.connections.add(stream.id, self._drop)
        try:
            async with contextlib.aclosing(stream.follow(after)) as events:
                async for event in events:
                    assert event is not None  # no heartbeat asked for: pings keep alive
                    seq = event["seq"]
                    if ref is not None and event["type"] == "start":
                        text = protocol.dumps({**event, "ref": ref})
                    else:
                        text = stream.encoded(seq)  # serialised once per stream
                    sent = self._send_text(text)
                    if seq == stream.last_seq:
                        # Caught up: awaiting the write is the backpressure (a
                        # slow reader slows its relay, never the stream). While
                        # more are ready, they are written without waiting.
                        await sent
                    else:
                        sent.add_done_callback(_consume_outcome)
        except (WebSocketClosedError, StreamClosedError):
            pass
        finally:
            if self._relays.get(stream.id) is asyncio.current_task():
                del self._relays[stream.id]
            if self.connections is not None and stream.id not in self._relays:
                self.connections.discard(stream.id, self._drop)

    def _send_text(self, text: str) -> asyncio.Future[None]:
        """Send one text message; the future resolves once the kernel took it.

        Like write_message, minus the asyncio Task that Tornado's
        write_message wraps around every frame write (only to turn
        StreamClosedError into WebSocketClosedError): with one message per
        token, that task and its scheduling were a large share of the
        server's CPU per event. The returned future is the IOStream's write
        future, which fails with StreamClosedError if the socket closes
        (Tornado marks those failures retrieved, so un-awaited ones are not
        logged). This uses Tornado internals (``_write_frame``,
        ``_compressor``); compressed connections, other protocol classes, and
        a Tornado without them, go through the public write_message.
        """
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            raise WebSocketClosedError()
        write_frame = getattr(connection, "_write_frame", None)
        if (
            not isinstance(connection, WebSocketProtocol13)
            or write_frame is None
            or getattr(connection, "_compressor", True) is not None
        ):
            return self.write_message(text)
        data = text.encode("utf-8")
        if hasattr(connection, "_message_bytes_out"):
            connection._message_bytes_out += len(data)
        try:
            return write_frame(True, _TEXT, data)
        except StreamClosedError:
            raise WebSocketClosedError() from None

    async def _send_error(self, stream: str | None, code: str, message: str, **extra: Any) -> None:
        event = protocol.error_event(stream, None, code, message, **extra)
        with contextlib.suppress(WebSocketClosedError):
            await self.write_message(protocol.dumps(event))

    def on_close(self) -> None:
        for relay in self._relays.values():
            relay.cancel()
        self._relays.clear()
