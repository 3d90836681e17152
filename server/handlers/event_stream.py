"""The base of a response that streams events (``/sse`` and ``/v1``): the prepared
head, the relay from a stream's log to this connection, heartbeats and compression."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tornado.iostream import IOStream, StreamClosedError

from .. import tornado_adapter
from ..core.log import StreamLog
from ..core.relay import Cut, Frame, Outcome, Relay, Sink, SinkState
from ..core.store import StreamStore
from ..core.watch import ConnectionWatch
from ..metrics import Metrics
from ..wire import errors, sse
from ..wire.limits import Limits
from .base import JsonErrorHandler

#: An SSE comment: keeps proxies from timing an idle stream out. No blank line
#: after it (see sse.encode_comment).
HEARTBEAT = sse.encode_comment("heartbeat")
#: Request headers Tornado reads again at the end of a response, to decide
#: whether the connection stays open (RFC 9112 9.3).
KEEP_ALIVE_HEADERS = ("Connection", "Content-Length", "Transfer-Encoding")


@dataclass(frozen=True)
class RelayOptions:
    """How relays write to connections (shared by every streaming handler)."""

    watch: ConnectionWatch
    max_pending_bytes: int
    sse_compression: bool
    retry_ms: int


class StreamEndpoint(JsonErrorHandler):
    """What every endpoint that starts or relays streams takes, through ``initialize``."""

    def initialize(
        self, metrics: Metrics, store: StreamStore, limits: Limits, relays: RelayOptions
    ) -> None:
        self.metrics = metrics
        # API keys are checked at the edge (server/edge/server.py), before the body is read.
        self.store = store
        self.limits = limits
        self.relays = relays


class _BodyEncoder:
    """Payload bytes to wire bytes for one response: gzip (optional), then
    HTTP/1.1 chunked coding (RFC 9112 7.1) when the response uses it."""

    __slots__ = ("gzip", "chunked")

    def __init__(self, gzip: sse.SyncFlushGzip | None, chunked: bool) -> None:
        self.gzip = gzip
        self.chunked = chunked

    def __call__(self, payload: bytes) -> bytes:
        if not payload:
            return payload  # a frame with no event (a view may make none): no empty chunk
        if self.gzip is not None:
            payload = self.gzip.compress(payload)
        return tornado_adapter.chunk(payload) if self.chunked else payload

    def trailer(self) -> bytes:
        if self.gzip is None:
            return b""
        data = self.gzip.finish()
        return tornado_adapter.chunk(data) if self.chunked else data


class EventStreamHandler(JsonErrorHandler):
    """The base of every ``text/event-stream`` response (``/sse``, ``/v1``).

    :meth:`relay_events` sends a stream's events as the response body and
    guards against the article's Rack::ETag trap, Tornado edition: output
    transforms (gzip of ``text/*``) are dropped so nothing buffers the body;
    no ETag is computed at finish; ``TCP_NODELAY`` is set (Tornado sets it only
    at ``finish()``; Nagle's algorithm would hold small token writes for an
    ACK). With ``sse_compression`` and a client that accepts gzip, the body is
    gzip flushed after every write.

    No task waits while the events flow: the handler method returns once the
    relay runs, and the relay's end finishes the response. An open stream
    costs its connection's objects and nothing else.
    """

    metrics: Metrics
    relays: RelayOptions
    _sink: Sink | None = None
    _encoder: _BodyEncoder | None = None
    _transport = ""
    _counted = False

    def compute_etag(self) -> None:
        return None

    def on_connection_close(self) -> None:
        if self._sink is not None:
            self._sink.close()

    def open_event_stream(self, transport: str) -> bool:
        """Make this response an event stream: headers set and the connection's
        sink ready, nothing sent yet. False if the connection is gone.

        A handler that starts a stream calls this first, so that little is left
        to do between the stream's ``start`` event and its write. Until
        :meth:`relay_events` sends the head, a ProtocolError still becomes a
        JSON error (:meth:`write_error` undoes this)."""
        if self._sink is not None:
            return not self._sink.closed
        options = self.relays
        tornado_adapter.keep_response_open(self)
        tornado_adapter.no_output_transforms(self)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer this response
        gzip = None
        if options.sse_compression:
            self.set_header("Vary", "Accept-Encoding")
            if sse.accepts_gzip(self.request.headers.get("Accept-Encoding")):
                self.set_header("Content-Encoding", "gzip")
                gzip = sse.SyncFlushGzip()
        iostream: IOStream | None = getattr(self.request.connection, "stream", None)
        if iostream is None or iostream.closed():
            return False
        iostream.set_nodelay(True)
        # Chunked or not is known once the head is written (_send_head).
        self._encoder = _BodyEncoder(gzip, False)
        self._sink = Sink(
            tornado_adapter.IOStreamTransport(iostream),
            self,
            options.watch,
            max_pending=options.max_pending_bytes,
            transform=self._encoder,
            heartbeat=HEARTBEAT,
            head_pending=True,
        )
        self._transport = transport
        return True

    def relay_events(self, stream: StreamLog, after: int, frame: Frame, transport: str) -> None:
        """Start writing the events after ``after`` as this response's body and
        return; the response ends after the terminal event (then
        :meth:`relay_ended` is called with True). If the connection closes
        first, or the reader is cut as a slow consumer, ``relay_ended(False)``
        is called instead; the stream itself goes on.

        The response head goes out with the events that are ready now, in one
        write, or alone at once when none is (a resume of a live stream): a
        client learns it is connected (EventSource's "open") before the next
        event exists."""
        if not self.open_event_stream(transport):
            self.relay_ended(False)
            return
        sink = self._sink
        assert sink is not None
        # Counted from here: the relay's end (_end_response) uncounts it; the
        # watch counts it until its last byte is out (shutdown waits for that).
        self.metrics.connection_opened(transport)
        self.relays.watch.connections += 1
        self._counted = True
        Relay(stream, after, sink, frame).start()
        if sink.state is SinkState.HEAD_PENDING:  # nothing was ready: the head alone
            sink.write(b"", transform=False)

    # -- the relay's Connection interface (server.core.relay) -----------------------

    def write_head(self, payload: bytes) -> None:
        # Sink's first write: Tornado writes the head and this payload (as the
        # first chunk, when chunked) with one IOStream.write.
        encoder = self._encoder
        assert encoder is not None
        if encoder.gzip is not None:
            payload = encoder.gzip.compress(payload)
        if payload:
            self.write(payload)
        self.flush()
        encoder.chunked = tornado_adapter.wants_chunks(self.request.connection)
        # Only these request headers are read again (keep-alive, at finish).
        tornado_adapter.trim_headers(self.request.headers, KEEP_ALIVE_HEADERS)
        tornado_adapter.forget_response_headers(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Opened but nothing sent (the stream could not start): the answer is a
        # JSON error after all, and the connection no event stream.
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()
        super().write_error(status_code, **kwargs)

    def relay_ended(self, complete: bool) -> None:
        """Called once when the response ended (``complete``) or was cut."""

    def cut(self, reason: Cut) -> None:
        # A slow consumer's connection is closed: its backlog is dropped
        # (bounded memory) and EventSource reconnects with Last-Event-ID.
        if self._sink is not None:
            self._sink.transport.close()

    def relay_stopped(self, relay: Relay, outcome: Outcome) -> None:
        # Called from inside the stream's append (or a close): finishing the
        # response runs Tornado's own finish logic, so it waits for the next
        # loop turn instead of running inside the producer's call.
        asyncio.get_running_loop().call_soon(self._end_response, outcome)

    def _end_response(self, outcome: Outcome) -> None:
        self.metrics.connection_closed(self._transport)
        sink, encoder = self._sink, self._encoder
        iostream = getattr(self.request.connection, "stream", None)
        if (
            (outcome is not Outcome.COMPLETE and outcome is not Outcome.DRAIN)
            or sink is None
            or encoder is None
            or iostream is None
            or iostream.closed()
        ):
            if sink is not None:
                sink.close()
            self._response_over(False)
            return
        sink.stop_heartbeats()
        trailer = encoder.trailer()
        if trailer:
            sink.write(trailer, transform=False)
        # The response is complete only once its last bytes are out: until
        # then the write deadline still applies, so a reader that stopped
        # reading cannot hold the connection (and a pipelined request behind
        # it) forever.
        sink.watch_progress()
        try:
            finished = self.finish()
        except StreamClosedError:
            sink.close()
            self._response_over(False)
            return
        finished.add_done_callback(self._response_sent)

    def _response_sent(self, future: asyncio.Future[None]) -> None:
        if self._sink is not None:
            self._sink.close()
        failed = future.cancelled() or future.exception() is not None
        self._response_over(not failed)

    def _response_over(self, complete: bool) -> None:
        if self._counted:
            self._counted = False
            self.relays.watch.connections -= 1
        self.relay_ended(complete)


async def open_stream(store: StreamStore, stream_id: str) -> StreamLog:
    """The stream named ``stream_id``; ProtocolError ``stream_not_found`` (404)."""
    stream = await store.open(stream_id)
    if stream is None:
        raise errors.stream_not_found()
    return stream
