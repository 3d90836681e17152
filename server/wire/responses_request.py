"""The Responses API request (``POST /v1/responses`` and WebSocket mode's
``response.create``), validated once into the same
:class:`~server.backends.base.ChatRequest` every other endpoint makes, plus
what the Response object echoes. Pure code: no tornado, no asyncio, no I/O.

The request becomes a Chat Completions request object and goes through
:func:`~server.wire.chat_request.parse_chat_request`: ``instructions`` is the
system message, ``input`` (a string or items) the conversation after the one
``previous_response_id`` names (its stored messages and its answer, given as
``history``), ``max_output_tokens`` is ``max_tokens``, ``text.format`` is
``response_format``, function ``tools`` and ``tool_choice`` take the chat shape,
``reasoning.effort`` is ``reasoning_effort``. So the synthetic model says the
same over every endpoint for the same conversation.

What the backend cannot do is refused by name, never ignored: built-in tools,
``conversation``, image, file and audio input, unknown fields. Errors carry
OpenAI's ``param`` (:class:`~server.wire.errors.ProtocolError`'s ``param``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import ChatRequest
from .chat_request import parse_chat_request
from .errors import ProtocolError
from .limits import Limits, validate_max_tokens
from .responses_fields import (
    invalid,
    parse_input,
    parse_text,
    parse_tool_choice,
    parse_tools,
    unsupported,
)

__all__ = [
    "ResponsesRequest",
    "parse_responses_request",
    "previous_response_id",
    "delivery",
    "response_id",
    "stream_of_response",
]

_RESPONSE_ID = re.compile(r"resp_([A-Za-z0-9_-]{1,64})")
#: fields that pass to the chat request under the same name, checked there
_SAME = ("temperature", "top_p", "parallel_tool_calls", "user")
#: fields that label a request and change nothing: forwarded when the backend takes them
_LABELS = ("safety_identifier", "prompt_cache_key", "service_tier")
#: Responses fields that are read here (anything else is an unknown parameter)
_KNOWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "tools",
        "tool_choice",
        "text",
        "previous_response_id",
        "store",
        "background",
        "metadata",
        "stream",
        "stream_options",
        "truncation",
        "reasoning",
        "include",
        "conversation",
        "generate",
        *_SAME,
        *_LABELS,
    }
)


def response_id(stream_id: str) -> str:
    """A response's id: its stream's, prefixed (the id finds the stream)."""
    return "resp_" + stream_id


def stream_of_response(value: Any) -> str | None:
    """The stream id inside a response id, or None if it is not one of ours."""
    if not isinstance(value, str):
        return None
    match = _RESPONSE_ID.fullmatch(value)
    return match.group(1) if match else None


def previous_response_id(data: Mapping[str, Any]) -> str | None:
    """The request's ``previous_response_id``, checked (the caller loads it)."""
    value = data.get("previous_response_id")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise invalid("previous_response_id", "'previous_response_id' must be a response id")
    return value


def delivery(data: Mapping[str, Any], websocket: bool = False) -> tuple[bool, bool]:
    """How the response is delivered: (``stream``, ``background``), each checked
    to be true or false (absent: false); over a WebSocket neither may be sent.
    The HTTP handler reads it before anything is sent. Raises ProtocolError."""
    for key in ("stream", "background"):
        if data.get(key) is not None and not isinstance(data[key], bool):
            raise invalid(key, f"'{key}' must be true or false")
    if websocket and (data.get("stream") is not None or data.get("background") is not None):
        name = "stream" if data.get("stream") is not None else "background"
        raise invalid(name, f"'{name}' is an HTTP field; omit it in WebSocket mode")
    return data.get("stream") is True, data.get("background") is True


@dataclass(frozen=True)
class ResponsesRequest:
    """A validated Responses request: the chat the backend runs, and what the
    Response object shows and a later request continues from."""

    chat: ChatRequest
    #: the conversation without ``instructions``: what ``previous_response_id`` continues
    messages: tuple[dict[str, Any], ...]
    #: this request's input as items (what ``GET .../input_items`` lists)
    input_items: tuple[dict[str, Any], ...]
    #: the Response object's echoed fields (tools, text, metadata, ...)
    echo: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    background: bool = False


# --- the request ---------------------------------------------------------------------------

#: chat names of what a Responses request calls otherwise (for errors raised by the chat parser)
_RENAMES = {
    "max_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "verbosity": "text.verbosity",
    "messages": "input",
}
_QUOTED = re.compile(r"'([A-Za-z_.\[\]0-9]+)'")


def _renamed(exc: ProtocolError) -> ProtocolError:
    """An error of the chat parser, in the Responses request's names."""
    if exc.code in ("prompt_too_long", "missing_prompt", "invalid_messages"):
        exc.param = "input"
        return exc
    match = _QUOTED.search(exc.message)
    if match is None:
        return exc
    name = match.group(1)
    param = _RENAMES.get(name, name)
    exc.message = exc.message.replace(f"'{name}'", f"'{param}'", 1)
    exc.param = param
    return exc


