"""A chat's active answer, shared by both AI SDK chat transports (``/api/chat``
over SSE and over WebSocket): which stream answers the chat now, kept in the
store's records (memory or Redis: every process that shares the store sees
it) for the store's retention; starting an answer, finding it for a resume,
stopping it from any process."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass

from ..wire.ui_message_request import UIChat
from .log import StreamLog
from .store import StreamStore

__all__ = ["CHAT_RECORD", "Answer", "start_answer", "active_answer", "stop_answer"]

#: the records' kind: key the chat id, value ``{"stream": id, "message": messageId}``
CHAT_RECORD = "ai-chat"


@dataclass(frozen=True)
class Answer:
    stream: StreamLog
    #: the UI message id its ``start`` chunk carries
    message_id: str


async def start_answer(store: StreamStore, request: UIChat) -> Answer:
    """Start the chat's answer and make it the chat's active one. The answer it
    replaces is stopped: a chat has one active answer. The record is swapped in
    one step, so of two concurrent starts each stops what it replaced and only
    the later one runs on. If the record cannot be written the new answer is
    stopped too (nobody could find it) and the error raised."""
    stream = await store.create(request.chat)
    message_id = request.continues or f"msg-{stream.id}"
    record = {"stream": stream.id, "message": message_id}
    try:
        previous = await store.records.swap(CHAT_RECORD, request.chat_id, record)
    except BaseException:
        with contextlib.suppress(Exception):
            await store.cancel(stream.id)
        raise
    if previous is not None and previous.get("stream") != stream.id:
        await store.cancel(str(previous.get("stream")))
    return Answer(stream, message_id)


def _ended_at(stream: StreamLog) -> float:
    """When an ended stream's last token came (its last delta's ``t``; the
    stream's creation when it has none), in Unix seconds."""
    texts = stream.read(max(-1, stream.last_seq - 3))
    for text in reversed(texts):
        event = json.loads(text)
        if event.get("type") == "delta" and isinstance(event.get("t"), int | float):
            return float(event["t"])
    return float(stream.created)


async def active_answer(store: StreamStore, chat_id: str, grace: float) -> Answer | None:
    """The chat's answer to replay, or None: no answer, stopped, expired, or
    ended more than ``grace`` seconds ago."""
    record = await store.records.get(CHAT_RECORD, chat_id)
    if record is None:
        return None
    stream = await store.open(str(record.get("stream")))
    if stream is None:
        return None
    if stream.ended and time.time() - _ended_at(stream) > grace:
        return None
    return Answer(stream, str(record.get("message")))


async def stop_answer(store: StreamStore, chat_id: str) -> bool:
    """Stop the chat's answer on whichever process generates it; forget it as
    the chat's active answer (a resume then answers 204 / ``no-active``).
    True if an answer was generating."""
    record = await store.records.get(CHAT_RECORD, chat_id)
    if record is None:
        return False
    await store.records.delete(CHAT_RECORD, chat_id)
    return bool(await store.cancel(str(record.get("stream"))))
