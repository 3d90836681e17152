"""``GET {chat_path}`` upgraded: the AI SDK's ``WebSocketChatTransport``.

Any number of chats at once on one socket, each request (``send`` or
``resume``) answered with ``start``, numbered ``chunk`` frames and ``end``
(``server/wire/ui_message_socket.py``); ``resume`` of a chat with no active
answer gets ``no-active``; ``abort`` stops the request's answer on whichever
process generates it, as ``POST {chat_path}/{chatId}/stop`` does. A dropped
socket leaves its answers running, to be resumed on any process over either
transport. A malformed frame gets an ``error`` frame and the socket stays
open; drain, slow consumers and keepalive are the ``/ws`` socket's
(:class:`~server.handlers.websocket.StreamSocketHandler`), and so is the cap on
the answers one socket may have generating at once.
"""

from __future__ import annotations

from typing import Any

from ..core.store import StreamStore
from ..core.ui_chat_answers import Answer, active_answer, start_answer, stop_answer
from ..wire import errors
from ..wire.limits import Limits
from ..wire.ui_message_chunks import UIMessageView
from ..wire.ui_message_socket import (
    AbortFrame,
    ClientFrame,
    FrameError,
    ResumeFrame,
    SendFrame,
    SocketChunks,
    error_frame,
    parse_client_frame,
    request_frame,
)
from .event_stream import RelayOptions
from .websocket import SocketOptions, StreamSocketHandler, TextView

__all__ = ["UIChatSocketHandler"]


def _chunks_view(chunks: SocketChunks) -> TextView:
    """One request's ``chunk`` frames (then ``end``), as a socket's view."""
    return lambda first_seq, texts: chunks.frames(texts)


class UIChatSocketHandler(StreamSocketHandler):
    """One socket, any number of chat requests, each followed by its ``requestId``
    (the relay carries the request's chat id, for ``abort``)."""

    TRANSPORT = "ai-ws"
    BINARY = ("binary_not_supported", "send JSON text frames")

    def initialize(  # type: ignore[override]
        self,
        options: SocketOptions,
        store: StreamStore,
        limits: Limits,
        relays: RelayOptions,
        resume_grace: float,
    ) -> None:
        super().initialize(options, store, limits, relays)
        self.resume_grace = resume_grace

    def parse(self, text: str) -> ClientFrame:
        return parse_client_frame(text, self.limits)

    async def handle(self, frame: ClientFrame) -> None:
        if isinstance(frame, SendFrame):
            await self._send_request(frame)
        elif isinstance(frame, ResumeFrame):
            await self._resume_request(frame)
        else:
            await self._abort(frame)

    def error_frame(self, exc: errors.ProtocolError, request: Any) -> bytes:
        if isinstance(exc, FrameError):
            request_id = exc.request_id
        else:
            request_id = request.request_id if request is not None else ""
        return error_frame(request_id, f"{exc.code}: {exc.message}").encode()

    async def _send_request(self, frame: SendFrame) -> None:
        self.admit_start(what="answers")
        answer = await start_answer(self.store, frame.request)
        self.started(answer.stream)
        self._relay(frame.request_id, frame.request.chat_id, answer, -1)

    async def _resume_request(self, frame: ResumeFrame) -> None:
        answer = await active_answer(self.store, frame.chat_id, self.resume_grace)
        if answer is None:
            self.shared.metrics.resume(self.TRANSPORT, "no_active")
            self.send_text(request_frame("no-active", frame.request_id).encode())
            return
        self.shared.metrics.resume(self.TRANSPORT, "resumed", answer.stream)
        self._relay(frame.request_id, frame.chat_id, answer, frame.last_sequence)

    async def _abort(self, frame: AbortFrame) -> None:
        relay = self._following.pop(frame.request_id, None)
        if relay is not None:
            relay.stop()  # the SDK has closed the request's stream: nothing more to send
            await stop_answer(self.store, relay.subject)

    def _relay(self, request_id: str, chat_id: str, answer: Answer, last_sequence: int) -> None:
        """Follow ``answer`` as ``request_id`` (a request id used again replaces
        its earlier relay here)."""
        if self._sink is None or self._sink.closed:
            return
        self.send_text(request_frame("start", request_id).encode())
        chunks = SocketChunks(UIMessageView(answer.message_id), request_id, last_sequence)
        self.follow(request_id, answer.stream, -1, _chunks_view(chunks), subject=chat_id)