def parse_responses_request(
    data: Mapping[str, Any],
    limits: Limits,
    history: tuple[dict[str, Any], ...] = (),
    websocket: bool = False,
) -> ResponsesRequest:
    """Validate a Responses request object (parsed JSON). ``history`` is the
    conversation ``previous_response_id`` names (the caller loads it).
    ``websocket``: a ``response.create`` message (no ``stream``/``background``).
    Raises ProtocolError with ``param``."""
    for key in data:
        if key not in _KNOWN:
            raise invalid(key[:64], f"unknown parameter: {key[:64]!r}", code="unknown_parameter")
    if data.get("conversation") is not None:
        raise unsupported(
            "conversation", "conversation objects are not kept here; use previous_response_id"
        )
    stream, background = delivery(data, websocket)
    if data.get("store") is not None and not isinstance(data["store"], bool):
        raise invalid("store", "'store' must be true or false")
    if data.get("generate") is not None and data["generate"] is not True:
        raise unsupported("generate", "a warm-up without generation; omit it")
    if data.get("include") not in (None, []):
        raise unsupported("include", "this server adds no optional output fields")
    if data.get("input") is None:
        raise invalid("input", "'input' is required", code="missing_required_parameter")
    messages, items = parse_input(data["input"])
    conversation = tuple(history) + tuple(messages)
    chat: dict[str, Any] = {"messages": list(conversation)}
    echo: dict[str, Any] = {}
    instructions = data.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid("instructions", "'instructions' must be a string")
        chat["messages"] = [{"role": "system", "content": instructions}, *conversation]
    echo["instructions"] = instructions
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or len(model) > 256):
        raise invalid("model", "'model' must be a string")
    max_output = data.get("max_output_tokens")
    if max_output is not None:
        try:
            chat["max_tokens"] = validate_max_tokens(max_output, limits, "max_output_tokens")
        except ProtocolError as exc:
            exc.param = "max_output_tokens"
            raise
    echo["max_output_tokens"] = max_output
    for key in _SAME:
        if data.get(key) is not None:
            chat[key] = data[key]
    supported = limits.supported_parameters
    for key in _LABELS:
        if data.get(key) is not None and (supported is None or key in supported):
            chat[key] = data[key]
        echo[key] = data.get(key)
    echo["tools"] = []
    if data.get("tools") is not None:
        tools, echo["tools"] = parse_tools(data["tools"])
        if tools:
            chat["tools"] = tools
    echo["tool_choice"] = data.get("tool_choice") or "auto"
    if data.get("tool_choice") is not None:
        chat["tool_choice"] = parse_tool_choice(data["tool_choice"])
    echo["text"] = {"format": {"type": "text"}}
    if data.get("text") is not None:
        response_format, verbosity, echo["text"] = parse_text(data["text"])
        if response_format is not None and response_format != {"type": "text"}:
            chat["response_format"] = response_format
        if verbosity is not None:
            chat["verbosity"] = verbosity
    echo["reasoning"] = None
    if data.get("reasoning") is not None:
        reasoning = data["reasoning"]
        if not isinstance(reasoning, dict) or any(
            k not in ("effort", "summary") for k in reasoning
        ):
            raise invalid("reasoning", "'reasoning' must be {\"effort\": ...}")
        if reasoning.get("summary") is not None:
            raise unsupported("reasoning.summary", "reasoning summaries are not streamed here")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
        echo["reasoning"] = {"effort": reasoning.get("effort"), "summary": None}
    truncation = data.get("truncation")
    if truncation is not None and truncation not in ("auto", "disabled"):
        raise invalid("truncation", 'must be "auto" or "disabled"')
    echo["truncation"] = truncation or "disabled"
    metadata = data.get("metadata")
    if metadata is not None:
        if (
            not isinstance(metadata, dict)
            or len(metadata) > 16
            or not all(
                isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
                for k, v in metadata.items()
            )
        ):
            raise invalid(
                "metadata",
                "must be at most 16 pairs of strings (keys up to 64 characters, values up to 512)",
            )
    echo["metadata"] = metadata or {}
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict) or any(k != "include_obfuscation" for k in options):
            raise invalid("stream_options", 'must be {"include_obfuscation": bool}')
    echo["temperature"] = data.get("temperature", 1.0)
    echo["top_p"] = data.get("top_p", 1.0)
    echo["parallel_tool_calls"] = data.get("parallel_tool_calls", True)
    echo["user"] = data.get("user")
    echo["store"] = data.get("store", True)
    echo["background"] = background
    echo["previous_response_id"] = data.get("previous_response_id")
    if not any(m["role"] == "user" and (m["content"] or "").strip() for m in conversation):
        raise invalid(
            "input", "'input' must hold a user message with some text", code="missing_prompt"
        )
    try:
        request = parse_chat_request(chat, limits)
    except ProtocolError as exc:
        raise _renamed(exc) from None
    return ResponsesRequest(
        chat=request,
        messages=conversation,
        input_items=tuple(items),
        echo=echo,
        stream=stream,
        background=background,
    )
