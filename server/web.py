"""Shared handler plumbing (JSON errors), health, the demo page and 404s."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import tornado.web
from tornado.iostream import IOStream

from . import protocol
from .backends.base import ChatRequest
from .errors import ApiError, StreamNotFound, error_body
from .streams import MemoryStreamStore, Stream

__all__ = [
    "JsonErrorHandler",
    "HealthHandler",
    "IndexHandler",
    "CancelHandler",
    "ConnectionRegistry",
    "DropHandler",
    "NotFoundHandler",
    "STATIC_DIR",
]

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class JsonErrorHandler(tornado.web.RequestHandler):
    """Every error is a JSON body with a stable code; never a traceback."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            code, message = exc.code, exc.message
        elif status_code >= 500:
            code, message = "internal_error", "the server failed; the error was logged"
        else:
            code = _CODES.get(status_code, "http_error")
            try:
                message = HTTPStatus(status_code).phrase
            except ValueError:
                message = "request failed"
        if (metrics := self.settings.get("metrics")) is not None:
            metrics.error(code)  # issue 10: errors by code
        self.clear_header("Content-Encoding")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(error_body(status_code, code, message)))


def create_stream(store: MemoryStreamStore, request: ChatRequest) -> Stream:
    """``store.create``, with its refusal (``too_many_streams``) as an ApiError."""
    try:
        return store.create(request)
    except protocol.ProtocolError as exc:
        raise ApiError.from_protocol(exc) from None


def begin_event_stream(handler: tornado.web.RequestHandler) -> IOStream | None:
    """Make ``handler``'s response a ``text/event-stream`` that nothing holds back;
    returns the connection's IOStream (None if it has none).

    The article's Rack::ETag trap, Tornado edition: with ``compress_response``
    on, GZipContentEncoding buffers ``text/*`` bodies, so the handler's output
    transforms are dropped (call before the first write). Tornado sets
    TCP_NODELAY only at ``finish()``; without it Nagle's algorithm holds small
    token writes back for an ACK.
    """
    handler._transforms = []
    handler.set_header("Content-Type", "text/event-stream; charset=utf-8")
    handler.set_header("Cache-Control", "no-cache")
    handler.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer this response
    connection_stream: IOStream | None = getattr(handler.request.connection, "stream", None)
    if connection_stream is not None:
        connection_stream.set_nodelay(True)
    return connection_stream


class HealthHandler(JsonErrorHandler):
    def initialize(self, store: MemoryStreamStore) -> None:
        self.store = store

    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.write({"status": "ok", "streams": len(self.store)})


class IndexHandler(JsonErrorHandler):
    """The browser demo (``server/static/index.html``)."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        with open(os.path.join(STATIC_DIR, "index.html"), "rb") as page:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.write(page.read())


class _StreamActionHandler(JsonErrorHandler):
    """A ``POST ?stream=S`` action on a stream. The stream id is an unguessable
    capability and no cookie is involved, so there is no XSRF check."""

    def check_xsrf_cookie(self) -> None:
        return None

    def target_stream(self, store: MemoryStreamStore) -> Stream:
        """The stream named by ``?stream=``: 400 if malformed, 404 if unknown."""
        try:
            stream_id = protocol.validate_stream_id(self.get_query_argument("stream", None))
        except protocol.ProtocolError as exc:
            raise ApiError.from_protocol(exc) from None
        stream = store.get(stream_id)
        if stream is None:
            raise StreamNotFound(stream_id)
        return stream


class CancelHandler(_StreamActionHandler):
    """``POST /cancel?stream=S``: stop a stream's generation (SSE has no
    upstream channel, so this is its Stop button). Readers get ``done`` with
    ``finish_reason: "cancelled"``."""

    def initialize(self, store: MemoryStreamStore) -> None:
        self.store = store

    def post(self) -> None:
        stream = self.target_stream(self.store)
        self.write({"stream": stream.id, "cancelled": stream.cancel()})


class ConnectionRegistry:
    """Which open connections are relaying which stream, so that
    ``POST /debug/drop`` can cut them (to demonstrate and test recovery)."""

    def __init__(self) -> None:
        self._closers: dict[str, set[Callable[[], None]]] = {}

    def add(self, stream_id: str, close: Callable[[], None]) -> None:
        self._closers.setdefault(stream_id, set()).add(close)

    def discard(self, stream_id: str, close: Callable[[], None]) -> None:
        closers = self._closers.get(stream_id)
        if closers is not None:
            closers.discard(close)
            if not closers:
                del self._closers[stream_id]

    async def wait_idle(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until no connection relays any stream."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._closers and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    def drop(self, stream_id: str) -> int:
        """Abruptly close every connection relaying ``stream_id``; how many."""
        closers = self._closers.pop(stream_id, set())
        for close in closers:
            close()
        return len(closers)


class DropHandler(_StreamActionHandler):
    """``POST /debug/drop?stream=S``: cut the TCP connections that relay S, as
    a network failure would. The stream goes on; clients resume. For demos
    and tests; ``--no-debug-drop`` removes it."""

    def initialize(self, store: MemoryStreamStore, connections: ConnectionRegistry) -> None:
        self.store = store
        self.connections = connections

    def post(self) -> None:
        stream = self.target_stream(self.store)
        self.write({"stream": stream.id, "dropped": self.connections.drop(stream.id)})


class NotFoundHandler(JsonErrorHandler):
    def prepare(self) -> None:
        raise ApiError(404, "not_found", f"no such endpoint: {self.request.path[:200]}")
