"""The AI SDK's ``DefaultChatTransport`` (``useChat``'s default) over SSE:

* ``POST {chat_path}``: the chat's messages in, its answer out as UI message
  chunks (``server/wire/ui_message_chunks.py``), ``data: [DONE]`` last;
* ``GET {chat_path}/{chatId}/stream``: the chat's active answer, replayed from
  its start and followed live (what ``reconnectToStream`` and
  ``useChat({resume: true})`` ask for), ``204`` when there is none;
* ``POST {chat_path}/{chatId}/stop``: stop the chat's answer on whichever
  process generates it (the stream ends with ``abort`` and ``[DONE]``).

A closed connection does not stop the answer (it is resumable); the stop
endpoint does, and the store's idle timeout ends an answer nobody reads.
"""

from __future__ import annotations

from ..core.store import StreamStore
from ..core.ui_chat_answers import Answer, active_answer, start_answer, stop_answer
from ..metrics import Metrics
from ..wire.chat_request import parse_json_body
from ..wire.limits import Limits
from ..wire.ui_message_chunks import SSEChunkFrames, UIMessageView
from ..wire.ui_message_request import check_chat_id, parse_ui_chat
from .event_stream import EventStreamHandler, RelayOptions, StreamEndpoint

__all__ = [
    "UIChatHandler",
    "UIChatStreamHandler",
    "UIChatStopHandler",
    "UI_STREAM_HEADER",
]

#: the header the SDK's docs tell a UI message stream to carry
UI_STREAM_HEADER = ("x-vercel-ai-ui-message-stream", "v1")
TRANSPORT = "ai-sse"


class _ChatHandler(StreamEndpoint):
    def initialize(  # type: ignore[override]
        self,
        metrics: Metrics,
        store: StreamStore,
        limits: Limits,
        relays: RelayOptions,
        resume_grace: float,
    ) -> None:
        super().initialize(metrics, store, limits, relays)
        self.resume_grace = resume_grace


class _AnswerStream(EventStreamHandler, _ChatHandler):
    def relay_answer(self, answer: Answer) -> None:
        """The answer's chunks from its start as this response's body."""
        self.set_header(*UI_STREAM_HEADER)
        self.relays.watch.drainable.add(self)
        frames = SSEChunkFrames(UIMessageView(answer.message_id))
        counted = self.metrics.counting(frames, answer.stream, TRANSPORT)
        self.relay_events(answer.stream, -1, counted, TRANSPORT)

    def drain(self, retry_ms: int, elsewhere: bool) -> None:
        """The server is shutting down. With a shared store: cut the connection
        now, so the SDK sees a disconnect (not an answer that ended) and resumes
        elsewhere (``GET {chat_path}/{chatId}/stream``); the answer goes on. A UI
        message stream has no ``retry`` hint, and a clean end would look like a
        finished message. With the memory store the response runs to its end
        (the store ends the answer by the drain deadline)."""
        if elsewhere and self._sink is not None and not self._sink.closed:
            self._sink.transport.close()


class UIChatHandler(_AnswerStream):
    """``POST {chat_path}``: start the chat's answer and stream it."""

    def prepare(self) -> None:
        self.chat = parse_ui_chat(parse_json_body(self.request.body, self.limits), self.limits)

    async def post(self) -> None:
        if not self.open_event_stream(TRANSPORT):
            return  # the client is gone: start nothing
        answer = await start_answer(self.store, self.chat)
        self.metrics.stream_started(answer.stream, TRANSPORT)
        self.relay_answer(answer)


class UIChatStreamHandler(_AnswerStream):
    """``GET {chat_path}/{chatId}/stream``: the chat's active answer, or 204."""

    async def get(self, chat_id: str) -> None:
        chat_id = check_chat_id(chat_id, "chatId")
        answer = await active_answer(self.store, chat_id, self.resume_grace)
        if answer is None:
            self.metrics.resume(TRANSPORT, "no_active")
            self.set_status(204)
            self.finish()
            return
        self.metrics.resume(TRANSPORT, "resumed", answer.stream)
        self.relay_answer(answer)


class UIChatStopHandler(_ChatHandler):
    """``POST {chat_path}/{chatId}/stop``: ``{"id", "stopped"}``; ``stopped`` is
    false when the chat had no answer generating (already ended, or unknown)."""

    async def post(self, chat_id: str) -> None:
        chat_id = check_chat_id(chat_id, "chatId")
        stopped = await stop_answer(self.store, chat_id)
        self.write({"id": chat_id, "stopped": stopped})
