"""The Chat Completions request, validated once for every transport.

``POST /streams``, the WebSocket ``start`` message and ``POST
/v1/chat/completions`` all carry OpenAI's request object (``messages``,
``model`` and the generation parameters); :func:`parse_chat_request` checks
it and returns a :class:`~server.backends.base.ChatRequest`. Pure code: no
tornado, no asyncio, no I/O.

Every field is either validated here and kept, or refused: nothing is
silently dropped. A backend that cannot do a parameter says so with
``Limits.supported_parameters`` and the request gets ``unsupported_parameter``
naming the field; a value out of range gets ``invalid_parameter`` saying
what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..backends.base import ChatRequest
from .errors import ProtocolError
from .limits import Limits, validate_max_tokens, validate_prompt
from .strict_json import loads_object

__all__ = [
    "ROLES",
    "MAX_MESSAGES",
    "tool_call",
    "assistant_message",
    "PARAMETERS",
    "parse_chat_request",
    "parse_chat_body",
    "parse_json_body",
]

ROLES = ("system", "developer", "user", "assistant", "tool")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_INT64 = 2**63
#: the most messages (or Responses input items) a request may hold
MAX_MESSAGES = 1024


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A tool call in the chat shape (an assistant message's ``tool_calls`` item)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def assistant_message(text: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """An assistant message in the chat shape: its text (null when it only
    calls tools) and its ``tool_calls`` (:func:`tool_call`), if any. Its tool
    messages (``role: tool``, one per call) follow it in the conversation."""
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return message


def _invalid(name: str, message: str) -> ProtocolError:
    return ProtocolError("invalid_parameter", f"'{name}' {message}")


# --- parameter validators: value -> normalised value (raise ProtocolError) ---------------


def _number(low: float, high: float) -> Callable[[str, Any], float]:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(name, f"must be a number from {low:g} to {high:g}")
        if not low <= value <= high:
            raise _invalid(name, f"is {value:g}; it must be from {low:g} to {high:g}")
        return value

    return check


def _integer(low: int, high: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(name, f"must be an integer from {low} to {high}")
        if not low <= value <= high:
            raise _invalid(name, f"is {value}; it must be from {low} to {high}")
        return value

    return check


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid(name, "must be true or false")
    return value


def _string(limit: int) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise _invalid(name, f"must be a string of at most {limit} characters")
        return value

    return check


def _object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(name, "must be a JSON object")
    return value


def _list(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(name, "must be a JSON array")
    return value


def _stop(name: str, value: Any) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or not 1 <= len(stops) <= 4
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise _invalid(name, "must be a non-empty string or a list of 1 to 4 non-empty strings")
    return list(stops)


def _logit_bias(name: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) > 300:
        raise _invalid(name, "must be an object of at most 300 token ids to biases")
    for token, bias in value.items():
        if not token.isascii() or not token.isdigit():
            raise _invalid(name, f"has key {token[:20]!r}; keys are token ids (decimal strings)")
        _number(-100, 100)(f"{name}.{token}", bias)
    return value


def _metadata(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > 16:
        raise _invalid(name, "must be an object of at most 16 string pairs")
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise _invalid(name, "keys must be up to 64 characters, values strings up to 512")
    return value


def _tools(name: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > 128:
        raise _invalid(name, "must be a list of at most 128 tools")
    tools = []
    for index, tool in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _invalid(where, 'must be {"type": "function", "function": {...}}')
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid(f"{where}.function", "must be an object with a 'name'")
        if not _NAME.fullmatch(function["name"]):
            raise _invalid(f"{where}.function.name", "must be 1 to 64 of a-z, A-Z, 0-9, _ and -")
        for key, check in (
            ("description", _string(8192)),
            ("parameters", _object),
            ("strict", _boolean),
        ):
            if function.get(key) is not None:
                check(f"{where}.function.{key}", function[key])
        tools.append(tool)
    return tools


def _tool_choice(name: str, value: Any) -> str | dict[str, Any]:
    if value in ("none", "auto", "required"):
        return str(value)
    function = value.get("function") if isinstance(value, dict) else None
    if (
        not isinstance(value, dict)
        or value.get("type") != "function"
        or not isinstance(function, dict)
        or not isinstance(function.get("name"), str)
    ):
        raise _invalid(
            name, 'must be "none", "auto", "required" or {"type": "function", "function": {"name"}}'
        )
    return value


def _response_format(name: str, value: Any) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise _invalid(name, 'must be {"type": "text" | "json_object" | "json_schema"}')
    if kind == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            raise _invalid(f"{name}.json_schema", "must be an object with a 'name'")
        if not _NAME.fullmatch(schema["name"]):
            raise _invalid(f"{name}.json_schema.name", "must be 1 to 64 of a-z, A-Z, 0-9, _ and -")
        if schema.get("schema") is not None:
            _object(f"{name}.json_schema.schema", schema["schema"])
    return value


#: every parameter twinstream knows, with its check; values are forwarded as checked
PARAMETERS: dict[str, Callable[[str, Any], Any]] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "stop": _stop,
    "seed": _integer(-_INT64, _INT64 - 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "logit_bias": _logit_bias,
    "logprobs": _boolean,
    "top_logprobs": _integer(0, 20),
    "n": _integer(1, 128),
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _boolean,
    "response_format": _response_format,
    "user": _string(256),
    "metadata": _metadata,
    "store": _boolean,
    "service_tier": _string(64),
    "reasoning_effort": _string(64),
    "verbosity": _string(64),
    "modalities": _list,
    "audio": _object,
    "prediction": _object,
    "web_search_options": _object,
    "prompt_cache_key": _string(1024),
    "safety_identifier": _string(256),
    "functions": _list,
    "function_call": lambda name, value: value if isinstance(value, str) else _object(name, value),
}

#: values that ask for nothing: a backend that lacks the parameter still accepts them
_NEUTRAL: dict[str, Any] = {
    "n": 1,
    "logprobs": False,
    "top_logprobs": 0,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": {},
    "store": False,
    "modalities": ["text"],
    "tool_choice": "none",
    "response_format": {"type": "text"},
    "metadata": {},
}

# Fields read by the caller, not generation parameters.
_ENVELOPE = ("messages", "model", "max_tokens", "max_completion_tokens", "stream", "stream_options")


# --- messages ---------------------------------------------------------------------------


def _bad_message(message: str) -> ProtocolError:
    return ProtocolError("invalid_messages", message)


def _content_text(content: Any, where: str, optional: bool) -> str | None:
    if content is None:
        if optional:
            return None
        raise _bad_message(f"{where}.content is required")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text (and an assistant's refusal) only
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            key = "refusal" if kind == "refusal" else "text"
            if kind not in ("text", "refusal") or not isinstance(part.get(key), str):
                raise _bad_message(f"{where}: only text parts are supported")
            texts.append(part[key])
        return "".join(texts)
    raise _bad_message(f"{where}.content must be a string or a list of text parts")


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _bad_message(f"{where}.tool_calls must be a list")
    calls = []
    for index, call in enumerate(value):
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("id"), str)
            or call.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            raise _bad_message(
                f"{where}.tool_calls[{index}] must be "
                '{"id", "type": "function", "function": {"name", "arguments"}}'
            )
        calls.append(tool_call(call["id"], function["name"], function["arguments"]))
    return calls


def _message(raw: Any, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(raw, dict) or raw.get("role") not in ROLES:
        raise _bad_message(f"{where} needs a 'role' of {', '.join(ROLES)}")
    role = raw["role"]
    message: dict[str, Any] = {"role": role}
    known = {"role", "content", "name"}
    if role == "assistant":
        known |= {"tool_calls", "refusal"}
        if raw.get("tool_calls") is not None:
            message["tool_calls"] = _tool_calls(raw["tool_calls"], where)
        if raw.get("refusal") is not None:
            if not isinstance(raw["refusal"], str):
                raise _bad_message(f"{where}.refusal must be a string")
            message["refusal"] = raw["refusal"]
    elif role == "tool":
        known.add("tool_call_id")
        if not isinstance(raw.get("tool_call_id"), str):
            raise _bad_message(f"{where}: a tool message needs 'tool_call_id'")
        message["tool_call_id"] = raw["tool_call_id"]
    message["content"] = _content_text(raw.get("content"), where, optional=role == "assistant")
    if raw.get("name") is not None:
        if not isinstance(raw["name"], str) or len(raw["name"]) > 256:
            raise _bad_message(f"{where}.name must be a string")
        message["name"] = raw["name"]
    for key, value in raw.items():
        if key not in known and value is not None:
            raise _bad_message(f"{where} has a field twinstream does not know: {key[:40]!r}")
    return message


def _messages(raw: Any, limits: Limits) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list) or not raw:
        raise _bad_message("'messages' must be a non-empty list")
    if len(raw) > MAX_MESSAGES:
        raise _bad_message(f"'messages' holds more than {MAX_MESSAGES} messages")
    messages = tuple(_message(item, index) for index, item in enumerate(raw))
    if not any(m["role"] == "user" and (m["content"] or "").strip() for m in messages):
        raise ProtocolError(
            "missing_prompt", "'messages' must include a user message with some text"
        )
    total = 0
    for message in messages:
        try:
            total += len((message["content"] or "").encode("utf-8"))
            for call in message.get("tool_calls", ()):
                total += len(call["function"]["arguments"].encode("utf-8"))
        except UnicodeEncodeError:
            raise _bad_message("'messages' hold text that is not valid Unicode") from None
    if total > limits.max_prompt_bytes:
        raise ProtocolError(
            "prompt_too_long",
            f"the messages hold {total} bytes of text; the limit is {limits.max_prompt_bytes} "
            "bytes",
            status=413,
        )
    return messages


# --- the request ------------------------------------------------------------------------


def _check_together(params: dict[str, Any]) -> None:
    """Rules between parameters (OpenAI's own)."""
    if params.get("top_logprobs") and not params.get("logprobs"):
        raise _invalid("top_logprobs", "needs 'logprobs': true")
    choice = params.get("tool_choice")
    if choice not in (None, "none") and not params.get("tools"):
        raise _invalid("tool_choice", "needs 'tools'")
    if isinstance(choice, dict):
        names = {tool["function"]["name"] for tool in params.get("tools", ())}
        if choice["function"]["name"] not in names:
            raise _invalid("tool_choice", f"names {choice['function']['name']!r}, not in 'tools'")
    if params.get("n", 1) > 1:
        raise ProtocolError(
            "unsupported_parameter",
            "'n' above 1 is not supported: a twinstream stream carries one choice; "
            "send one request per choice",
        )


def parse_chat_request(
    data: Mapping[str, Any], limits: Limits, *, prompt: str | None = None
) -> ChatRequest:
    """Validate a Chat Completions request object (already parsed JSON).
    ``model`` is checked and not kept: the server's model answers.

    ``prompt``, if given, stands for ``messages=[{"role": "user", "content":
    prompt}]`` (the WebSocket shorthand); ``data`` then must have no
    ``messages``. ``stream`` and ``stream_options`` are checked but left to
    the caller. Raises ProtocolError.
    """
    if prompt is not None:
        if data.get("messages") is not None:
            raise ProtocolError("invalid_message", "send 'prompt' or 'messages', not both")
        messages: tuple[dict[str, Any], ...] = (
            {"role": "user", "content": validate_prompt(prompt, limits)},
        )
    else:
        messages = _messages(data.get("messages"), limits)
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or len(model) > 256):
        raise _invalid("model", "must be a string")
    # The server's configured model answers whatever 'model' says: clients do
    # not choose (or run up the bill of) the provider's models.
    name = "max_tokens"
    if data.get("max_completion_tokens") is not None:
        name = "max_completion_tokens"
    max_tokens = validate_max_tokens(data.get(name), limits, name=name)
    if data.get("stream") is not None and not isinstance(data["stream"], bool):
        raise ProtocolError("invalid_stream", "'stream' must be true or false")
    if data.get("stream_options") is not None:
        _object("stream_options", data["stream_options"])
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key in _ENVELOPE or value is None:
            continue  # null means "not set", as in OpenAI's API
        check = PARAMETERS.get(key)
        if check is not None:
            params[key] = check(key, value)
        elif len(key) > 64:
            raise ProtocolError("invalid_parameter", f"unknown field {key[:64]!r}... is too long")
        else:
            extra[key] = value
    _check_together(params)
    supported = limits.supported_parameters
    if supported is not None:
        for key, value in params.items():
            if key not in supported and _NEUTRAL.get(key, ...) != value:
                raise _unsupported(key)
        for key in extra:
            raise _unsupported(key)
    return ChatRequest(
        messages=messages,
        max_tokens=max_tokens,
        params=params,
        extra=extra,
        max_tokens_field=name,
    )


def _unsupported(name: str) -> ProtocolError:
    return ProtocolError(
        "unsupported_parameter",
        f"'{name}' is not supported by the model this server runs; remove it "
        "(docs/protocol.md lists what each backend does)",
    )


def parse_json_body(body: bytes, limits: Limits) -> dict[str, Any]:
    """A request body as a JSON object (RFC 8259, strict); raises ProtocolError."""
    if len(body) > limits.body_bytes:
        raise ProtocolError(
            "prompt_too_long",
            f"the request body is {len(body)} bytes; the limit is {limits.body_bytes} bytes",
            status=413,
        )
    return loads_object(body or b"null", "the request body", "invalid_body")


def parse_chat_body(body: bytes, limits: Limits) -> tuple[ChatRequest, bool, bool]:
    """A ``/v1/chat/completions`` body: (request, stream?, include_usage?)."""
    data = parse_json_body(body, limits)
    if not isinstance(data.get("messages"), list) or not data["messages"]:
        # checked before the parameters: a body without messages is the first thing to fix
        raise _bad_message("'messages' must be a non-empty list")
    request = parse_chat_request(data, limits)
    options = data.get("stream_options") or {}
    return request, bool(data.get("stream")), bool(options.get("include_usage"))
