"""Python clients for twinstream: the same stream over SSE or WebSocket.

    import clients
    for piece in clients.stream("Tell me about rivers", transport="ws").deltas():
        print(piece, end="", flush=True)

Both transports reconnect on their own and resume after the last event seen;
errors are the :class:`ClientError` subclasses in :mod:`clients.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import DEFAULT_URL, ReconnectPolicy, Stream, StreamStats
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

TRANSPORTS = ("sse", "ws")
Client = SSEClient | WebSocketClient


def connect(
    transport: str = "sse",
    url: str = DEFAULT_URL,
    *,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    reconnect: ReconnectPolicy | None = None,
    api_key: str | None = None,
) -> Client:
    """A client for one server over ``transport`` (``"sse"`` or ``"ws"``).

    Call ``.stream(prompt, max_tokens)`` (or ``.stream(messages=[...],
    **params)``) on it for each completion. A
    WebSocket client keeps one socket for all of its streams; close it (or
    use ``with``) when done. ``read_timeout`` is the longest silence
    tolerated mid-stream (the server sends SSE heartbeats every 15 s and
    WebSocket pings every 20 s by default). ``api_key`` is sent as
    ``Authorization: Bearer KEY`` to a server that needs one.
    """
    client_class: type[Client]
    if transport == "sse":
        client_class = SSEClient
    elif transport == "ws":
        client_class = WebSocketClient
    else:
        raise ValueError(f"unknown transport {transport!r}; use 'sse' or 'ws'")
    return client_class(
        url,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        reconnect=reconnect,
        api_key=api_key,
    )


def stream(
    prompt: str | None = None,
    transport: str = "sse",
    url: str = DEFAULT_URL,
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    max_tokens: int | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    reconnect: ReconnectPolicy | None = None,
    api_key: str | None = None,
    **params: Any,
) -> Stream:
    """One completion of a ``prompt`` or a conversation (``messages=``, OpenAI
    message objects), with any Chat Completions parameters as keywords
    (``temperature``, ``stop``, ``seed``, ``tools``, ``response_format``...).
    Iterate the result for events, ``.deltas()`` for text pieces,
    ``.collect()`` for the whole text; ``.message()`` is the reply as an
    ``assistant`` message for the next turn. The connection is opened when
    reading starts and closed when the stream ends or is closed."""
    client = connect(
        transport,
        url,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        reconnect=reconnect,
        api_key=api_key,
    )
    result = client.stream(prompt, max_tokens, messages=messages, **params)
    if isinstance(result, WebSocketStream):
        result.owns_client = True
    return result


def complete(
    prompt: str | None = None,
    transport: str = "sse",
    url: str = DEFAULT_URL,
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    max_tokens: int | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    reconnect: ReconnectPolicy | None = None,
    api_key: str | None = None,
    **params: Any,
) -> str:
    """The whole completion text (blocks until the stream ends)."""
    with stream(
        prompt,
        transport,
        url,
        messages=messages,
        max_tokens=max_tokens,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        reconnect=reconnect,
        api_key=api_key,
        **params,
    ) as result:
        return result.collect()


# After the names it imports from this package exist: `import clients` is
# enough to use clients.aio.astream(...).
from . import aio  # noqa: E402
