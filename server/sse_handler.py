"""``GET /sse``: one stream as Server-Sent Events, resumable with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import contextlib

from tornado.iostream import StreamClosedError

from . import protocol, sse
from .backends.base import ChatRequest
from .errors import ApiError, StreamNotFound
from .streams import MemoryStreamStore, Stream
from .web import ConnectionRegistry, JsonErrorHandler, begin_event_stream, create_stream

__all__ = ["SSEHandler"]

_HEARTBEAT = sse.encode_comment("heartbeat").decode()


class SSEHandler(JsonErrorHandler):
    """Relays a stream's events, flushing each one as soon as it exists.

    A new request starts a stream; a request carrying ``Last-Event-ID: S:seq``
    (header, or ``last_event_id`` query parameter) resumes stream S after seq
    without starting a new completion. When the connection closes, only the
    relay stops: generation goes on until the stream ends, is cancelled, or
    is left unread for the store's idle timeout.
    """

    def initialize(
        self,
        store: MemoryStreamStore,
        limits: protocol.Limits,
        retry_ms: int = 1000,
        heartbeat: float = 15.0,
        connections: ConnectionRegistry | None = None,
    ) -> None:
        self.store = store
        self.connections = connections
        self.limits = limits
        self.retry_ms = retry_ms
        self.heartbeat = heartbeat
        self._stream: Stream | None = None
        self._after = -1
        self._request: ChatRequest | None = None
        self._relay: asyncio.Task[None] | None = None

    def compute_etag(self) -> None:
        # Tornado would hash the body at finish(); never for a stream.
        return None

    def prepare(self) -> None:
        last_event_id = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "last_event_id", None
        )
        try:
            if last_event_id:
                self._prepare_resume(last_event_id)
            elif self.get_query_argument("stream", None) is not None:  # made by POST /streams
                stream_id = protocol.validate_stream_id(self.get_query_argument("stream"))
                self._stream = self.store.get(stream_id)  # followed from its first event
                if self._stream is None:
                    raise StreamNotFound(stream_id)
            else:
                self._request = ChatRequest.from_prompt(
                    # strip=False: the prompt is exactly what was sent, as on /ws and /v1
                    protocol.validate_prompt(
                        self.get_query_argument("prompt", None, strip=False), self.limits
                    ),
                    protocol.validate_max_tokens(
                        self.get_query_argument("max_tokens", None), self.limits, from_query=True
                    ),
                )
        except protocol.ProtocolError as exc:
            raise ApiError.from_protocol(exc) from None

    def _prepare_resume(self, last_event_id: str) -> None:
        stream_id, seq = protocol.parse_event_id(last_event_id)
        stream = self.store.get(stream_id)
        if stream is None:
            raise StreamNotFound(stream_id)
        if seq > stream.last_seq:
            raise ApiError(400, "invalid_last_event_id", "Last-Event-ID is ahead of the stream")
        self._stream, self._after = stream, seq

    async def get(self) -> None:
        if self._stream is not None and self._stream.ended and self._after == self._stream.last_seq:
            # Everything was delivered: 204 tells EventSource to stop reconnecting
            # (WHATWG: a 204 response "fails the connection" for good).
            self.set_status(204)
            return
        stream = self._stream
        if stream is None:
            assert self._request is not None
            stream = create_stream(self.store, self._request)
        connection_stream = begin_event_stream(self)
        # Send the head now: a client learns it is connected (EventSource's
        # "open") before the next event exists, e.g. after a resume.
        self.flush()
        self._relay = asyncio.ensure_future(self._relay_events(stream))
        if self.connections is not None and connection_stream is not None:
            self.connections.add(stream.id, connection_stream.close)
        try:
            await self._relay
        except (asyncio.CancelledError, StreamClosedError):
            return  # the client went away; the stream itself goes on
        finally:
            if self.connections is not None and connection_stream is not None:
                self.connections.discard(stream.id, connection_stream.close)
        self.finish()

    async def _relay_events(self, stream: Stream) -> None:
        # Written straight to the HTTP connection: headers went out in get(),
        # there are no output transforms (prepare) and nothing else writes
        # meanwhile, so RequestHandler.write/flush would only add layers.
        connection = self.request.connection
        assert connection is not None
        retry_ms: int | None = self.retry_ms  # the hint rides on the first event only
        pending: list[str] = []
        async with contextlib.aclosing(
            stream.follow(self._after, heartbeat=self.heartbeat or None)  # 0: no heartbeats
        ) as events:
            async for event in events:
                if event is None:
                    pending.append(_HEARTBEAT)
                else:
                    seq = event["seq"]
                    pending.append(
                        sse.format_trusted_event(
                            stream.encoded(seq), protocol.format_event_id(stream.id, seq), retry_ms
                        )
                    )
                    retry_ms = None
                    if seq < stream.last_seq:
                        continue  # more are ready: send them in the same write
                chunk = "".join(pending).encode("utf-8")
                pending.clear()
                await connection.write(chunk)  # backpressure: wait until the kernel took it

    def on_connection_close(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
