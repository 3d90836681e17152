"""``GET /sse``: one stream as Server-Sent Events, resumable with ``Last-Event-ID``."""

from __future__ import annotations

from ..backends.base import ChatRequest
from ..core.store import StreamStore
from ..wire import errors, events, ids, limits, sse
from .event_stream import EventStreamHandler, RelayOptions, open_stream

__all__ = ["SSEHandler"]


class SSEFrames:
    """Frames a stream's events as SSE; the ``retry`` hint rides on the first
    write. (A slotted object, not a closure: one lives as long as each relay.)"""

    __slots__ = ("stream_id", "retry_ms")

    def __init__(self, stream_id: str, retry_ms: int | None) -> None:
        self.stream_id = stream_id
        self.retry_ms = retry_ms

    def __call__(self, first_seq: int, texts: list[bytes]) -> bytes:
        data = sse.format_events(self.stream_id, first_seq, texts, self.retry_ms)
        self.retry_ms = None
        return data


class SSEHandler(EventStreamHandler):
    """Relays a stream's events, each written as soon as it exists.

    A new request starts a stream; a request carrying ``Last-Event-ID: S:seq``
    (header, or ``last_event_id`` query parameter) resumes stream S after seq
    without starting a new completion. When the connection closes, only the
    relay stops: generation goes on until the stream ends, is cancelled, or
    is left unread for the store's idle timeout.
    """

    def initialize(self, store: StreamStore, limits: limits.Limits, relays: RelayOptions) -> None:
        self.store = store
        self.limits = limits
        self.relays = relays

    async def get(self) -> None:
        metrics = self.settings["metrics"]  # the operator's view (issue 10)
        last_event_id = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "last_event_id", None
        )
        if last_event_id:
            try:
                stream_id, after = ids.parse_event_id(last_event_id)
                stream = await open_stream(self.store, stream_id)
                events.check_resume(stream.last_seq, stream.ended, after, "last_event_id")
            except errors.ProtocolError as exc:
                metrics.resume("sse", exc.code)
                if exc.code != "stream_ended":
                    raise
                # Everything was delivered: 204 tells EventSource to stop
                # reconnecting (WHATWG: a 204 "fails the connection" for good).
                self.set_status(204)
                return
            metrics.resume("sse", "resumed", stream)
        elif self.get_query_argument("stream", None) is not None:  # made by POST /streams
            stream_id = ids.validate_stream_id(self.get_query_argument("stream"))
            stream = await open_stream(self.store, stream_id)
            after = -1  # from its first event
        else:
            # strip=False: the prompt is exactly what the user sent.
            request = ChatRequest.from_prompt(
                limits.validate_prompt(
                    self.get_query_argument("prompt", None, strip=False), self.limits
                ),
                limits.validate_max_tokens(
                    self.get_query_argument("max_tokens", None), self.limits, from_query=True
                ),
            )
            # The response first: then the start event leaves with its head
            # as soon as the stream exists.
            if not self.open_event_stream("sse"):
                return
            stream = await self.store.create(request)
            metrics.stream_started(stream, "sse")
            after = -1
        self.relays.watch.drainable.add(self)
        frames = metrics.counting(SSEFrames(stream.id, self.relays.retry_ms), stream, "sse")
        self.relay_events(stream, after, frames, "sse")

    def drain(self, retry_ms: int) -> None:
        """The server is shutting down (drain): end this response after a
        ``retry`` hint, so the client reconnects (elsewhere) in ``retry_ms``
        and resumes with ``Last-Event-ID``; the stream goes on."""
        sink = self._sink
        if sink is None or sink.closed:
            return
        sink.write(sse.encode_retry(retry_ms))
        for relay in list(sink.relays):
            relay.stop("drain")
