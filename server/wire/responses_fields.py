"""The parts of a Responses request that take another shape in a chat request:
``input`` (a string or items) as chat messages, function ``tools``,
``tool_choice`` and ``text`` (the output format). Pure code; errors name
OpenAI's ``param``. :mod:`server.wire.responses_request` puts them together."""

from __future__ import annotations

import re
from typing import Any

from .chat_request import MAX_MESSAGES, assistant_message, tool_call
from .errors import ProtocolError

__all__ = [
    "MESSAGE_ROLES",
    "invalid",
    "unsupported",
    "parse_input",
    "parse_tools",
    "parse_tool_choice",
    "parse_text",
]

MESSAGE_ROLES = ("user", "system", "developer", "assistant")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: OpenAI's tools that run on OpenAI's side: refused by name
_BUILT_IN_TOOLS = (
    "web_search",
    "web_search_preview",
    "file_search",
    "code_interpreter",
    "computer_use_preview",
    "computer",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "custom",
    "apply_patch",
    "tool_search",
)


def invalid(param: str, message: str, code: str = "invalid_parameter") -> ProtocolError:
    """An OpenAI-shaped 400 naming ``param``."""
    return ProtocolError(code, message, param=param)


def unsupported(param: str, why: str) -> ProtocolError:
    return ProtocolError("unsupported_parameter", f"'{param}' is not supported: {why}", param=param)


# --- input ------------------------------------------------------------------------------


def _text_parts(content: Any, where: str, role: str) -> tuple[str, list[dict[str, Any]]]:
    """A message's content as text, and as input_text/output_text parts."""
    if isinstance(content, str):
        whole = "output_text" if role == "assistant" else "input_text"
        return content, [{"type": whole, "text": content}]
    if not isinstance(content, list):
        raise invalid(f"{where}.content", "must be a string or a list of content parts")
    texts, parts = [], []
    for index, part in enumerate(content):
        here = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_image", "input_file", "input_audio"):
            raise unsupported(
                f"{here}.type", f"{kind} needs a model that reads it; this server's reads text"
            )
        key = "refusal" if kind == "refusal" else "text"
        if kind not in ("input_text", "output_text", "refusal") or not isinstance(
            part.get(key), str
        ):
            raise invalid(
                here,
                f'\'{here}\' must be a text part: {{"type": "input_text", "text": ...}}'
                + (" (output_text or refusal for an assistant)" if role == "assistant" else ""),
            )
        if kind != "input_text" and role != "assistant":
            raise invalid(f"{here}.type", f"'{kind}' parts belong to assistant messages")
        texts.append(part[key])
        parts.append({"type": kind, key: part[key]})
    return "".join(texts), parts


def _function_call(raw: dict[str, Any], where: str) -> dict[str, Any]:
    for key in ("call_id", "name", "arguments"):
        if not isinstance(raw.get(key), str):
            raise invalid(f"{where}.{key}", f"a function_call item needs '{key}' (a string)")
    return tool_call(raw["call_id"], raw["name"], raw["arguments"])


def _output_text(raw: dict[str, Any], where: str) -> str:
    output = raw.get("output")
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _text_parts(output, where, "tool")[0] if output else ""
    raise invalid(f"{where}.output", "must be a string or a list of input_text parts")


