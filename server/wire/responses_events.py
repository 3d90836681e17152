"""The Responses API view of one stream log: its events as OpenAI's typed
Responses events (``response.created`` ... ``response.completed``), each with a
``sequence_number`` from 0, and the Response object they build. Pure code (no
tornado, no asyncio, no I/O), like :mod:`server.wire.chat_chunks` is for
``chat.completion.chunk``: a view, not a second log.

A :class:`ResponseView` is fed the log's events in ``seq`` order and returns
the Responses events each one makes. The mapping is deterministic, so the
same log always gives the same numbered events: a resume
(``starting_after=N``) feeds the log again from its start and sends only the
events numbered after N.

- ``start`` -> ``response.created``, ``response.in_progress``
- text (``content``) -> a ``message`` output item (``output_item.added``,
  ``content_part.added`` of an ``output_text`` part), then one
  ``response.output_text.delta`` per delta
- ``refusal`` -> a ``refusal`` part of that message, ``response.refusal.delta``
- ``tool_calls`` -> one ``function_call`` output item per call, with
  ``response.function_call_arguments.delta``
- ``done`` -> each open item's ``.done`` events, then ``response.completed``
  (``stop``, ``tool_calls``) or ``response.incomplete`` (``length`` ->
  ``max_output_tokens``, ``content_filter``); ``done``/``cancelled`` ->
  ``response.failed`` with status ``cancelled``; ``error`` -> ``response.failed``.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from .chat_chunks import merge_tool_calls
from .events import dumps, plain_text_content

__all__ = [
    "ResponseView",
    "ViewState",
    "usage",
    "answer_message",
    "TERMINAL_TYPES",
    "fold",
    "encode_sse",
]

#: the events that end a response's event stream
TERMINAL_TYPES = ("response.completed", "response.incomplete", "response.failed")


class ViewState(enum.Enum):
    NEW = "new"  # nothing fed yet
    IN_PROGRESS = "in_progress"  # start fed
    ENDED = "ended"  # a terminal event made


def usage(chat_usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat Completions usage in the Responses shape."""
    if not chat_usage:
        return None
    input_tokens = int(chat_usage.get("prompt_tokens", 0))
    output_tokens = int(chat_usage.get("completion_tokens", 0))
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": int(chat_usage.get("total_tokens", input_tokens + output_tokens)),
    }


def _logprobs(event: dict[str, Any]) -> list[Any]:
    logprobs = event.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return list(content) if isinstance(content, list) else []


class _Part:
    """A message's content part being streamed: ``output_text`` or ``refusal``."""

    __slots__ = ("kind", "pieces", "logprobs")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pieces: list[str] = []
        self.logprobs: list[Any] = []

    def whole(self) -> dict[str, Any]:
        text = "".join(self.pieces)
        if self.kind == "refusal":
            return {"type": "refusal", "refusal": text}
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": self.logprobs}


class _Item:
    """One output item: a ``message`` (content parts) or a ``function_call``."""

    __slots__ = ("index", "id", "kind", "parts", "call_id", "name", "arguments", "status")

    def __init__(self, index: int, item_id: str, kind: str) -> None:
        self.index = index
        self.id = item_id
        self.kind = kind
        self.parts: list[_Part] = []
        self.call_id = ""
        self.name = ""
        self.arguments: list[str] = []
        self.status = "in_progress"

    def whole(self) -> dict[str, Any]:
        if self.kind == "message":
            return {
                "id": self.id,
                "type": "message",
                "status": self.status,
                "role": "assistant",
                "content": [part.whole() for part in self.parts],
            }
        return {
            "id": self.id,
            "type": "function_call",
            "status": self.status,
            "arguments": "".join(self.arguments),
            "call_id": self.call_id,
            "name": self.name,
        }


