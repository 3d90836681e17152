"""Pure tests of the Responses request: the same ChatRequest as the equivalent
Chat Completions body, the echo, and every refusal naming its param."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.backends.synthetic_text import SUPPORTED_PARAMETERS
from server.wire.chat_request import parse_chat_request
from server.wire.errors import ProtocolError, error_body
from server.wire.limits import Limits
from server.wire.responses_request import (
    delivery,
    parse_responses_request,
    previous_response_id,
    response_id,
    stream_of_response,
)

SYNTHETIC = Limits(max_prompt_bytes=1000, supported_parameters=SUPPORTED_PARAMETERS)
ANY = Limits(max_prompt_bytes=1000)
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CHAT_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather",
        "parameters": TOOL["parameters"],
    },
}


def refused(data: dict[str, Any], limits: Limits = SYNTHETIC, **kw: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_responses_request(data, limits, **kw)
    return info.value


def test_a_string_input_is_one_user_message() -> None:
    request = parse_responses_request({"model": "m", "input": "Hi"}, SYNTHETIC)
    assert request.chat == parse_chat_request(
        {"messages": [{"role": "user", "content": "Hi"}]}, SYNTHETIC
    )
    assert request.chat.is_single_prompt  # so /sse?prompt=Hi says the same
    assert request.input_items == (
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Hi"}],
            "status": "completed",
        },
    )
    assert request.echo["tools"] == [] and request.echo["store"] is True
    assert request.echo["text"] == {"format": {"type": "text"}}


def test_the_same_chat_request_as_the_equivalent_chat_body() -> None:
    responses = {
        "input": [
            {"role": "developer", "content": "Terse."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "A"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "B"}]},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"role": "user", "content": "get_weather again"},
        ],
        "instructions": "Be brief.",
        "max_output_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        "user": "u1",
        "metadata": {"k": "v"},
        "store": True,
        "truncation": "disabled",
    }
    chat = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Terse."},
            {"role": "user", "content": "A"},
            {
                "role": "assistant",
                "content": "B",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": "get_weather again"},
        ],
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "tools": [CHAT_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}},
        },
        "user": "u1",
    }
    request = parse_responses_request(responses, SYNTHETIC)
    assert request.chat == parse_chat_request(chat, SYNTHETIC)
    assert request.messages == tuple(chat["messages"][1:])  # without the instructions
    assert request.echo["tools"][0]["name"] == "get_weather"
    assert request.echo["metadata"] == {"k": "v"} and request.echo["instructions"] == "Be brief."
    assert [item["type"] for item in request.input_items] == [
        "message",
        "message",
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]


def test_history_comes_first_and_instructions_are_not_inherited() -> None:
    history = ({"role": "user", "content": "one"}, {"role": "assistant", "content": "two"})
    request = parse_responses_request(
        {"input": "three", "instructions": "I"}, SYNTHETIC, history=history
    )
    assert [m["content"] for m in request.chat.messages] == ["I", "one", "two", "three"]
    assert [m["content"] for m in request.messages] == ["one", "two", "three"]


def test_json_object_and_text_formats_and_reasoning_on_a_backend_that_takes_it() -> None:
    request = parse_responses_request(
        {"input": "x", "text": {"format": {"type": "json_object"}}}, SYNTHETIC
    )
    assert request.chat.params["response_format"] == {"type": "json_object"}
    plain = parse_responses_request({"input": "x", "text": {"format": {"type": "text"}}}, SYNTHETIC)
    assert "response_format" not in plain.chat.params
    upstream = parse_responses_request(
        {"input": "x", "reasoning": {"effort": "low"}, "safety_identifier": "s"}, ANY
    )
    assert upstream.chat.params["reasoning_effort"] == "low"
    assert upstream.chat.params["safety_identifier"] == "s"
    # a label the synthetic model does not take is echoed, not forwarded
    labelled = parse_responses_request({"input": "x", "safety_identifier": "s"}, SYNTHETIC)
    assert "safety_identifier" not in labelled.chat.params
    assert labelled.echo["safety_identifier"] == "s"


@pytest.mark.parametrize(
    ("data", "code", "param"),
    [
        (
            {"input": "x", "tools": [{"type": "web_search"}]},
            "unsupported_parameter",
            "tools[0].type",
        ),
        (
            {"input": "x", "tools": [TOOL, {"type": "file_search"}]},
            "unsupported_parameter",
            "tools[1].type",
        ),
        (
            {"input": "x", "tools": [{"type": "code_interpreter"}]},
            "unsupported_parameter",
            "tools[0].type",
        ),
        ({"input": "x", "conversation": "conv_1"}, "unsupported_parameter", "conversation"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]},
            "unsupported_parameter",
            "input[0].content[0].type",
        ),
        ({"input": [{"type": "reasoning", "id": "r"}]}, "unsupported_parameter", "input[0].type"),
        ({"input": [{"type": 3}]}, "invalid_parameter", "input[0].type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "invalid_parameter", "input[0].role"),
        ({"input": [{"role": "user", "content": 5}]}, "invalid_parameter", "input[0].content"),
        (
            {"input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
            "invalid_parameter",
            "input[0].content[0].type",
        ),
        ({"input": [{"role": "user", "content": [7]}]}, "invalid_parameter", "input[0].content[0]"),
        (
            {"input": [{"type": "function_call", "name": "f"}]},
            "invalid_parameter",
            "input[0].call_id",
        ),
        ({"input": [3]}, "invalid_parameter", "input[0]"),
        ({"input": []}, "invalid_parameter", "input"),
        ({}, "missing_required_parameter", "input"),
        ({"input": "  "}, "missing_prompt", "input"),
        ({"input": "x", "bogus": 1}, "unknown_parameter", "bogus"),
        ({"input": "x", "temperature": 3}, "invalid_parameter", "temperature"),
        ({"input": "x", "temperature": "hot"}, "invalid_parameter", "temperature"),
        ({"input": "x", "max_output_tokens": 0}, "invalid_max_tokens", "max_output_tokens"),
        ({"input": "x", "max_output_tokens": "9"}, "invalid_max_tokens", "max_output_tokens"),
        ({"input": "x", "stream": "yes"}, "invalid_parameter", "stream"),
        (
            {"input": "x", "text": {"format": {"type": "xml"}}},
            "invalid_parameter",
            "text.format.type",
        ),
        ({"input": "x", "tool_choice": "sometimes"}, "invalid_parameter", "tool_choice"),
        ({"input": "x", "tool_choice": "required"}, "invalid_parameter", "tool_choice"),
        (
            {"input": "x", "reasoning": {"effort": "low"}},
            "unsupported_parameter",
            "reasoning.effort",
        ),
        ({"input": "x", "metadata": {"k": 1}}, "invalid_parameter", "metadata"),
        (
            {"input": "x", "include": ["message.output_text.logprobs"]},
            "unsupported_parameter",
            "include",
        ),
        ({"input": "x", "truncation": "middle"}, "invalid_parameter", "truncation"),
        ({"input": "x" * 1001}, "prompt_too_long", "input"),
    ],
)
def test_refusals_name_the_param(data: dict[str, Any], code: str, param: str) -> None:
    error = refused(data)
    assert (error.code, error.param) == (code, param), error.message
    assert error.status in (400, 413)
    body = error_body(error.status, error.code, error.message, error.param)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"


def test_websocket_mode_refuses_http_fields() -> None:
    for key in ("stream", "background"):
        assert refused({"input": "x", key: False}, websocket=True).param == key
    assert parse_responses_request({"input": "x", "generate": True}, SYNTHETIC, websocket=True)
    assert refused({"input": "x", "generate": False}, websocket=True).param == "generate"


def test_ids() -> None:
    assert response_id("AbC-_9") == "resp_AbC-_9"
    assert stream_of_response("resp_AbC-_9") == "AbC-_9"
    for bad in ("AbC", "resp_", "resp_a/b", 5, None, "resp_" + "a" * 65):
        assert stream_of_response(bad) is None
    assert previous_response_id({}) is None
    assert previous_response_id({"previous_response_id": "resp_x"}) == "resp_x"
    with pytest.raises(ProtocolError) as info:
        previous_response_id({"previous_response_id": 7})
    assert info.value.param == "previous_response_id"


def test_an_error_body_is_json_with_a_null_param() -> None:
    body = json.dumps(error_body(404, "not_found", "gone"))
    assert json.loads(body) == {
        "error": {
            "message": "gone",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
    }


def test_stream_id_is_a_websocket_lane_not_an_http_field() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_responses_request({"input": "hi", "stream_id": "lane"}, ANY)
    assert info.value.code == "unknown_parameter" and info.value.param == "stream_id"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({}, (False, False)),
        ({"stream": True}, (True, False)),
        ({"stream": False, "background": True}, (False, True)),
        ({"stream": None, "background": None}, (False, False)),
    ],
)
def test_delivery(data: dict[str, Any], expected: tuple[bool, bool]) -> None:
    assert delivery(data) == expected
    request = parse_responses_request({"input": "hi", **data}, ANY)
    assert (request.stream, request.background) == expected


@pytest.mark.parametrize("key, value", [("stream", "true"), ("stream", 1), ("background", "yes")])
def test_delivery_refuses_what_is_not_a_boolean(key: str, value: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        delivery({key: value})
    assert info.value.param == key


def test_one_error_body_with_or_without_param() -> None:
    from server.wire.errors import error_body, error_json

    body = {"message": "failed", "type": "server_error", "param": None, "code": "internal_error"}
    assert error_body(500, "internal_error", "failed") == {"error": body}
    assert json.loads(error_json(400, "invalid_parameter", "bad", "input"))["error"]["param"] == (
        "input"
    )