def parse_input(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``input`` as chat messages and as items."""
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}], [_message_item("user", raw, None)]
    if not isinstance(raw, list) or not raw:
        raise invalid("input", "'input' must be a string or a non-empty list of items")
    if len(raw) > MAX_MESSAGES:
        raise invalid("input", f"'input' holds more than {MAX_MESSAGES} items")
    messages: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise invalid(where, f"'{where}' must be an object (a message or an item)")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in MESSAGE_ROLES:
                raise invalid(f"{where}.role", f"must be one of {', '.join(MESSAGE_ROLES)}")
            text, parts = _text_parts(item.get("content"), where, role)
            messages.append({"role": role, "content": text})
            items.append(_message_item(role, text, parts))
        elif kind == "function_call":
            call = _function_call(item, where)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # its text, then its calls
                calls = [*last.get("tool_calls", ()), call]
                messages[-1] = assistant_message(last["content"], calls)
            else:
                messages.append(assistant_message(None, [call]))
            items.append(
                {
                    "type": "function_call",
                    "call_id": item["call_id"],
                    "name": item["name"],
                    "arguments": item["arguments"],
                    "status": "completed",
                }
            )
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise invalid(f"{where}.call_id", "a function_call_output needs 'call_id'")
            output = _output_text(item, where)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": item["call_id"],
                    "output": output,
                    "status": "completed",
                }
            )
        elif isinstance(kind, str) and len(kind) <= 64:
            raise unsupported(
                f"{where}.type",
                f"{kind!r} items; send messages, function_call and function_call_output items",
            )
        else:
            raise invalid(f"{where}.type", "must be a string naming the item type")
    return messages, items


def _message_item(role: str, text: str, parts: list[dict[str, Any]] | None) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {
        "type": "message",
        "role": role,
        "content": parts if parts is not None else [{"type": kind, "text": text}],
        "status": "completed",
    }


# --- tools and formats ---------------------------------------------------------------------


def parse_tools(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Function tools: (the chat shape, the Responses shape echoed)."""
    if not isinstance(raw, list) or len(raw) > 128:
        raise invalid("tools", "'tools' must be a list of at most 128 tools")
    chat, echo = [], []
    for index, tool in enumerate(raw):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in _BUILT_IN_TOOLS or (isinstance(kind, str) and kind.startswith("web_search")):
            raise unsupported(
                f"{where}.type",
                f"{kind} is one of OpenAI's built-in tools; this server runs function tools",
            )
        if kind != "function":
            raise invalid(f"{where}.type", 'a tool must be {"type": "function", "name": ...}')
        assert isinstance(tool, dict)
        name = tool.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise invalid(f"{where}.name", "must be 1 to 64 of a-z, A-Z, 0-9, _ and -")
        function: dict[str, Any] = {"name": name}
        if tool.get("description") is not None:
            if not isinstance(tool["description"], str):
                raise invalid(f"{where}.description", "must be a string")
            function["description"] = tool["description"]
        if tool.get("parameters") is not None:
            if not isinstance(tool["parameters"], dict):
                raise invalid(f"{where}.parameters", "must be a JSON Schema object")
            function["parameters"] = tool["parameters"]
        if tool.get("strict") is not None:
            if not isinstance(tool["strict"], bool):
                raise invalid(f"{where}.strict", "must be true or false")
            function["strict"] = tool["strict"]
        for key in tool:
            if key not in ("type", "name", "description", "parameters", "strict"):
                raise invalid(
                    f"{where}.{key[:40]}", f"unknown field of a function tool: {key[:40]!r}"
                )
        chat.append({"type": "function", "function": function})
        echo.append(
            {
                "type": "function",
                "name": name,
                "description": function.get("description"),
                "parameters": function.get("parameters"),
                "strict": function.get("strict", True),
            }
        )
    return chat, echo


def parse_tool_choice(raw: Any) -> Any:
    if raw in ("none", "auto", "required"):
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("name"), str):
        return {"type": "function", "function": {"name": raw["name"]}}
    raise invalid(
        "tool_choice", 'must be "none", "auto", "required" or {"type": "function", "name": ...}'
    )


def parse_text(raw: Any) -> tuple[dict[str, Any] | None, str | None, dict[str, Any]]:
    """``text``: (response_format, verbosity, the echo)."""
    if not isinstance(raw, dict):
        raise invalid("text", "'text' must be an object: {\"format\": {...}}")
    for key in raw:
        if key not in ("format", "verbosity"):
            raise invalid(f"text.{key[:40]}", f"unknown field of 'text': {key[:40]!r}")
    verbosity = raw.get("verbosity")
    if verbosity is not None and verbosity not in ("low", "medium", "high"):
        raise invalid("text.verbosity", 'must be "low", "medium" or "high"')
    form = raw.get("format")
    if form is None:
        return None, verbosity, {"format": {"type": "text"}, **_maybe("verbosity", verbosity)}
    kind = form.get("type") if isinstance(form, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise invalid("text.format.type", 'must be "text", "json_object" or "json_schema"')
    assert isinstance(form, dict)
    if kind != "json_schema":
        return (
            {"type": kind},
            verbosity,
            {"format": {"type": kind}, **_maybe("verbosity", verbosity)},
        )
    name = form.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise invalid("text.format.name", "must be 1 to 64 of a-z, A-Z, 0-9, _ and -")
    schema = form.get("schema")
    if not isinstance(schema, dict):
        raise invalid("text.format.schema", "must be a JSON Schema object")
    json_schema: dict[str, Any] = {"name": name, "schema": schema}
    for key, check in (("description", str), ("strict", bool)):
        if form.get(key) is not None:
            if not isinstance(form[key], check):
                raise invalid(f"text.format.{key}", f"must be a {check.__name__}")
            json_schema[key] = form[key]
    echo = {"format": {"type": "json_schema", **json_schema}, **_maybe("verbosity", verbosity)}
    return {"type": "json_schema", "json_schema": json_schema}, verbosity, echo


def _maybe(key: str, value: Any) -> dict[str, Any]:
    return {} if value is None else {key: value}
