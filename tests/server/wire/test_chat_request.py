"""Pure tests of the Chat Completions request parser: vectors in, a
ChatRequest or a ProtocolError (code, status, a message naming the field) out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.backends.synthetic_text import SUPPORTED_PARAMETERS
from server.wire.chat_request import (
    PARAMETERS,
    parse_chat_body,
    parse_chat_request,
    parse_json_body,
)
from server.wire.errors import ProtocolError
from server.wire.limits import Limits

LIMITS = Limits(max_prompt_bytes=200, max_tokens_limit=100, default_max_tokens=10)
SYNTHETIC = Limits(
    max_prompt_bytes=200, max_tokens_limit=100, supported_parameters=SUPPORTED_PARAMETERS
)
USER = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def parse(limits: Limits = LIMITS, **fields: Any) -> Any:
    return parse_chat_request({"messages": USER, **fields}, limits)


def test_a_whole_conversation_with_every_role() -> None:
    messages = [
        {"role": "developer", "content": "rules"},
        {
            "role": "system",
            "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}],
        },
        {"role": "user", "content": "  weather?  ", "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}], "refusal": "no"},
        {"role": "user", "content": "thanks"},
    ]
    request = parse_chat_request({"messages": messages, "model": "m", "max_tokens": 5}, LIMITS)
    assert request.messages[1]["content"] == "be brief"
    assert request.messages[2] == {"role": "user", "content": "  weather?  ", "name": "ann"}
    assert (
        request.messages[3]["content"] is None
        and request.messages[3]["tool_calls"][0]["id"] == "c1"
    )
    assert request.messages[4]["tool_call_id"] == "c1"
    # 'model' is checked, not kept: the server's configured model answers
    assert (request.model, request.max_tokens, request.last_user_message) == (None, 5, "thanks")


def test_parameters_are_kept_by_their_openai_names() -> None:
    request = parse(
        temperature=0,
        top_p=1,
        stop="\n",
        seed=-5,
        presence_penalty=-2,
        frequency_penalty=2.0,
        logit_bias={"50256": -100},
        logprobs=True,
        top_logprobs=20,
        n=1,
        tools=[TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        user="u",
        metadata={"k": "v"},
        max_completion_tokens=7,
        stream=True,
        stream_options={"include_usage": True},
        temperature_unit=None,  # null means not set, even for unknown fields
        vendor_knob={"a": 1},
    )
    assert request.params["stop"] == ["\n"]  # always a list
    assert request.params["seed"] == -5
    assert set(request.params) == set(PARAMETERS) & set(request.params)
    assert "stream" not in request.params and "stream_options" not in request.params
    assert request.extra == {"vendor_knob": {"a": 1}}
    assert (request.max_tokens, request.max_tokens_field) == (7, "max_completion_tokens")


@pytest.mark.parametrize(
    ("fields", "code", "named"),
    [
        ({"temperature": 7}, "invalid_parameter", "temperature"),
        ({"temperature": "hot"}, "invalid_parameter", "temperature"),
        ({"temperature": True}, "invalid_parameter", "temperature"),
        ({"top_p": 1.5}, "invalid_parameter", "top_p"),
        ({"stop": []}, "invalid_parameter", "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "invalid_parameter", "stop"),
        ({"stop": [""]}, "invalid_parameter", "stop"),
        ({"seed": 1.5}, "invalid_parameter", "seed"),
        ({"seed": 2**63}, "invalid_parameter", "seed"),
        ({"presence_penalty": -3}, "invalid_parameter", "presence_penalty"),
        ({"logit_bias": {"word": 1}}, "invalid_parameter", "logit_bias"),
        ({"logit_bias": {"1": 101}}, "invalid_parameter", "logit_bias.1"),
        ({"top_logprobs": 2}, "invalid_parameter", "top_logprobs"),
        ({"logprobs": "yes"}, "invalid_parameter", "logprobs"),
        ({"n": 0}, "invalid_parameter", "n"),
        ({"n": -1}, "invalid_parameter", "n"),
        ({"n": 2}, "unsupported_parameter", "n"),
        ({"tools": {}}, "invalid_parameter", "tools"),
        ({"tools": [{"type": "code"}]}, "invalid_parameter", "tools[0]"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
            "invalid_parameter",
            "tools[0].function.name",
        ),
        ({"tool_choice": "auto"}, "invalid_parameter", "tool_choice"),
        ({"tools": [TOOL], "tool_choice": "sometimes"}, "invalid_parameter", "tool_choice"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}},
            "invalid_parameter",
            "tool_choice",
        ),
        ({"response_format": {"type": "yaml"}}, "invalid_parameter", "response_format"),
        (
            {"response_format": {"type": "json_schema"}},
            "invalid_parameter",
            "response_format.json_schema",
        ),
        ({"metadata": {"k": 1}}, "invalid_parameter", "metadata"),
        ({"user": 5}, "invalid_parameter", "user"),
        ({"model": 5}, "invalid_parameter", "model"),
        ({"max_tokens": 0}, "invalid_max_tokens", "max_tokens"),
        ({"max_completion_tokens": "5"}, "invalid_max_tokens", "max_completion_tokens"),
        ({"stream": "yes"}, "invalid_stream", "stream"),
        ({"stream_options": "yes"}, "invalid_parameter", "stream_options"),
    ],
)
def test_invalid_values_say_what_was_wrong(fields: dict[str, Any], code: str, named: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(**fields)
    assert (raised.value.code, raised.value.status) == (code, 400)
    assert f"'{named}'" in raised.value.message


@pytest.mark.parametrize(
    "fields",
    [
        {"logprobs": True},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 1},
        {"logit_bias": {"1": 5}},
        {"store": True},
        {"reasoning_effort": "low"},
        {"modalities": ["text", "audio"]},
        {"audio": {"voice": "x"}},
        {"min_p": 0.1},
    ],
)
def test_a_backend_refuses_what_it_cannot_do_naming_the_field(fields: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(SYNTHETIC, **fields)
    assert raised.value.code == "unsupported_parameter"
    assert f"'{next(iter(fields))}'" in raised.value.message
    parse(LIMITS, **fields)  # a backend that forwards everything takes it


def test_neutral_values_ask_for_nothing_and_pass() -> None:
    request = parse(
        SYNTHETIC,
        logprobs=False,
        presence_penalty=0,
        frequency_penalty=0.0,
        n=1,
        logit_bias={},
        store=False,
        tool_choice="none",
        response_format={"type": "text"},
    )
    assert request.params["n"] == 1


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        (None, "invalid_messages"),
        ([], "invalid_messages"),
        ("hi", "invalid_messages"),
        ([{"content": "no role"}], "invalid_messages"),
        ([{"role": "robot", "content": "x"}], "invalid_messages"),
        ([{"role": "user", "content": 5}], "invalid_messages"),
        ([{"role": "user"}], "invalid_messages"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], "invalid_messages"),
        ([{"role": "user", "content": "hi", "colour": "red"}], "invalid_messages"),
        ([{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}], "invalid_messages"),
        (
            [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": 1}]}],
            "invalid_messages",
        ),
        ([{"role": "system", "content": "only system"}], "missing_prompt"),
        ([{"role": "user", "content": "   "}], "missing_prompt"),
    ],
)
def test_bad_messages(messages: Any, code: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_chat_request({"messages": messages}, LIMITS)
    assert raised.value.code == code


def test_the_text_limit_counts_every_message_in_utf8_bytes() -> None:
    messages = [{"role": "system", "content": "é" * 60}, {"role": "user", "content": "x" * 81}]
    with pytest.raises(ProtocolError) as raised:
        parse_chat_request({"messages": messages}, LIMITS)
    assert (raised.value.code, raised.value.status) == ("prompt_too_long", 413)
    assert "201 bytes" in raised.value.message
    messages[1]["content"] = "x" * 80
    assert parse_chat_request({"messages": messages}, LIMITS).messages[1]["content"] == "x" * 80


def test_prompt_shorthand() -> None:
    request = parse_chat_request({"max_tokens": 3}, LIMITS, prompt="  Hi  ")
    assert request.messages == ({"role": "user", "content": "  Hi  "},)
    assert request.is_single_prompt
    with pytest.raises(ProtocolError) as raised:
        parse_chat_request({"messages": USER}, LIMITS, prompt="hi")
    assert raised.value.code == "invalid_message"


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        (b"", "invalid_body", 400),
        (b"{", "invalid_json", 400),
        (b"[]", "invalid_body", 400),
        (b'{"a": NaN}', "invalid_json", 400),
        (b'{"messages": "\\ud800"}', "invalid_json", 400),
        (b" " * (200 * 8 + 1), "prompt_too_long", 413),
    ],
)
def test_bad_bodies(body: bytes, code: str, status: int) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_json_body(body, LIMITS)
    assert (raised.value.code, raised.value.status) == (code, status)


def test_chat_body_reports_stream_and_usage_options() -> None:
    body = json.dumps(
        {"messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    ).encode()
    request, streaming, include_usage = parse_chat_body(body, LIMITS)
    assert (streaming, include_usage, request.max_tokens) == (True, True, 10)
    assert parse_chat_body(json.dumps({"messages": USER}).encode(), LIMITS)[1:] == (False, False)
