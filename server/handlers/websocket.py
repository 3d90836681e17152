"""``GET /ws``: streams over a WebSocket; start, resume and cancel as JSON messages."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from tornado.websocket import WebSocketProtocol13

from .. import tornado_adapter
from ..core.log import StreamLog
from ..core.relay import Cut, Outcome, Relay, Sink
from ..core.store import StreamStore
from ..edge.server import Edge
from ..metrics import Metrics
from ..wire import errors, events, messages
from ..wire.limits import Limits
from .event_stream import RelayOptions
from .resume import open_for_resume

__all__ = ["StreamSocketHandler", "SLOW_CONSUMER"]

log = logging.getLogger("twinstream.ws")

#: Close code for a reader that does not keep up (4000-4999: private use,
#: RFC 6455 7.4.2). The stream goes on; the client may resume.
SLOW_CONSUMER = 4008
#: Close code on drain: "service restart" (RFC 6455 registry); reconnect and resume.
SERVICE_RESTART = 1012
#: Close code on shutdown with the memory store: "going away" (RFC 6455 7.4.1).
GOING_AWAY = 1001
#: Close code when a keepalive ping went unanswered ("internal error", as the
#: websockets library uses for its keepalive timeout), or the server failed.
INTERNAL_ERROR = 1011
#: An empty ping frame: FIN + opcode 0x9 (RFC 6455 5.5.2), no payload.
PING_FRAME = b"\x89\x00"


@dataclass(frozen=True)
class SocketOptions:
    """What every ``/ws`` handler shares, in one object (see ``initialize``)."""

    metrics: Metrics
    edge: Edge
    compression: bool  # permessage-deflate, when the client offers it (--ws-compression)
    max_streams_per_socket: int


class StreamSocketHandler(tornado_adapter.LeanWebSocketHandler):
    """One socket, any number of streams.

    Each stream followed on this socket has its own :class:`Relay`; they
    share the socket's :class:`Sink`, which bounds what the socket may hold
    unsent. Closing the socket stops the relays but not the streams, which a
    later socket can resume. Bad messages get an ``error`` event and the
    socket stays open.
    """

    #: shutting down: close (1001) once no stream is followed (set on drain only:
    #: a class default costs an open socket nothing)
    _going_away = False

    def initialize(
        self, options: SocketOptions, store: StreamStore, limits: Limits, relays: RelayOptions
    ) -> None:
        # Few attributes: an open socket's handler lives as long as the socket, and
        # its __dict__ grows in steps (each dict resize doubles it).
        self.shared = options
        self.store = store
        self.limits = limits
        self.relays = relays
        self._started: list[StreamLog] = []
        self._following: dict[str, Relay] = {}
        self._sink: Sink | None = None

    def check_origin(self, origin: str) -> bool:
        """Same-origin pages, listed origins (``*`` for any) and non-browser
        clients (which send no Origin header, so this is not called)."""
        # Scheme, host and port compared (server/edge/policy.py); the edge refused others already.
        policy = self.shared.edge.origins
        return bool(policy.allows(origin, self.request.protocol, self.request.host))

    def get_compression_options(self) -> dict[str, Any] | None:
        # permessage-deflate (RFC 7692), negotiated only if the client offers it.
        return {} if self.shared.compression else None

    def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)
        # The handshake is done: nothing reads its headers any more.
        tornado_adapter.trim_headers(self.request.headers)
        tornado_adapter.forget_response_headers(self)
        self.shared.metrics.connection_opened("ws")
        connection = self.ws_connection
        assert isinstance(connection, WebSocketProtocol13)
        self._sink = Sink(
            tornado_adapter.IOStreamTransport(connection.stream),
            self,
            self.relays.watch,
            max_pending=self.relays.max_pending_bytes,
            ping=PING_FRAME,
        )
        self.relays.watch.drainable.add(self)
        self.relays.watch.connections += 1  # until on_close (shutdown waits for it)

    def drain(self, retry_ms: int, elsewhere: bool) -> None:
        """The server is shutting down. With a shared store (``elsewhere``): close
        with 1012 (service restart) so the client reconnects elsewhere and sends
        ``resume``. With the memory store: let the streams this socket follows
        reach their terminal events (the store ends them by the drain deadline),
        then close with 1001 (going away): nothing can be resumed here after."""
        if elsewhere:
            self.close(SERVICE_RESTART, "server restarting; reconnect and resume")
            return
        self._going_away = True
        self._close_when_idle()

    def _close_when_idle(self) -> None:
        if not self._following:
            self.close(GOING_AWAY, "server shutting down")

    def on_pong(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink.pong()

    # -- the relay's Connection interface (server.core.relay) -----------------------

    def write_head(self, payload: bytes) -> None:
        raise AssertionError("a socket's sink has no head to write")  # made without head_pending

    def cut(self, reason: Cut) -> None:
        """Close with 4008 (slow consumer) or 1011 (keepalive ping timeout, or a
        relay that failed). The close frame of a slow consumer waits behind the
        unread backlog: a reader that still makes progress gets it (Tornado then
        waits a few seconds for its reply). From a stuck reader, or a peer that
        stopped answering pings, nothing more can be expected, so the TCP
        connection is closed at once, freeing the backlog."""
        connection = self.ws_connection  # close() forgets it
        if reason is Cut.NO_PONG:
            self.close(INTERNAL_ERROR, "keepalive ping timeout")
        elif reason is Cut.FAILED:
            self.close(INTERNAL_ERROR, "internal error")
        else:
            self.close(SLOW_CONSUMER, "slow consumer")
        stream = getattr(connection, "stream", None)
        if (reason is Cut.STUCK or reason is Cut.NO_PONG) and stream is not None:
            stream.close()

    # -- messages ---------------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        """Handle one client message. Every ProtocolError becomes an ``error``
        event here, and only here; the socket stays open."""
        try:
            if isinstance(message, bytes):
                raise errors.ProtocolError("binary_not_supported", "send JSON text messages")
            request = messages.parse_client_message(message, self.limits)
            if isinstance(request, messages.StartRequest):
                await self._start(request)
            elif isinstance(request, messages.ResumeRequest):
                await self._resume(request)
            else:
                await self._cancel(request)
        except errors.ProtocolError as exc:
            self._send_error(exc)
        except Exception:
            # A bug, never the client's doing: logged once (not the message, which
            # may hold a prompt), answered the protocol's way, the socket kept.
            log.exception("a WebSocket message failed")
            self._send_error(errors.internal_error())

    def _send_error(self, exc: errors.ProtocolError) -> None:
        """The one place an error becomes a WebSocket ``error`` event."""
        self.shared.metrics.error(exc.code)
        extra = {"ref": exc.ref} if exc.ref is not None else {}
        self._send(events.error_event(exc.stream, None, exc.code, exc.message, **extra))

    async def _start(self, request: messages.StartRequest) -> None:
        self._started = [stream for stream in self._started if not stream.ended]
        if len(self._started) >= self.shared.max_streams_per_socket:
            raise errors.ProtocolError(
                "too_many_streams",
                f"this socket already runs {len(self._started)} streams; wait for one to end",
                ref=request.ref,
            )
        refusal = self.shared.edge.allow_start(self.request.remote_ip or "")  # rate limit
        if refusal is not None:
            raise errors.ProtocolError(refusal.code, refusal.message, 429, ref=request.ref)
        try:
            stream = await self.store.create(request.chat)
        except errors.ProtocolError as exc:
            exc.ref = request.ref
            raise
        self.shared.metrics.stream_started(stream, "ws")
        self._started.append(stream)
        self._follow(stream, after=-1, ref=request.ref)

    async def _resume(self, request: messages.ResumeRequest) -> None:
        stream = await open_for_resume(
            self.store, self.shared.metrics, "ws", request.stream, request.after, "after"
        )
        if stream is None:
            raise errors.stream_ended(request.stream)
        self._follow(stream, after=request.after, ref=None)

    async def _cancel(self, request: messages.CancelRequest) -> None:
        # The relay, if one follows, delivers done/cancelled.
        if await self.store.cancel(request.stream) is None:
            error = errors.stream_not_found()
            error.stream = request.stream
            raise error

    # -- writing ------------------------------------------------------------------------

    def _follow(self, stream: StreamLog, after: int, ref: Any) -> None:
        sink = self._sink
        if sink is None or sink.closed:
            return
        previous = self._following.pop(stream.id, None)
        if previous is not None:
            previous.stop()  # a resume replaces this socket's earlier relay
        connection = self.ws_connection
        assert isinstance(connection, WebSocketProtocol13)
        frames = self.shared.metrics.counting(_SocketFrames(connection, ref), stream, "ws")
        relay = Relay(stream, after, sink, frames)
        self._following[stream.id] = relay
        relay.start()

    def relay_stopped(self, relay: Relay, outcome: Outcome) -> None:
        if self._following.get(relay.stream.id) is relay:
            del self._following[relay.stream.id]
        if self._going_away:
            # Not inside the producer's append: the close frame waits a loop turn,
            # behind the terminal event this relay just wrote.
            asyncio.get_running_loop().call_soon(self._close_when_idle)

    def _send(self, event: dict[str, Any]) -> None:
        connection = self.ws_connection
        if self._sink is None or not isinstance(connection, WebSocketProtocol13):
            return
        data = events.dumps(event).encode()
        self._sink.write(tornado_adapter.websocket_frame(connection, data))

    def on_close(self) -> None:
        if self._sink is not None:
            self.shared.metrics.connection_closed("ws")
            self.relays.watch.connections -= 1
            self._sink.close()
        self._following.clear()


class _SocketFrames:
    """A relay's frame function on one socket: each event a text frame; the
    ``start`` event echoes the ``ref`` of the message that started it."""

    __slots__ = ("connection", "ref")

    def __init__(self, connection: WebSocketProtocol13, ref: Any) -> None:
        self.connection = connection
        self.ref = ref

    def __call__(self, first_seq: int, texts: list[bytes]) -> bytes:
        frame, connection = tornado_adapter.websocket_frame, self.connection
        if first_seq == 0 and self.ref is not None:
            # The start event answers this socket's message: echo its ref, as
            # its last member (the event is a JSON object: it ends with "}").
            start = texts[0][:-1] + b',"ref":' + events.dumps(self.ref).encode() + b"}"
            texts = [start, *texts[1:]]
        if len(texts) == 1:
            return frame(connection, texts[0])
        return b"".join(frame(connection, text) for text in texts)
