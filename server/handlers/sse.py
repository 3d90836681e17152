"""``GET /sse``: one stream as Server-Sent Events, resumable with ``Last-Event-ID``."""

from __future__ import annotations

from ..backends.base import ChatRequest
from ..core.relay import Outcome
from ..core.store import StreamStore
from ..metrics import Metrics
from ..wire import errors, ids, sse
from ..wire.limits import Limits, validate_max_tokens, validate_prompt
from .event_stream import EventStreamHandler, RelayOptions, open_stream
from .resume import open_for_resume

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

    def initialize(
        self, metrics: Metrics, store: StreamStore, limits: Limits, relays: RelayOptions
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.limits = limits
        self.relays = relays

    async def get(self) -> None:
        metrics = self.metrics
        last_event_id = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "last_event_id", None
        )
        if last_event_id:
            try:
                stream_id, after = ids.parse_event_id(last_event_id)
            except errors.ProtocolError as exc:
                metrics.resume("sse", exc.code)
                raise
            resumed = await open_for_resume(
                self.store, metrics, "sse", stream_id, after, "last_event_id"
            )
            if resumed is None:
                # Everything was delivered: 204 tells EventSource to stop
                # reconnecting (WHATWG: a 204 "fails the connection" for good).
                self.set_status(204)
                return
            stream = resumed
        elif self.get_query_argument("stream", None) is not None:  # made by POST /streams
            stream_id = ids.validate_stream_id(self.get_query_argument("stream"))
            stream = await open_stream(self.store, stream_id)
            after = -1  # from its first event
        else:
            # strip=False: the prompt is exactly what the user sent.
            request = ChatRequest.from_prompt(
                validate_prompt(self.get_query_argument("prompt", None, strip=False), self.limits),
                validate_max_tokens(
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

    def drain(self, retry_ms: int, elsewhere: bool) -> None:
        """The server is shutting down. With a shared store (``elsewhere``): end
        this response now, after a ``retry`` hint, so the client reconnects
        (elsewhere) in ``retry_ms`` and resumes with ``Last-Event-ID``; the stream
        goes on. With the memory store nothing can be resumed once the process
        is gone: the hint goes out and the response goes on to its stream's
        terminal event (the store ends the stream by the drain deadline)."""
        sink = self._sink
        if sink is None or sink.closed:
            return
        sink.write(sse.encode_retry(retry_ms))
        if elsewhere:
            for relay in list(sink.relays):
                relay.stop(Outcome.DRAIN)
