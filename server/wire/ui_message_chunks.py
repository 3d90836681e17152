"""twinstream events as the AI SDK's UI message chunks: the ``/api/chat`` view of
a stream log (``uiMessageChunkSchema`` in the ``ai`` package).

:class:`UIMessageView` folds one stream's events, in order from its ``start``,
into chunk JSON texts: ``start`` (``messageId``, ``messageMetadata`` with the
model) and ``start-step``; ``text-start`` before the first text, a
``text-delta`` per delta; for a tool call ``tool-input-start`` (``toolCallId``,
``toolName``) and a ``tool-input-delta`` per piece of its arguments; at the
end ``text-end``, ``tool-input-available`` (``input``, the parsed arguments)
per call, ``finish-step`` and ``finish`` (``finishReason`` and
``messageMetadata`` with the model and the usage). A cancelled stream (a stop)
ends with ``abort`` instead of ``finish``; a failed one with ``error``
(``errorText``) and ``finish`` (``error``). The view keeps only what the next
chunk needs (is the text open, the calls' names and arguments): it is a view of
the one log, never a second log, and the same events give the same chunks on
any process. :class:`SSEChunkFrames` is the SSE framing (``data: {json}``,
then ``data: [DONE]``).

Pure code: no tornado, no asyncio, no I/O.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from .events import dumps, plain_text_content

__all__ = ["UIMessageView", "SSEChunkFrames", "FINISH_REASONS", "DONE", "TEXT_ID"]

#: the stream's finish reasons as the SDK names them
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
}
#: the id of the answer's one text part
TEXT_ID = "text-0"
#: the SSE payload after the last chunk
DONE = "[DONE]"
#: why an answer was cut short, in its ``abort`` chunk
ABORT_REASON = "stopped"
_TEXT_START = dumps({"type": "text-start", "id": TEXT_ID})
_TEXT_END = dumps({"type": "text-end", "id": TEXT_ID})
_DELTA_HEAD = '{"type":"text-delta","id":"' + TEXT_ID + '","delta":'
_DELTA_HEAD_BYTES = _DELTA_HEAD.encode()
_encode_string = json.encoder.encode_basestring  # the C encoder, ensure_ascii=False


class _Call:
    __slots__ = ("call_id", "name", "arguments")

    def __init__(self, call_id: str, name: str) -> None:
        self.call_id = call_id
        self.name = name
        self.arguments: list[str] = []


class TextState(enum.Enum):
    """Where an answer is: before its text part, in it, or ended (terminal
    event folded). Moves only forward, by :meth:`UIMessageView._open_text`
    (BEFORE -> OPEN) and :meth:`UIMessageView._close_parts` (-> ENDED)."""

    BEFORE = "before"
    OPEN = "open"
    ENDED = "ended"


class UIMessageView:
    """One answer's events (from ``seq`` 0, in order) to UI message chunks."""

    __slots__ = ("message_id", "model", "state", "_calls")

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.model = ""
        self.state = TextState.BEFORE
        self._calls: dict[int, _Call] = {}

    @property
    def ended(self) -> bool:
        """True once the terminal event was folded."""
        return self.state is TextState.ENDED

    def _open_text(self) -> list[str]:
        """The chunks that open the text part before a text delta: ``text-start``
        the first time (BEFORE -> OPEN), nothing once open."""
        if self.state is not TextState.BEFORE:
            return []  # open already (an ended answer takes no more text)
        self.state = TextState.OPEN
        return [_TEXT_START]

    def chunks(self, text: bytes | str) -> list[str]:
        """The chunks (JSON texts) for one event, given as the log's JSON text."""
        if isinstance(text, bytes):
            return [chunk.decode() for chunk in self.chunk_bytes(text)]
        return self.event_chunks(json.loads(text))

    def chunk_bytes(self, text: bytes) -> list[bytes]:
        """:meth:`chunks` as UTF-8 bytes. A text delta as the log keeps it (the
        common case) becomes its chunk without decoding its JSON."""
        content = plain_text_content(text)
        if content is not None:
            if content == b'""':
                return []
            delta = _DELTA_HEAD_BYTES + content + b"}"
            if self.state is TextState.OPEN:
                return [delta]
            return [chunk.encode() for chunk in self._open_text()] + [delta]
        return [chunk.encode() for chunk in self.event_chunks(json.loads(text))]

    def event_chunks(self, event: dict[str, Any]) -> list[str]:
        kind = event.get("type")
        if kind == "delta":
            return self._delta(event)
        if kind == "start":
            self.model = str(event.get("model", ""))
            start = {
                "type": "start",
                "messageId": self.message_id,
                "messageMetadata": {"model": self.model},
            }
            return [dumps(start), '{"type":"start-step"}']
        if kind == "done":
            return self._done(event)
        if kind == "error":
            return self._error(event)
        return []  # not an event of a stream's log: nothing to show

    def _text(self, content: str) -> list[str]:
        return [*self._open_text(), _DELTA_HEAD + _encode_string(content) + "}"]

    def _delta(self, event: dict[str, Any]) -> list[str]:
        out: list[str] = []
        content = event.get("content") or ""
        refusal = event.get("refusal") or ""
        if content or refusal:
            out += self._text(content + refusal)
        for fragment in event.get("tool_calls") or ():
            out += self._tool_fragment(fragment)
        return out

    def _tool_fragment(self, fragment: dict[str, Any]) -> list[str]:
        index = fragment.get("index", 0)
        function = fragment.get("function") or {}
        call = self._calls.get(index)
        out = []
        if call is None:
            call = _Call(str(fragment.get("id") or f"call-{index}"), str(function.get("name", "")))
            self._calls[index] = call
            start = {"type": "tool-input-start", "toolCallId": call.call_id, "toolName": call.name}
            out.append(dumps(start))
        arguments = function.get("arguments") or ""
        if arguments:
            call.arguments.append(arguments)
            out.append(
                dumps(
                    {
                        "type": "tool-input-delta",
                        "toolCallId": call.call_id,
                        "inputTextDelta": arguments,
                    }
                )
            )
        return out

    def _close_parts(self) -> list[str]:
        out = [_TEXT_END] if self.state is TextState.OPEN else []
        self.state = TextState.ENDED
        for index in sorted(self._calls):
            call = self._calls[index]
            raw = "".join(call.arguments)
            base = {"toolCallId": call.call_id, "toolName": call.name}
            try:
                value = json.loads(raw or "{}")
            except ValueError:
                chunk = {
                    "type": "tool-input-error",
                    **base,
                    "input": raw,
                    "errorText": "the model's tool arguments are not valid JSON",
                }
            else:
                chunk = {"type": "tool-input-available", **base, "input": value}
            out.append(dumps(chunk))
        self._calls.clear()
        return out

    def _done(self, event: dict[str, Any]) -> list[str]:
        out = self._close_parts()
        out.append('{"type":"finish-step"}')
        reason = event.get("finish_reason")
        if reason == "cancelled":
            out.append(dumps({"type": "abort", "reason": ABORT_REASON}))
            return out
        metadata: dict[str, Any] = {"model": self.model}
        if event.get("usage"):
            metadata["usage"] = event["usage"]
        finish = {
            "type": "finish",
            "finishReason": FINISH_REASONS.get(str(reason), "other"),
            "messageMetadata": metadata,
        }
        out.append(dumps(finish))
        return out

    def _error(self, event: dict[str, Any]) -> list[str]:
        out = self._close_parts()
        text = f"{event.get('code', 'error')}: {event.get('message', '')}"
        out.append(dumps({"type": "error", "errorText": text}))
        out.append(dumps({"type": "finish", "finishReason": "error"}))
        return out


class SSEChunkFrames:
    """A relay's frame function for ``POST /api/chat`` and its resume: each
    chunk one ``data:`` event (no ``id:`` or ``event:`` line), ``data: [DONE]``
    after the last. Give it the events from ``seq`` 0: the view folds them."""

    __slots__ = ("view",)

    def __init__(self, view: UIMessageView) -> None:
        self.view = view

    def __call__(self, first_seq: int, texts: list[bytes]) -> bytes:
        view = self.view
        ended_before = view.ended
        out = []
        for text in texts:
            for chunk in view.chunk_bytes(text):
                out.append(b"data: %b\n\n" % chunk)
        if view.ended and not ended_before:
            out.append(b"data: [DONE]\n\n")
        return out[0] if len(out) == 1 else b"".join(out)