class ResponseView:
    """Folds a stream log's events into Responses events and the Response object.

    ``response`` is the Response object's fixed fields (``id``, ``created_at``,
    ``model`` and what the request echoes); ``status``, ``output``, ``usage``,
    ``error`` and ``incomplete_details`` are the view's."""

    def __init__(self, response: dict[str, Any], stream_id: str) -> None:
        self.base = response
        self.stream_id = stream_id
        self.state = ViewState.NEW
        self.sequence = 0  # the next sequence_number
        self.items: list[_Item] = []
        self.message: _Item | None = None  # the message item open now
        self.calls: dict[int, _Item] = {}  # tool call index -> its open item
        self.status = "in_progress"
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.incomplete: dict[str, Any] | None = None

    # -- the Response object ---------------------------------------------------------

    def response(self, output: bool = True) -> dict[str, Any]:
        """The Response object as of what was fed."""
        return {
            **self.base,
            "object": "response",
            "status": self.status,
            "error": self.error,
            "incomplete_details": self.incomplete,
            "output": [item.whole() for item in self.items] if output else [],
            "usage": self.usage,
        }

    # -- events ------------------------------------------------------------------------

    def text_delta(self, content: str, raw: str) -> str | None:
        """The fast path of a plain text delta (:func:`plain_delta`): the JSON of
        its ``response.output_text.delta`` (``raw`` is ``content`` as a JSON
        string, copied as it is), the same as :meth:`feed` would make, when an
        ``output_text`` part is open; else None (call :meth:`feed`)."""
        message = self.message
        if (
            not content  # makes no event, as feed() shows: the numbering stays the same
            or message is None
            or not message.parts
            or self.state is not ViewState.IN_PROGRESS
        ):
            return None
        part = message.parts[-1]
        if part.kind != "output_text":
            return None
        part.pieces.append(content)
        sequence = self.sequence
        self.sequence = sequence + 1
        return (
            f'{{"type":"response.output_text.delta","sequence_number":{sequence},'
            f'"item_id":"{message.id}","output_index":{message.index},'
            f'"content_index":{len(message.parts) - 1},"delta":{raw},"logprobs":[]}}'
        )

    def frame_texts(self, texts: list[bytes], tail: str = "") -> list[tuple[str, str]]:
        """The Responses events the log's events (JSON texts, in order) make,
        each as (its type, its JSON text): a plain text delta by :meth:`text_delta`,
        any other by :meth:`feed`. ``tail`` (``,"name":value``, valid JSON
        members) is added to every event's object. Every transport's framing
        (SSE lines, WebSocket frames) starts from these."""
        out: list[tuple[str, str]] = []
        for text in texts:
            plain = plain_delta(text)
            fast = self.text_delta(*plain) if plain is not None else None
            if fast is not None:  # the common case: one text token
                out.append(("response.output_text.delta", f"{fast[:-1]}{tail}}}" if tail else fast))
                continue
            for event in self.feed(json.loads(text)):
                made = dumps(event)
                out.append((event["type"], f"{made[:-1]}{tail}}}" if tail else made))
        return out

    def _event(self, out: list[dict[str, Any]], kind: str, **fields: Any) -> None:
        out.append({"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The Responses events one log event makes (numbered in order)."""
        out: list[dict[str, Any]] = []
        kind = event.get("type")
        if self.state is ViewState.ENDED:
            return out
        if kind == "start":
            self._start(out)
        elif kind == "delta":
            if event.get("content"):
                self._text(out, "output_text", event["content"], _logprobs(event))
            if event.get("refusal"):
                self._text(out, "refusal", event["refusal"], [])
            for call in event.get("tool_calls") or ():
                self._call(out, call)
        elif kind == "done":
            self._end(out, event.get("finish_reason", "stop"), event)
        elif kind == "error":
            self._end(out, "error", event)
        return out

    def _start(self, out: list[dict[str, Any]]) -> None:
        self.state = ViewState.IN_PROGRESS
        self._event(out, "response.created", response=self.response())
        self._event(out, "response.in_progress", response=self.response())

    def _open(self, out: list[dict[str, Any]], kind: str, item_id: str) -> _Item:
        item = _Item(len(self.items), item_id, kind)
        self.items.append(item)
        self._event(out, "response.output_item.added", output_index=item.index, item=item.whole())
        return item

    def _text(self, out: list[dict[str, Any]], kind: str, text: str, logprobs: list[Any]) -> None:
        message = self.message
        if message is None:
            self._close_calls(out, "completed")
            message = self.message = self._open(
                out, "message", f"msg_{self.stream_id}_{len(self.items)}"
            )
        part = message.parts[-1] if message.parts else None
        if part is None or part.kind != kind:
            if part is not None:
                self._close_part(out, message, len(message.parts) - 1)
            part = _Part(kind)
            message.parts.append(part)
            self._event(
                out,
                "response.content_part.added",
                item_id=message.id,
                output_index=message.index,
                content_index=len(message.parts) - 1,
                part=part.whole(),
            )
        part.pieces.append(text)
        where = {
            "item_id": message.id,
            "output_index": message.index,
            "content_index": len(message.parts) - 1,
        }
        if kind == "refusal":
            self._event(out, "response.refusal.delta", **where, delta=text)
        else:
            part.logprobs.extend(logprobs)
            self._event(out, "response.output_text.delta", **where, delta=text, logprobs=logprobs)

    def _close_part(self, out: list[dict[str, Any]], message: _Item, index: int) -> None:
        part = message.parts[index]
        whole = part.whole()
        where = {"item_id": message.id, "output_index": message.index, "content_index": index}
        if part.kind == "refusal":
            self._event(out, "response.refusal.done", **where, refusal=whole["refusal"])
        else:
            self._event(
                out,
                "response.output_text.done",
                **where,
                text=whole["text"],
                logprobs=part.logprobs,
            )
        self._event(out, "response.content_part.done", **where, part=whole)

    def _close_message(self, out: list[dict[str, Any]], status: str) -> None:
        message = self.message
        if message is None:
            return
        self.message = None
        if message.parts:
            self._close_part(out, message, len(message.parts) - 1)
        message.status = status
        self._event(
            out, "response.output_item.done", output_index=message.index, item=message.whole()
        )

    def _call(self, out: list[dict[str, Any]], call: dict[str, Any]) -> None:
        index = call.get("index", 0)
        function = call.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            self._close_message(out, "completed")
            item = self._open_call(out, index, call)
        arguments = function.get("arguments") or ""
        if arguments:
            item.arguments.append(arguments)
            self._event(
                out,
                "response.function_call_arguments.delta",
                item_id=item.id,
                output_index=item.index,
                delta=arguments,
            )

    def _open_call(self, out: list[dict[str, Any]], index: int, call: dict[str, Any]) -> _Item:
        item = _Item(len(self.items), f"fc_{self.stream_id}_{len(self.items)}", "function_call")
        item.call_id = call.get("id") or f"call_{self.stream_id}_{index}"
        item.name = (call.get("function") or {}).get("name") or ""
        self.items.append(item)
        self.calls[index] = item
        self._event(out, "response.output_item.added", output_index=item.index, item=item.whole())
        return item

    def _close_calls(self, out: list[dict[str, Any]], status: str) -> None:
        for item in self.calls.values():
            item.status = status
            arguments = "".join(item.arguments)
            self._event(
                out,
                "response.function_call_arguments.done",
                item_id=item.id,
                output_index=item.index,
                name=item.name,
                arguments=arguments,
            )
            self._event(
                out, "response.output_item.done", output_index=item.index, item=item.whole()
            )
        self.calls = {}

    def _end(self, out: list[dict[str, Any]], reason: str, event: dict[str, Any]) -> None:
        if self.state is ViewState.NEW:  # no start (not in a log): created first
            self._start(out)
        finished = reason in ("stop", "tool_calls")
        items_status = "completed" if finished else "incomplete"
        self._close_message(out, items_status)
        self._close_calls(out, items_status)
        self.state = ViewState.ENDED
        self.usage = usage(event.get("usage"))
        if finished:
            self.status = "completed"
            terminal = "response.completed"
        elif reason in ("length", "content_filter"):
            self.status = "incomplete"
            why = "max_output_tokens" if reason == "length" else "content_filter"
            self.incomplete = {"reason": why}
            terminal = "response.incomplete"
        elif reason == "cancelled":
            self.status = "cancelled"
            self.error = {"code": "cancelled", "message": "the response was cancelled"}
            terminal = "response.failed"
        else:
            self.status = "failed"
            self.error = {
                "code": event.get("code", "server_error"),
                "message": event.get("message", ""),
            }
            terminal = "response.failed"
        self._event(out, terminal, response=self.response())


def fold(view: ResponseView, events: list[dict[str, Any]]) -> int:
    """Feed every event; the number of Responses events made."""
    for event in events:
        view.feed(event)
    return view.sequence


def answer_message(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A response's answer as the chat message a follow-up request continues
    from (``previous_response_id``): its text, refusal and tool calls."""
    deltas = [event for event in events if event.get("type") == "delta"]
    text = "".join(event.get("content") or "" for event in deltas)
    calls = merge_tool_calls(call for event in deltas for call in event.get("tool_calls") or ())
    if not (text or calls):
        return None
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def encode_sse(made: list[dict[str, Any]]) -> bytes:
    """Responses events as SSE, as OpenAI sends them: an ``event:`` line with
    the type, a ``data:`` line with the JSON (which holds no line break)."""
    return "".join(f"event: {event['type']}\ndata: {dumps(event)}\n\n" for event in made).encode()


_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]


def plain_delta(text: bytes) -> tuple[str, str] | None:
    """A log event that is a plain text delta (:func:`~server.wire.events.plain_text_content`),
    as (its content, the content's JSON string as sent); None for any other event.
    Reads the one string with the C scanner instead of decoding the event."""
    raw = plain_text_content(text)
    if raw is None:
        return None
    decoded = raw.decode()
    return _scanstring(decoded, 1)[0], decoded
