"""``GET /ws``: streams over a WebSocket; start, resume and cancel as JSON messages.

:class:`StreamSocketHandler` is also the core of every other WebSocket endpoint
(the Responses API's WebSocket mode, the AI SDK's chat transport): one sink per
socket, one relay per thing followed, keyed by the name the client follows it by,
one message loop (:meth:`~StreamSocketHandler.on_message`), the per-socket start
cap, pings, slow-consumer cuts and drain. A subclass supplies its messages
(``parse``, ``handle``), its error frame (``error_frame``) and its ``TRANSPORT``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado.websocket import WebSocketProtocol13

from .. import tornado_adapter
from ..core.log import StreamLog
from ..core.relay import Cut, Frame, Outcome, Relay, Sink
from ..core.store import StreamStore
from ..edge.server import Edge
from ..metrics import Metrics
from ..wire import errors, events, messages
from ..wire.limits import Limits
from .event_stream import RelayOptions
from .resume import open_for_resume

__all__ = ["StreamSocketHandler", "SocketOptions", "SocketFrames", "TextView", "SLOW_CONSUMER"]

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

#: A socket's view of a stream: events ``first_seq``... (the log's JSON texts) ->
#: the texts to send, one text frame each.
TextView = Callable[[int, list[bytes]], list[bytes]]


@dataclass(frozen=True)
class SocketOptions:
    """What every WebSocket handler shares, in one object (see ``initialize``)."""

    metrics: Metrics
    edge: Edge
    compression: bool  # permessage-deflate, when the client offers it (--ws-compression)
    max_streams_per_socket: int


class SocketFrames:
    """A relay's frame function on one socket: the view's texts of a batch of
    events (the events themselves without a view), each a text frame."""

    __slots__ = ("connection", "view")

    def __init__(self, connection: WebSocketProtocol13, view: TextView | None) -> None:
        self.connection = connection
        self.view = view

    def __call__(self, first_seq: int, texts: list[bytes]) -> bytes:
        if self.view is not None:
            texts = self.view(first_seq, texts)
        frame, connection = tornado_adapter.websocket_frame, self.connection
        if len(texts) == 1:
            return frame(connection, texts[0])
        return b"".join([frame(connection, text) for text in texts])


class SocketRelay(Relay):
    """A relay on a socket, with the ``key`` the client follows it by (a stream
    id, a lane, a request id) and what that key's request is about (``subject``:
    the AI SDK request's chat id), both gone with it."""

    __slots__ = ("key", "subject")

    def __init__(
        self, key: str, subject: Any, stream: StreamLog, after: int, sink: Sink, frame: Frame
    ) -> None:
        super().__init__(stream, after, sink, frame)
        self.key = key
        self.subject = subject


class _EchoRef:
    """``/ws``'s view of a started stream: its ``start`` event echoes the ``ref``
    of the message that started it, as its last member."""

    __slots__ = ("ref",)

    def __init__(self, ref: Any) -> None:
        self.ref = ref

    def __call__(self, first_seq: int, texts: list[bytes]) -> list[bytes]:
        if first_seq != 0:
            return texts
        # The start event is a JSON object: it ends with "}".
        start = texts[0][:-1] + b',"ref":' + events.dumps(self.ref).encode() + b"}"
        return [start, *texts[1:]]


