"""Actions on a stream by id: cancel (SSE's Stop button) and the debug drop."""

from __future__ import annotations

from ..core.relay import Relay
from ..core.store import StreamStore
from ..metrics import Metrics
from ..wire import errors, ids
from .base import JsonErrorHandler
from .event_stream import open_stream


class _StreamActionHandler(JsonErrorHandler):
    """A ``POST ?stream=S`` action on a stream. The stream id is an unguessable
    capability and no cookie is involved, so there is no XSRF check."""

    def initialize(self, metrics: Metrics, store: StreamStore) -> None:
        self.metrics = metrics
        self.store = store

    def check_xsrf_cookie(self) -> None:
        return None

    def target_id(self) -> str:
        """The stream id in ``?stream=``: ProtocolError 400 if malformed."""
        return ids.validate_stream_id(self.get_query_argument("stream", None))


class CancelHandler(_StreamActionHandler):
    """``POST /cancel?stream=S``: stop a stream's generation (SSE has no
    upstream channel, so this is its Stop button). Readers get ``done`` with
    ``finish_reason: "cancelled"``."""

    async def post(self) -> None:
        stream_id = self.target_id()
        cancelled = await self.store.cancel(stream_id)
        if cancelled is None:
            raise errors.stream_not_found()
        self.write({"stream": stream_id, "cancelled": cancelled})


class DropHandler(_StreamActionHandler):
    """``POST /debug/drop?stream=S``: cut the TCP connections that relay S in
    this process, as a network failure would (no close frame, no last chunk).
    The stream goes on; clients resume. For demos and tests;
    ``--no-debug-drop`` removes it."""

    async def post(self) -> None:
        stream = await open_stream(self.store, self.target_id())
        sinks = {relay.sink for relay in list(stream.followers) if isinstance(relay, Relay)}
        for sink in sinks:
            sink.transport.close()
        self.write({"stream": stream.id, "dropped": len(sinks)})
