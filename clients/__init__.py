"""Python clients for twinstream: the same stream over SSE or WebSocket.

    import clients
    for piece in clients.stream("Tell me about rivers", transport="ws").deltas():
        print(piece, end="", flush=True)

Both transports reconnect on their own and resume after the last event seen;
errors are the :class:`ClientError` subclasses in :mod:`clients.errors`.

The modules: :mod:`~clients.api` (``connect``, ``stream``, ``complete``),
:mod:`~clients.options` (their connection keywords), :mod:`~clients.base`
(the ``Stream`` callers iterate), :mod:`~clients.session` (a stream's state,
dedupe and the reconnect decision; no I/O), the transports
:mod:`~clients.sse_client` and :mod:`~clients.ws_client`, the SSE decoder
:mod:`~clients.sse`, :mod:`~clients.aio` (async) and :mod:`~clients.cli`.
"""

from __future__ import annotations

from . import aio
from .api import TRANSPORTS, Client, complete, connect, stream
from .base import Stream
from .errors import (
    ClientError,
    ConnectionLost,
    HTTPStatusError,
    MalformedData,
    ResumeFailed,
    ServerUnreachable,
    StreamError,
    Timeout,
    WrongContentType,
)
from .net import DEFAULT_URL
from .session import ReconnectPolicy, StreamStats
from .sse_client import SSEClient, SSEStream
from .ws_client import WebSocketClient, WebSocketStream

__all__ = [
    "DEFAULT_URL",
    "TRANSPORTS",
    "aio",
    "connect",
    "stream",
    "complete",
    "Client",
    "Stream",
    "StreamStats",
    "ReconnectPolicy",
    "SSEClient",
    "SSEStream",
    "WebSocketClient",
    "WebSocketStream",
    "ClientError",
    "ServerUnreachable",
    "Timeout",
    "HTTPStatusError",
    "WrongContentType",
    "MalformedData",
    "StreamError",
    "ConnectionLost",
    "ResumeFailed",
]
