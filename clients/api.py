"""The entry points: :func:`connect` a client, :func:`stream` one completion,
:func:`complete` for its whole text. Their connection keywords are
:class:`~clients.options.Options`, declared once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .base import Stream
from .net import DEFAULT_URL
from .options import Options, split_options
from .sse_client import SSEClient
from .ws_client import WebSocketClient, WebSocketStream

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["TRANSPORTS", "Client", "connect", "stream", "complete"]

Client = SSEClient | WebSocketClient
_CLIENTS: dict[str, type[Client]] = {"sse": SSEClient, "ws": WebSocketClient}
TRANSPORTS = tuple(_CLIENTS)


def connect(transport: str = "sse", url: str = DEFAULT_URL, **options: Unpack[Options]) -> Client:
    """A client for one server over ``transport`` (``"sse"`` or ``"ws"``).

    Call ``.stream(prompt, max_tokens)`` (or ``.stream(messages=[...],
    **params)``) on it for each completion. A
    WebSocket client keeps one socket for all of its streams; close it (or
    use ``with``) when done. The keywords are :mod:`clients.options`'s:
    ``connect_timeout``, ``read_timeout`` (the longest silence tolerated
    mid-stream), ``reconnect`` and ``api_key`` (sent as ``Authorization:
    Bearer KEY`` to a server that needs one).
    """
    client_class = _CLIENTS.get(transport)
    if client_class is None:
        raise ValueError(f"unknown transport {transport!r}; use 'sse' or 'ws'")
    return client_class(url, **options)


def stream(
    prompt: str | None = None,
    transport: str = "sse",
    url: str = DEFAULT_URL,
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    max_tokens: int | None = None,
    **params: Any,
) -> Stream:
    """One completion of a ``prompt`` or a conversation (``messages=``, OpenAI
    message objects), with any Chat Completions parameters as keywords
    (``temperature``, ``stop``, ``seed``, ``tools``, ``response_format``...)
    besides the connection keywords of :func:`connect`.
    Iterate the result for events, ``.deltas()`` for text pieces,
    ``.collect()`` for the whole text; ``.message()`` is the reply as an
    ``assistant`` message for the next turn. The connection is opened when
    reading starts and closed when the stream ends or is closed."""
    options, params = split_options(params)
    client = connect(transport, url, **options)
    result = client.stream(prompt, max_tokens, messages=messages, **params)
    if isinstance(result, WebSocketStream):
        result.owns_client = True
    return result


def complete(
    prompt: str | None = None, transport: str = "sse", url: str = DEFAULT_URL, **options: Any
) -> str:
    """The whole completion text (blocks until the stream ends); takes what
    :func:`stream` takes."""
    with stream(prompt, transport, url, **options) as result:
        return result.collect()
