"""What the AI SDK's chat transports send, as the one :class:`ChatRequest`.

``DefaultChatTransport`` POSTs ``{...body, id, messages, trigger, messageId}``
(``body`` is the transport's ``body`` option: here, Chat Completions
parameters); ``WebSocketChatTransport``'s ``send`` frame carries the same
fields with ``body`` apart. :func:`parse_ui_chat` checks the envelope, turns
the UI messages (``parts``) into OpenAI messages and hands those and the
parameters to :func:`~server.wire.chat_request.parse_chat_request`, which
validates them as it does for every other endpoint.

UI messages to OpenAI messages:

* ``text`` parts are the message's text (joined in order);
* ``step-start`` separates an assistant's steps; ``reasoning`` parts (the
  model's own thoughts) and ``data-*`` parts (application data the UI keeps)
  are not sent to the model, as the SDK's ``convertToModelMessages`` does;
* an assistant's tool parts (``tool-NAME`` or ``dynamic-tool``) become, per
  step, the assistant's ``tool_calls`` and a ``tool`` message with the output
  (``output-available``) or the error text (``output-error``); a tool part
  with no output yet is refused (the model needs every call answered);
* anything else (``file``, ``source-url``, ...) is refused, naming the part.

Pure code: no tornado, no asyncio, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..backends.base import ChatRequest
from .chat_request import MAX_MESSAGES, assistant_message, parse_chat_request, tool_call
from .errors import ProtocolError
from .events import dumps
from .limits import Limits

__all__ = ["UIChat", "TRIGGERS", "ENVELOPE", "parse_ui_chat", "check_chat_id"]

TRIGGERS = ("submit-message", "regenerate-message")
#: the envelope: read here, never a Chat Completions parameter (a ``send`` frame's
#: fields beside its ``body``)
ENVELOPE = ("id", "messages", "trigger", "messageId")
_CHAT_ID = re.compile(r"[A-Za-z0-9._:@~+=-]{1,200}")
_UI_ROLES = ("system", "user", "assistant")
_TEXT_ONLY = ("system", "user")
_MAX_PARTS = 1024
#: parts the model is not shown (see the module docstring)
_SKIPPED = ("step-start", "reasoning")


@dataclass(frozen=True)
class UIChat:
    """One request of a chat transport, validated."""

    chat_id: str
    trigger: str
    #: the client's ``messageId`` (the message to regenerate or replace), if any
    message_id: str | None
    #: the id the answer's ``start`` chunk carries: the last message's, when it is
    #: an assistant message the answer continues (a tool round trip), else None
    #: (the server names a new message)
    continues: str | None
    chat: ChatRequest


def _bad(message: str) -> ProtocolError:
    return ProtocolError("invalid_messages", message)


def check_chat_id(value: Any, name: str = "id") -> str:
    """A chat id: 1 to 200 of letters, digits and ``._:@~+=-``, not ``.``/``..``
    (it is a path segment of ``{api}/{id}/stream``)."""
    if not isinstance(value, str) or not _CHAT_ID.fullmatch(value) or value in (".", ".."):
        raise ProtocolError(
            "invalid_chat_id",
            f"'{name}' must be 1 to 200 of letters, digits and ._:@~+=- (not . or ..)",
        )
    return value


class _Step:
    """One assistant step being gathered: its text, tool calls and tool answers."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []

    def flush(self, out: list[dict[str, Any]]) -> None:
        if not (self.text or self.calls):
            return
        out.append(assistant_message("".join(self.text), self.calls))
        out.extend(self.answers)
        self.text, self.calls, self.answers = [], [], []


