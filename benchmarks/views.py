"""The protocol views twinstream speaks, one registry entry each, for the protocol table
(:mod:`benchmarks.protocols`) and the conversation part (:mod:`benchmarks.conversation`).

A view is one way a client gets a stream's tokens: twinstream's own SSE and WebSocket
events, the ``/v1`` chat chunks, and (as they land) the Responses API over SSE and its
WebSocket mode, the AI SDK's UI message stream over SSE and over its WebSocket transport.
Each is a :class:`View`: a name, what it is, and how a raw client opens a *session* on a
server (one connection, or the connection an HTTP client keeps alive) and runs
completions on it one after another. Everything the parts measure follows from that:
bytes on the wire per token (through a counting proxy), server CPU per token at many
streams, time to the first token on a new session (cold) and a reused one (warm), a
20-turn conversation.

**Adding a view is one entry in** :data:`VIEWS`, built with :func:`sse_view` (an HTTP
request per completion whose response is ``text/event-stream``) or :func:`ws_view` (a
message per completion on one WebSocket), each given

* how to ask: ``request(prompt, max_tokens)`` -> ``(path, JSON body or None)`` for SSE
  (``None``: ``GET path``), or the JSON message to send for WebSocket (its ``path`` fixed);
* how many tokens an event carries: ``tokens(event)``, the event's ``data`` parsed as JSON
  (``[DONE]`` and other non-JSON data arrive as the string itself);
* for WebSocket, when a completion has ended: ``last(event)``; for SSE the response's end.

For example, the Responses API's two transports (the Responses issue's endpoints)::

    def responses_body(prompt, max_tokens):
        return "/v1/responses", {"model": "m", "input": prompt, "stream": True,
                                 "max_output_tokens": max_tokens}

    def responses_tokens(event):
        return int(isinstance(event, dict) and event.get("type") == "response.output_text.delta")

    def responses_last(event):
        return isinstance(event, dict) and event.get("type") in (
            "response.completed", "response.failed", "response.incomplete", "error")

    sse_view("responses sse", "POST /v1/responses, stream: true", responses_body,
             responses_tokens)
    ws_view("responses ws", "GET /v1/responses (WebSocket mode), response.create",
            "/v1/responses",
            lambda p, n: {"type": "response.create", **responses_body(p, n)[1]},
            responses_tokens, responses_last)

and the AI SDK's UI message stream (the AI SDK issue's), whose text arrives as ``text-delta``
parts::

    def ui_tokens(event):
        return int(isinstance(event, dict) and event.get("type") == "text-delta")

    sse_view("ai-sdk sse", "POST /api/chat: UI message stream", lambda p, n: (
        "/api/chat", {"messages": [{"id": "1", "role": "user",
                                    "parts": [{"type": "text", "text": p}]}]}), ui_tokens)

Put the entry in :data:`VIEWS`; ``tests/benchmarks/test_protocols.py`` then checks that it
counts exactly the model's tokens, cold and warm, and the protocol table, the conversation
part and the README pick it up.

A session's first completion is a cold start (it opens the connection); the next ones
are warm. ``compression`` offers gzip (SSE) or permessage-deflate (WebSocket); the
server decides, and :attr:`Completion.compressed` says what it did.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection

from .clients import Endpoint, HTTPStatusError, SSEConnection, open_websocket, sse_path

__all__ = [
    "Completion",
    "Session",
    "View",
    "VIEWS",
    "view_named",
    "sse_view",
    "ws_view",
]


@dataclass
class Completion:
    """What one completion looked like to the client."""

    tokens: int = 0
    #: seconds from asking (before connecting, on a cold start) to the first token
    first_token: float | None = None
    seconds: float = 0.0
    error: str | None = None
    compressed: bool = False  # gzip or permessage-deflate was used


class Session(Protocol):
    """Completions one after another on one connection (reopened if the server closed it)."""

    async def complete(self, prompt: str, max_tokens: int) -> Completion: ...

    async def close(self) -> None: ...


def _parse(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data  # "[DONE]" and the like


@dataclass(frozen=True)
class View:
    """One protocol view: its table name, what it is, and how to open a session."""

    name: str
    what: str
    open: Callable[[Endpoint, bool], Session]
    #: ``sse``: a request per completion; ``ws``: a message per completion on one socket
    transport: str


# -- SSE views: one HTTP request per completion -------------------------------------------

SSERequest = Callable[[str, int], tuple[str, Any]]
Tokens = Callable[[Any], int]


class _SSESession:
    def __init__(
        self, endpoint: Endpoint, compression: bool, request: SSERequest, tokens: Tokens
    ) -> None:
        self.endpoint = endpoint
        self.compression = compression
        self.request = request
        self.tokens = tokens
        self.connection: SSEConnection | None = None

    async def complete(self, prompt: str, max_tokens: int) -> Completion:
        began = time.perf_counter()
        if self.connection is None or not (self.connection.reusable and self.connection.connected):
            if self.connection is not None:
                await self.connection.close()
            self.connection = SSEConnection(self.endpoint, accept_gzip=self.compression)
        path, body = self.request(prompt, max_tokens)
        payload = None if body is None else json.dumps(body).encode()
        done = Completion()
        try:
            async for _id, data in self.connection.events(path, body=payload):
                count = self.tokens(_parse(data))
                if count and done.first_token is None:
                    done.first_token = time.perf_counter() - began
                done.tokens += count
        except (OSError, ValueError, HTTPStatusError) as exc:
            done.error = f"{type(exc).__name__}: {exc}"
            self.connection.abort()
        done.compressed = self.connection.content_encoding == "gzip"
        done.seconds = time.perf_counter() - began
        return done

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


def sse_view(name: str, what: str, request: SSERequest, tokens: Tokens) -> View:
    """A view served as ``text/event-stream``, one request per completion (keep-alive)."""
    return View(
        name,
        what,
        lambda endpoint, compression: _SSESession(endpoint, compression, request, tokens),
        "sse",
    )


# -- WebSocket views: one message per completion on one socket ----------------------------

WSMessage = Callable[[str, int], Any]
Last = Callable[[Any], bool]


class _WSSession:
    def __init__(
        self,
        endpoint: Endpoint,
        compression: bool,
        path: str,
        message: WSMessage,
        tokens: Tokens,
        last: Last,
    ) -> None:
        self.endpoint = endpoint
        self.compression = compression
        self.path = path
        self.message = message
        self.tokens = tokens
        self.last = last
        self.websocket: ClientConnection | None = None

    async def complete(self, prompt: str, max_tokens: int) -> Completion:
        began = time.perf_counter()
        done = Completion()
        try:
            if self.websocket is None:
                self.websocket = await open_websocket(self.endpoint, self.compression, self.path)
            await self.websocket.send(json.dumps(self.message(prompt, max_tokens)))
            while True:
                event = _parse(str(await self.websocket.recv()))
                count = self.tokens(event)
                if count and done.first_token is None:
                    done.first_token = time.perf_counter() - began
                done.tokens += count
                if self.last(event):
                    break
            extensions = self.websocket.protocol.extensions
            done.compressed = any("deflate" in type(e).__name__.lower() for e in extensions)
        except Exception as exc:  # a closed socket, a refused handshake: the next one reopens
            done.error = f"{type(exc).__name__}: {exc}"
            await self.close()
        done.seconds = time.perf_counter() - began
        return done

    async def close(self) -> None:
        if self.websocket is not None:
            websocket, self.websocket = self.websocket, None
            await websocket.close()


def ws_view(
    name: str, what: str, path: str, message: WSMessage, tokens: Tokens, last: Last
) -> View:
    """A view over one WebSocket at ``path``: a message per completion."""
    return View(
        name,
        what,
        lambda endpoint, compression: _WSSession(
            endpoint, compression, path, message, tokens, last
        ),
        "ws",
    )


# -- the views that exist ----------------------------------------------------------------


def _twinstream_tokens(event: Any) -> int:
    return int(isinstance(event, dict) and event.get("type") == "delta")


def _twinstream_last(event: Any) -> bool:
    return isinstance(event, dict) and event.get("type") in ("done", "error")


def _chat_body(prompt: str, max_tokens: int) -> tuple[str, Any]:
    return "/v1/chat/completions", {
        "model": "twinstream-synthetic",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": True,
    }


def _chat_tokens(event: Any) -> int:
    if not isinstance(event, dict):
        return 0
    choices = event.get("choices") or [{}]
    return int(bool((choices[0].get("delta") or {}).get("content")))


def _responses_body(prompt: str, max_tokens: int) -> tuple[str, Any]:
    return "/v1/responses", {"input": prompt, "max_output_tokens": max_tokens, "stream": True}


def _responses_create(prompt: str, max_tokens: int) -> Any:
    # WebSocket mode: the POST body without stream (OpenAI's response.create message)
    return {"type": "response.create", "input": prompt, "max_output_tokens": max_tokens}


def _responses_tokens(event: Any) -> int:
    return int(isinstance(event, dict) and event.get("type") == "response.output_text.delta")


def _responses_last(event: Any) -> bool:
    return isinstance(event, dict) and event.get("type") in (
        "response.completed",
        "response.incomplete",
        "response.failed",
        "error",
    )


#: chat ids: unique across the client worker processes (a new answer for a chat id stops
#: the chat's previous one, as useChat expects)
_UI_CHATS = (f"bench-{secrets.token_hex(6)}-{n}" for n in itertools.count())


def _ui_messages(prompt: str) -> list[dict[str, Any]]:
    return [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": prompt}]}]


def _ui_chat_body(prompt: str, max_tokens: int) -> tuple[str, Any]:
    # DefaultChatTransport's POST: a chat id, UI messages, body fields as parameters
    return "/api/chat", {
        "id": next(_UI_CHATS),
        "messages": _ui_messages(prompt),
        "trigger": "submit-message",
        "max_tokens": max_tokens,
    }


def _ui_chat_send(prompt: str, max_tokens: int) -> Any:
    # WebSocketChatTransport's send frame
    chat = next(_UI_CHATS)
    return {
        "type": "send",
        "requestId": chat,
        "id": chat,
        "trigger": "submit-message",
        "messages": _ui_messages(prompt),
        "headers": {},
        "body": {"max_tokens": max_tokens},
    }


def _ui_tokens(event: Any) -> int:
    if not isinstance(event, dict):
        return 0
    if event.get("type") == "chunk":  # the WebSocket transport wraps each chunk
        event = event.get("chunk") or {}
    return int(event.get("type") == "text-delta")


def _ui_last(event: Any) -> bool:
    return isinstance(event, dict) and event.get("type") in ("end", "error", "no-active")


#: every view the server speaks, in the table's order. Add a view here (see the module
#: docstring); the protocol table and the conversation part pick it up.
VIEWS: tuple[View, ...] = (
    sse_view(
        "twinstream sse",
        "GET /sse: twinstream's events",
        lambda prompt, max_tokens: (sse_path(prompt, max_tokens), None),
        _twinstream_tokens,
    ),
    ws_view(
        "twinstream ws",
        "GET /ws: twinstream's events, a start message per stream",
        "/ws",
        lambda prompt, max_tokens: {"type": "start", "prompt": prompt, "max_tokens": max_tokens},
        _twinstream_tokens,
        _twinstream_last,
    ),
    sse_view(
        "chat chunks",
        "POST /v1/chat/completions, stream: true (chat.completion.chunk)",
        _chat_body,
        _chat_tokens,
    ),
    sse_view(
        "responses sse",
        "POST /v1/responses, stream: true (OpenAI's Responses events)",
        _responses_body,
        _responses_tokens,
    ),
    ws_view(
        "responses ws",
        "GET /v1/responses (WebSocket mode), a response.create per response",
        "/v1/responses",
        _responses_create,
        _responses_tokens,
        _responses_last,
    ),
    sse_view(
        "ai sdk sse",
        "POST /api/chat (the AI SDK's DefaultChatTransport: UI message chunks)",
        _ui_chat_body,
        _ui_tokens,
    ),
    ws_view(
        "ai sdk ws",
        "GET /api/chat (the AI SDK's WebSocketChatTransport), a send frame per answer",
        "/api/chat",
        _ui_chat_send,
        _ui_tokens,
        _ui_last,
    ),
)

_BY_NAME = {view.name: view for view in VIEWS}


def view_named(name: str) -> View:
    """The view called ``name`` (KeyError for an unknown one)."""
    return _BY_NAME[name]
