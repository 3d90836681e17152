"""``GET {chat_path}`` upgraded: the AI SDK's ``WebSocketChatTransport``.

Any number of chats at once on one socket, each request (``send`` or
``resume``) answered with ``start``, numbered ``chunk`` frames and ``end``
(``server/wire/ui_message_socket.py``); ``resume`` of a chat with no active
answer gets ``no-active``; ``abort`` stops the request's answer on whichever
process generates it, as ``POST {chat_path}/{chatId}/stop`` does. A dropped
socket leaves its answers running, to be resumed on any process over either
transport. A malformed frame gets an ``error`` frame and the socket stays
open; drain, slow consumers and keepalive are the ``/ws`` socket's
(:class:`~server.handlers.websocket.StreamSocketHandler`).
"""

from __future__ import annotations

import logging

from tornado.websocket import WebSocketProtocol13

from .. import tornado_adapter
from ..core.relay import Outcome, Relay
from ..core.store import StreamStore
from ..core.ui_chat_answers import Answer, active_answer, start_answer, stop_answer
from ..wire import errors
from ..wire.limits import Limits
from ..wire.ui_message_chunks import UIMessageView
from ..wire.ui_message_socket import (
    AbortFrame,
    FrameError,
    ResumeFrame,
    SendFrame,
    SocketChunks,
    error_frame,
    parse_client_frame,
    request_frame,
)
from .event_stream import RelayOptions
from .websocket import SocketOptions, StreamSocketHandler

__all__ = ["UIChatSocketHandler"]

log = logging.getLogger("twinstream.ws")
TRANSPORT = "ai-ws"


class _ChunkFrames:
    """A relay's frame function: one request's ``chunk`` frames (then ``end``)."""

    __slots__ = ("connection", "chunks")

    def __init__(self, connection: WebSocketProtocol13, chunks: SocketChunks) -> None:
        self.connection = connection
        self.chunks = chunks

    def __call__(self, first_seq: int, texts: list[bytes]) -> bytes:
        frame, connection = tornado_adapter.websocket_frame, self.connection
        frames = self.chunks.frames(texts)
        if len(frames) == 1:
            return frame(connection, frames[0])
        return b"".join(frame(connection, text) for text in frames)


class UIChatSocketHandler(StreamSocketHandler):
    """One socket, any number of chat requests, keyed by ``requestId``."""

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
        #: requestId -> chat id, for ``abort``
        self._chats: dict[str, str] = {}

    async def get(self, *args: str, **kwargs: str) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            # A plain GET (a browser, curl): say what this path is, as JSON.
            self.set_status(400)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(
                errors.error_json(
                    400,
                    "websocket_required",
                    f"GET {self.request.path} is the WebSocket chat transport (upgrade the "
                    f"connection); POST {self.request.path} is the SSE one",
                )
            )
            return
        await super().get(*args, **kwargs)

    def write_error(self, status_code: int, **kwargs: object) -> None:
        # Before the upgrade (another method: 405): the JSON every endpoint answers.
        self.set_header("Content-Type", "application/json; charset=utf-8")
        code = "http_error"
        if status_code == 405:
            code = "method_not_allowed"
            self.set_header("Allow", "GET, POST")  # GET upgraded, or POST (the SSE transport)
        self.finish(errors.error_json(status_code, code, f"HTTP {status_code}"))

    async def on_message(self, message: str | bytes) -> None:
        """Every error becomes an ``error`` frame here, and only here."""
        request_id = ""
        try:
            if isinstance(message, bytes):
                raise FrameError("", "binary_not_supported", "send JSON text frames")
            frame = parse_client_frame(message, self.limits)
            request_id = frame.request_id
            if isinstance(frame, SendFrame):
                await self._send_request(frame)
            elif isinstance(frame, ResumeFrame):
                await self._resume_request(frame)
            else:
                await self._abort(frame)
        except FrameError as exc:
            self._send_chat_error(exc.request_id, exc)
        except errors.ProtocolError as exc:
            self._send_chat_error(request_id, exc)
        except Exception:
            log.exception("a chat WebSocket frame failed")
            self._send_chat_error(request_id, errors.internal_error())

    def _send_chat_error(self, request_id: str, exc: errors.ProtocolError) -> None:
        self.shared.metrics.error(exc.code)
        self._chats.pop(request_id, None)
        self._write_text(error_frame(request_id, f"{exc.code}: {exc.message}"))

    def _write_text(self, text: str) -> None:
        connection = self.ws_connection
        if self._sink is None or not isinstance(connection, WebSocketProtocol13):
            return
        self._sink.write(tornado_adapter.websocket_frame(connection, text.encode()))

    async def _send_request(self, frame: SendFrame) -> None:
        if len(self._following) >= self.shared.max_streams_per_socket:
            raise errors.ProtocolError(
                "too_many_streams",
                f"this socket already follows {len(self._following)} answers; wait for one to end",
            )
        refusal = self.shared.edge.allow_start(self.request.remote_ip or "")  # rate limit
        if refusal is not None:
            raise errors.ProtocolError(refusal.code, refusal.message, 429)
        answer = await start_answer(self.store, frame.request)
        self.shared.metrics.stream_started(answer.stream, TRANSPORT)
        self._relay(frame.request_id, frame.request.chat_id, answer, -1)

    async def _resume_request(self, frame: ResumeFrame) -> None:
        answer = await active_answer(self.store, frame.chat_id, self.resume_grace)
        if answer is None:
            self.shared.metrics.resume(TRANSPORT, "no_active")
            self._write_text(request_frame("no-active", frame.request_id))
            return
        self.shared.metrics.resume(TRANSPORT, "resumed", answer.stream)
        self._relay(frame.request_id, frame.chat_id, answer, frame.last_sequence)

    async def _abort(self, frame: AbortFrame) -> None:
        chat_id = self._chats.pop(frame.request_id, None)
        relay = self._following.pop(frame.request_id, None)
        if relay is not None:
            relay.stop()  # the SDK has closed the request's stream: nothing more to send
        if chat_id is not None:
            await stop_answer(self.store, chat_id)

    def _relay(self, request_id: str, chat_id: str, answer: Answer, last_sequence: int) -> None:
        sink = self._sink
        connection = self.ws_connection
        if sink is None or sink.closed or not isinstance(connection, WebSocketProtocol13):
            return
        previous = self._following.pop(request_id, None)
        if previous is not None:
            previous.stop()  # a request id used again replaces its earlier answer here
        self._chats[request_id] = chat_id
        self._write_text(request_frame("start", request_id))
        chunks = SocketChunks(UIMessageView(answer.message_id), request_id, last_sequence)
        frames = _ChunkFrames(connection, chunks)
        counted = self.shared.metrics.counting(frames, answer.stream, TRANSPORT)
        relay = Relay(answer.stream, -1, sink, counted)
        self._following[request_id] = relay
        relay.start()

    def relay_stopped(self, relay: Relay, outcome: Outcome) -> None:
        for request_id, following in list(self._following.items()):
            if following is relay:
                del self._following[request_id]
                self._chats.pop(request_id, None)
                break
        if self._going_away:
            super().relay_stopped(relay, outcome)

    def on_close(self) -> None:
        super().on_close()
        self._chats.clear()
