"""``POST /streams``: start a stream from a whole Chat Completions request.

``EventSource`` can only GET, and a conversation with its parameters does not
belong in a URL; so an SSE client POSTs the request here, gets ``201`` with
the stream id and the URLs to follow it, then opens ``GET /sse?stream=S``.
The stream runs from now on, whether or not anyone follows it; nobody
reading it for the idle timeout cancels it.
"""

from __future__ import annotations

from urllib.parse import quote

from ..core.store import StreamStore
from ..metrics import Metrics
from ..wire import errors
from ..wire.chat_request import parse_chat_request, parse_json_body
from ..wire.limits import Limits
from .base import JsonErrorHandler

__all__ = ["StreamsHandler"]


class StreamsHandler(JsonErrorHandler):
    """Validates the body once (:mod:`server.wire.chat_request`), creates the
    stream through the store and answers where to read it."""

    metrics: Metrics

    def initialize(self, metrics: Metrics, store: StreamStore, limits: Limits) -> None:
        self.metrics = metrics
        self.store = store
        self.limits = limits

    def check_xsrf_cookie(self) -> None:
        # No cookie is involved: the answer (a new stream id) is the capability.
        return None

    async def post(self) -> None:
        content_type = self.request.headers.get("Content-Type", "application/json")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise errors.ProtocolError(
                "unsupported_media_type", "send the request as Content-Type: application/json", 415
            )
        # A ProtocolError (400/413, too_many_streams 503) is answered by JsonErrorHandler.
        request = parse_chat_request(parse_json_body(self.request.body, self.limits), self.limits)
        stream = await self.store.create(request)
        self.metrics.stream_started(stream, "sse")  # read over /sse?stream=S
        stream_id = quote(stream.id)
        sse_url = f"/sse?stream={stream_id}"
        self.set_status(201)
        self.set_header("Location", sse_url)
        self.set_header("Cache-Control", "no-store")
        self.write(
            {
                "stream": stream.id,
                "model": stream.model,
                "urls": {
                    "sse": sse_url,
                    "cancel": f"/cancel?stream={stream_id}",
                },
            }
        )
