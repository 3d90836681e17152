"""``POST /v1/chat/completions`` and ``GET /v1/models``: enough of OpenAI's API
that the official SDK works with ``base_url=http://host:port/v1``.

Completions run through the same streams as ``/sse`` and ``/ws``; there is no
resume here (OpenAI's protocol has none), so a closed connection cancels
its stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac

from tornado.iostream import StreamClosedError

from . import openai_chunks, protocol, sse
from .chat_request import parse_chat_body
from .errors import ApiError, Unauthorized
from .streams import MemoryStreamStore, Stream
from .web import JsonErrorHandler, begin_event_stream, create_stream

__all__ = ["ChatCompletionsHandler", "ModelsHandler", "ModelHandler"]

_HEARTBEAT = sse.encode_comment("heartbeat")


class _OpenAIHandler(JsonErrorHandler):
    def initialize(
        self,
        store: MemoryStreamStore,
        limits: protocol.Limits,
        api_key: str | None = None,
        heartbeat: float = 15.0,
    ) -> None:
        self.store = store
        self.limits = limits
        self.api_key = api_key
        self.heartbeat = heartbeat

    def prepare(self) -> None:
        if self.api_key:
            given = self.request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                raise Unauthorized()


class ModelsHandler(_OpenAIHandler):
    def get(self) -> None:
        model = self.store.backend.model
        self.write({"object": "list", "data": [openai_chunks.model_object(model)]})


class ModelHandler(_OpenAIHandler):
    """``GET /v1/models/{id}``: the served model, or 404 ``model_not_found``."""

    def get(self, model_id: str) -> None:
        model = self.store.backend.model
        if model_id != model:
            raise ApiError(
                404, "model_not_found", f"this server serves one model, {model!r}; see /v1/models"
            )
        self.write(openai_chunks.model_object(model))


class ChatCompletionsHandler(_OpenAIHandler):
    """Streams ``chat.completion.chunk`` events ending in ``data: [DONE]``,
    or answers one ``chat.completion`` when ``stream`` is false."""

    _stream: Stream | None = None
    _relay: asyncio.Task[None] | None = None

    def compute_etag(self) -> None:
        return None

    def prepare(self) -> None:
        super().prepare()
        try:
            self.chat, self.streaming, self.include_usage = parse_chat_body(
                self.request.body, self.limits
            )
        except protocol.ProtocolError as exc:
            raise ApiError.from_protocol(exc) from None

    async def post(self) -> None:
        self._stream = stream = create_stream(self.store, self.chat)
        if not self.streaming:
            await stream.wait_ended()
            try:
                self.write(openai_chunks.completion(stream.events, *self._identity(stream)))
            except protocol.ProtocolError as exc:  # error or cancelled
                raise ApiError.from_protocol(exc) from None
            return
        begin_event_stream(self)
        self._relay = asyncio.ensure_future(self._relay_chunks(stream))
        try:
            await self._relay
        except (asyncio.CancelledError, StreamClosedError):
            stream.cancel()
            return
        self.finish()

    def _identity(self, stream: Stream) -> tuple[str, int, str]:
        """The completion's id, created time and model, the same in every chunk."""
        return f"chatcmpl-{stream.id}", int(stream.events[0].get("created", 0)), stream.model

    async def _relay_chunks(self, stream: Stream) -> None:
        identity = self._identity(stream)
        # Heartbeats as on /sse: one comment line, which both openai SDKs skip;
        # behind a proxy (nginx: proxy_read_timeout 60 s) they keep a slow
        # first token from cutting the stream.
        async with contextlib.aclosing(stream.follow(heartbeat=self.heartbeat or None)) as events:
            async for event in events:
                if event is None:
                    self.write(_HEARTBEAT)
                else:
                    for payload in openai_chunks.chunk_payloads(
                        event, *identity, self.include_usage
                    ):
                        self.write(sse.encode_event(payload))
                await self.flush()

    def on_connection_close(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
        elif self._stream is not None and not self.streaming:
            self._stream.cancel()  # nobody waits for the whole answer any more