def _tool_part(part: Mapping[str, Any], kind: str, where: str, step: _Step) -> None:
    name = part.get("toolName") if kind == "dynamic-tool" else kind[5:]
    call_id = part.get("toolCallId")
    if not isinstance(name, str) or not name or not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}: a tool part needs 'toolCallId' and a tool name")
    state = part.get("state")
    answer: Any
    if state == "output-available":
        output = part.get("output")
        answer = output if isinstance(output, str) else dumps(output)
    elif state == "output-error":
        answer = part.get("errorText")
        if not isinstance(answer, str):
            raise _bad(f"{where}: an output-error tool part needs 'errorText'")
    else:
        raise _bad(
            f"{where}: tool part {kind!r} ({call_id[:40]!r}) has no output (state "
            f"{str(state)[:40]!r}); send it once the tool's result is added"
        )
    arguments = part.get("input", {})
    step.calls.append(tool_call(call_id, name, dumps(arguments)))
    step.answers.append({"role": "tool", "tool_call_id": call_id, "content": answer})


def _convert(raw: Any, index: int, out: list[dict[str, Any]]) -> None:
    where = f"messages[{index}]"
    if not isinstance(raw, dict) or raw.get("role") not in _UI_ROLES:
        raise _bad(f"{where} needs a 'role' of {', '.join(_UI_ROLES)}")
    role = raw["role"]
    if raw.get("id") is not None and not isinstance(raw["id"], str):
        raise _bad(f"{where}.id must be a string")
    parts = raw.get("parts")
    if not isinstance(parts, list):
        raise _bad(f"{where}.parts must be a list (a UI message)")
    if len(parts) > _MAX_PARTS:
        raise _bad(f"{where} has more than {_MAX_PARTS} parts")
    step = _Step()
    for number, part in enumerate(parts):
        at = f"{where}.parts[{number}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str):
            raise _bad(f"{at} needs a 'type'")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _bad(f"{at}: a text part needs a string 'text'")
            step.text.append(part["text"])
        elif kind == "step-start" and role == "assistant":
            step.flush(out)
        elif kind in _SKIPPED or kind.startswith("data-"):
            continue
        elif role == "assistant" and (kind.startswith("tool-") or kind == "dynamic-tool"):
            _tool_part(part, kind, at, step)
        else:
            raise ProtocolError(
                "unsupported_part",
                f"{at} is a {kind[:60]!r} part, which this server cannot send to its model "
                "(it takes text parts, and an assistant's tool parts with their output)",
            )
    if role in _TEXT_ONLY:
        out.append({"role": role, "content": "".join(step.text)})
    else:
        step.flush(out)


def ui_messages_to_openai(messages: Any) -> list[dict[str, Any]]:
    """UI messages as OpenAI message objects (not yet validated: see
    :func:`parse_chat_request`). Raises ProtocolError."""
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list of UI messages")
    if len(messages) > MAX_MESSAGES:
        raise _bad(f"'messages' holds more than {MAX_MESSAGES} messages")
    out: list[dict[str, Any]] = []
    for index, raw in enumerate(messages):
        _convert(raw, index, out)
    return out


def parse_ui_chat(data: Mapping[str, Any], limits: Limits) -> UIChat:
    """A chat transport's request (the POST body, or a ``send`` frame's fields
    with its ``body`` spread in). Raises ProtocolError."""
    chat_id = check_chat_id(data.get("id"))
    trigger = data.get("trigger", "submit-message")
    if trigger not in TRIGGERS:
        raise ProtocolError("invalid_trigger", f"'trigger' must be one of {', '.join(TRIGGERS)}")
    message_id = data.get("messageId")
    if message_id is not None and (not isinstance(message_id, str) or len(message_id) > 200):
        raise ProtocolError("invalid_message_id", "'messageId' must be a string")
    raw: Any = data.get("messages")
    converted = ui_messages_to_openai(raw)
    params = {key: value for key, value in data.items() if key not in ENVELOPE}
    if "stream" in params or "stream_options" in params or "prompt" in params:
        name = next(key for key in ("stream", "stream_options", "prompt") if key in params)
        raise ProtocolError(
            "invalid_parameter", f"'{name}' has no meaning here: the answer is always streamed"
        )
    chat = parse_chat_request({**params, "messages": converted}, limits)
    last = raw[-1]
    continues = None
    if last.get("role") == "assistant" and isinstance(last.get("id"), str) and last["id"]:
        continues = last["id"]
    return UIChat(chat_id, trigger, message_id, continues, chat)