class StreamSocketHandler(tornado_adapter.LeanWebSocketHandler):
    """One socket, any number of streams.

    Each stream followed on this socket has its own :class:`Relay`; they
    share the socket's :class:`Sink`, which bounds what the socket may hold
    unsent. Closing the socket stops the relays but not the streams, which a
    later socket can resume. Bad messages get an ``error`` event and the
    socket stays open.
    """

    #: what this socket's connections, streams, resumes and events are counted as
    TRANSPORT = "ws"
    #: the error (code, message) a binary message gets
    BINARY = ("binary_not_supported", "send JSON text messages")
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
        #: the streams this socket started, while they generate (the per-socket cap)
        self._started: list[StreamLog] = []
        #: what this socket follows, by the key the client names it by
        self._following: dict[str, SocketRelay] = {}
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
        self.shared.metrics.connection_opened(self.TRANSPORT)
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

    def relay_stopped(self, relay: Relay, outcome: Outcome) -> None:
        # The key is free again (a Responses lane, an AI SDK request id), unless
        # a newer relay took it over already.
        if isinstance(relay, SocketRelay) and self._following.get(relay.key) is relay:
            del self._following[relay.key]
        if outcome is Outcome.COMPLETE and self._started:
            # its stream ended: nothing of an ended stream stays with the socket
            self._started = [stream for stream in self._started if not stream.ended]
        if self._going_away:
            # Not inside the producer's append: the close frame waits a loop turn,
            # behind the terminal event this relay just wrote.
            asyncio.get_running_loop().call_soon(self._close_when_idle)

    # -- messages: the loop every WebSocket endpoint shares --------------------------------

    async def on_message(self, message: str | bytes) -> None:
        """Handle one client message: :meth:`parse` it, then :meth:`handle` it.
        Every error becomes the socket's error frame (:meth:`error_frame`) here,
        and only here, counted by code; the socket stays open."""
        request: Any = None
        try:
            if isinstance(message, bytes):
                raise errors.ProtocolError(*self.BINARY)
            request = self.parse(message)
            await self.handle(request)
        except Exception as exc:
            failure = exc if isinstance(exc, errors.ProtocolError) else None
            if failure is None:
                # A bug, never the client's doing: logged once (not the message, which
                # may hold a prompt), answered the protocol's way, the socket kept.
                log.exception("a WebSocket message failed (%s)", self.TRANSPORT)
                failure = errors.internal_error()
            self.shared.metrics.error(failure.code)
            self.send_text(self.error_frame(failure, request))

    def parse(self, text: str) -> Any:
        """A client message (raises ProtocolError): ``/ws``'s start, resume, cancel."""
        return messages.parse_client_message(text, self.limits)

    async def handle(self, request: Any) -> None:
        if isinstance(request, messages.StartRequest):
            await self._start(request)
        elif isinstance(request, messages.ResumeRequest):
            await self._resume(request)
        else:
            await self._cancel(request)

    def error_frame(self, exc: errors.ProtocolError, request: Any) -> bytes:
        """The error frame's text for ``exc``, raised by ``request`` (None: the
        message was not understood)."""
        extra = {"ref": exc.ref} if exc.ref is not None else {}
        event = events.error_event(exc.stream, None, exc.code, exc.message, **extra)
        return events.dumps(event).encode()

    def admit_start(self, code: str = "too_many_streams", what: str = "streams") -> None:
        """Raise ProtocolError unless this socket may start one more stream: fewer
        than ``--max-streams-per-socket`` of its streams still generate, and the
        edge's start rate allows it."""
        self._started = [stream for stream in self._started if not stream.ended]
        if len(self._started) >= self.shared.max_streams_per_socket:
            raise errors.ProtocolError(
                code, f"this socket already runs {len(self._started)} {what}; wait for one to end"
            )
        refusal = self.shared.edge.allow_start(self.request.remote_ip or "")  # rate limit
        if refusal is not None:
            raise errors.ProtocolError(refusal.code, refusal.message, 429)

    def started(self, stream: StreamLog) -> None:
        """``stream`` was started by this socket (after :meth:`admit_start`)."""
        self.shared.metrics.stream_started(stream, self.TRANSPORT)
        self._started.append(stream)

    async def _start(self, request: messages.StartRequest) -> None:
        try:
            self.admit_start()
            stream = await self.store.create(request.chat)
        except errors.ProtocolError as exc:
            exc.ref = request.ref  # the error event answers this message
            raise
        self.started(stream)
        view = _EchoRef(request.ref) if request.ref is not None else None
        self.follow(stream.id, stream, -1, view)

    async def _resume(self, request: messages.ResumeRequest) -> None:
        stream = await open_for_resume(
            self.store, self.shared.metrics, self.TRANSPORT, request.stream, request.after, "after"
        )
        if stream is None:
            raise errors.stream_ended(request.stream)
        self.follow(stream.id, stream, request.after)

    async def _cancel(self, request: messages.CancelRequest) -> None:
        # The relay, if one follows, delivers done/cancelled.
        if await self.store.cancel(request.stream) is None:
            error = errors.stream_not_found()
            error.stream = request.stream
            raise error

    # -- writing ------------------------------------------------------------------------

    def follow(
        self,
        key: str,
        stream: StreamLog,
        after: int,
        view: TextView | None = None,
        subject: Any = None,
    ) -> None:
        """Relay ``stream``'s events after ``after`` (as ``view`` makes them) onto
        this socket, as what the client follows by ``key``: a relay the key named
        before is stopped (a resume or a request id used again replaces it)."""
        sink, connection = self._sink, self.ws_connection
        if sink is None or sink.closed or not isinstance(connection, WebSocketProtocol13):
            return
        previous = self._following.pop(key, None)
        if previous is not None:
            previous.stop()
        frames = self.shared.metrics.counting(
            SocketFrames(connection, view), stream, self.TRANSPORT
        )
        relay = SocketRelay(key, subject, stream, after, sink, frames)
        self._following[key] = relay
        relay.start()

    def send_text(self, data: bytes) -> None:
        """One text frame (UTF-8 ``data``) on this socket's sink."""
        connection = self.ws_connection
        if self._sink is None or not isinstance(connection, WebSocketProtocol13):
            return
        self._sink.write(tornado_adapter.websocket_frame(connection, data))

    def on_close(self) -> None:
        if self._sink is not None:
            self.shared.metrics.connection_closed(self.TRANSPORT)
            self.relays.watch.connections -= 1
            self._sink.close()
        self._following.clear()
