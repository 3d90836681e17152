"""``POST /v1/chat/completions`` and ``GET /v1/models``: enough of OpenAI's API
that the official SDK works with ``base_url=http://host:port/v1``.

Completions run through the same streams as ``/sse`` and ``/ws``; there is no
resume here (OpenAI's protocol has none), so a closed connection cancels
its stream at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ..core.log import StreamLog
from ..wire import chat_chunks, errors, sse
from ..wire.chat_request import parse_chat_body
from .event_stream import EventStreamHandler, StreamEndpoint

__all__ = ["ChatCompletionsHandler", "ModelsHandler", "ModelHandler", "chunk_frames"]


class _OpenAIHandler(StreamEndpoint):
    """The OpenAI-compatible endpoints."""


class ModelsHandler(_OpenAIHandler):
    def get(self) -> None:
        model = self.store.backend.model
        self.write({"object": "list", "data": [chat_chunks.model_object(model)]})


class ModelHandler(_OpenAIHandler):
    """``GET /v1/models/{id}``: the served model, or 404 ``model_not_found``."""

    def get(self, model_id: str) -> None:
        model = self.store.backend.model
        if model_id != model:
            raise errors.ProtocolError(
                "model_not_found", f"this server serves one model, {model!r}; see /v1/models", 404
            )
        self.write(chat_chunks.model_object(model))


def _identity(stream: StreamLog) -> tuple[str, int, str]:
    """The completion's id, created time and model, the same in every chunk."""
    return f"chatcmpl-{stream.id}", stream.created, stream.model


def chunk_frames(stream: StreamLog, include_usage: bool) -> Callable[[int, list[bytes]], bytes]:
    """Frames a stream's events as OpenAI ``chat.completion.chunk`` events
    (:func:`chat_chunks.chunk_payloads`), ending with ``data: [DONE]`` or
    OpenAI's error object, which the SDKs raise on."""
    identity = _identity(stream)

    def frame(first_seq: int, texts: list[bytes]) -> bytes:
        return "".join(
            sse.format_trusted_data(payload)
            for text in texts
            for payload in chat_chunks.chunk_payloads(json.loads(text), *identity, include_usage)
        ).encode()

    return frame


class ChatCompletionsHandler(EventStreamHandler, _OpenAIHandler):
    """Streams ``chat.completion.chunk`` events ending in ``data: [DONE]``,
    or answers one ``chat.completion`` when ``stream`` is false.

    There is no resume on ``/v1`` (OpenAI's protocol has none): when the
    connection closes, the stream is cancelled, so nobody pays for tokens
    nobody reads.
    """

    _stream: StreamLog | None = None

    def prepare(self) -> None:
        self.chat, self.streaming, self.include_usage = parse_chat_body(
            self.request.body, self.limits
        )

    async def post(self) -> None:
        if self.streaming and not self.open_event_stream("v1"):
            return  # the client is gone: start nothing
        self._stream = stream = await self.store.create(self.chat)
        metrics = self.metrics
        metrics.stream_started(stream, "v1")
        if not self.streaming:
            await stream.wait_ended()
            # an error or a cancelled stream raises ProtocolError: 502 / 503 cancelled
            answer = chat_chunks.completion(stream.events, *_identity(stream))
            body = json.dumps(answer).encode()
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.write(body)
            metrics.answered(stream, "v1", len(body))
            return
        frames = metrics.counting(chunk_frames(stream, self.include_usage), stream, "v1")
        self.relay_events(stream, -1, frames, "v1")

    def relay_ended(self, complete: bool) -> None:
        if not complete and self._stream is not None:
            self._stream.cancel()  # nobody reads the rest

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self._stream is not None:
            self._stream.cancel()  # nobody reads the answer any more
