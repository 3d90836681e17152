"""Pure tests of what the AI SDK's chat transports send, as the one ChatRequest
(server/wire/ui_message_request.py): whole vectors, the same request as the
equivalent Chat Completions body, refusals by name, and a fuzz (only ProtocolError)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.backends.synthetic_text import SUPPORTED_PARAMETERS
from server.wire.chat_request import parse_chat_request
from server.wire.errors import ProtocolError
from server.wire.limits import Limits
from server.wire.ui_message_request import parse_ui_chat, ui_messages_to_openai

LIMITS = Limits(max_prompt_bytes=32 * 1024, supported_parameters=SUPPORTED_PARAMETERS)


def ui(role: str, *parts: dict[str, Any], id: str = "m") -> dict[str, Any]:
    return {"id": id, "role": role, "parts": list(parts)}


def t(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


WEATHER_PART = {
    "type": "tool-get_weather",
    "toolCallId": "call_1",
    "state": "output-available",
    "input": {"city": "Paris"},
    "output": {"forecast": "sunny"},
}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "chat-1", "messages": list(messages), "trigger": "submit-message", **extra}


def test_what_default_chat_transport_posts() -> None:
    request = parse_ui_chat(
        body(
            ui("system", t("Be brief.")),
            ui("user", t("Hello "), t("there")),
            ui("assistant", {"type": "step-start"}, t("Hi!"), id="a1"),
            ui("user", t("Again")),
            messageId=None,
            temperature=0.5,
            max_tokens=7,
        ),
        LIMITS,
    )
    assert (request.chat_id, request.trigger, request.message_id) == (
        "chat-1",
        "submit-message",
        None,
    )
    assert request.continues is None
    assert request.chat.messages == (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Again"},
    )
    assert request.chat.params == {"temperature": 0.5}
    assert request.chat.max_tokens == 7


def test_the_same_request_as_the_equivalent_chat_completions_body() -> None:
    ui_request = parse_ui_chat(
        body(
            ui("user", t("Weather in Paris?")),
            ui("assistant", {"type": "step-start"}, WEATHER_PART, {"type": "step-start"},
               t("Sunny."), id="a1"),
            ui("user", t("Thanks")),
            tools=[TOOL], seed=3,
        ),
        LIMITS,
    ).chat  # fmt: skip
    openai_request = parse_chat_request(
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"forecast":"sunny"}'},
                {"role": "assistant", "content": "Sunny."},
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [TOOL],
            "seed": 3,
        },
        LIMITS,
    )
    assert ui_request == openai_request


def test_a_tool_round_trip_continues_the_assistant_message() -> None:
    request = parse_ui_chat(
        body(ui("user", t("Weather?")), ui("assistant", {"type": "step-start"}, WEATHER_PART,
                                          id="a1"), tools=[TOOL]),
        LIMITS,
    )  # fmt: skip
    assert request.continues == "a1"
    assert request.chat.messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"forecast":"sunny"}',
    }


def test_dynamic_tools_string_outputs_and_errors() -> None:
    converted = ui_messages_to_openai(
        [
            ui("user", t("go")),
            ui(
                "assistant",
                {"type": "dynamic-tool", "toolName": "f", "toolCallId": "c1",
                 "state": "output-available", "input": {}, "output": "plain"},
                {"type": "tool-g", "toolCallId": "c2", "state": "output-error", "input": {"a": 1},
                 "errorText": "no"},
            ),
        ]
    )  # fmt: skip
    assert [m["role"] for m in converted] == ["user", "assistant", "tool", "tool"]
    assert [c["function"]["name"] for c in converted[1]["tool_calls"]] == ["f", "g"]
    assert converted[2]["content"] == "plain" and converted[3]["content"] == "no"


def test_reasoning_data_and_step_parts_are_not_sent_to_the_model() -> None:
    converted = ui_messages_to_openai(
        [
            ui("user", t("q"), {"type": "data-weather", "data": {}}),
            ui("assistant", {"type": "reasoning", "text": "hmm"}, t("a")),
        ]
    )
    assert converted == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (body(ui("user", {"type": "file", "url": "x", "mediaType": "image/png"})),
         "unsupported_part", "'file' part"),
        (body(ui("user", t("q")), ui("assistant", {**WEATHER_PART, "state": "input-available"})),
         "invalid_messages", "has no output"),
        (body(ui("user", {"type": "tool-x", "toolCallId": "c"})), "unsupported_part", "tool-x"),
        (body(ui("user", {"type": "text", "text": 3})), "invalid_messages", "string 'text'"),
        (body(ui("robot", t("q"))), "invalid_messages", "'role'"),
        (body({"role": "user", "content": "openai shape"}), "invalid_messages", "parts"),
        ({"id": "c", "messages": []}, "invalid_messages", "non-empty"),
        ({"id": "c"}, "invalid_messages", "non-empty"),
        (body(ui("user", t("q")), id=""), "invalid_chat_id", "'id'"),
        (body(ui("user", t("q")), id="a/b"), "invalid_chat_id", "'id'"),
        (body(ui("user", t("q")), id=".."), "invalid_chat_id", "'id'"),
        (body(ui("user", t("q")), trigger="resume-stream"), "invalid_trigger", "trigger"),
        (body(ui("user", t("q")), messageId=5), "invalid_message_id", "messageId"),
        (body(ui("user", t("q")), temperature=9), "invalid_parameter", "temperature"),
        (body(ui("user", t("q")), stream=False), "invalid_parameter", "stream"),
        (body(ui("user", t("q")), logprobs=True), "unsupported_parameter", "logprobs"),
        (body(ui("user", t("  "))), "missing_prompt", "user message"),
        (body(ui("user", t("x" * 40_000))), "prompt_too_long", "limit"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_by_name(data: dict[str, Any], code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_ui_chat(data, LIMITS)
    assert caught.value.code == code
    assert words in caught.value.message
    assert 400 <= caught.value.status < 500


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)  # fmt: skip
PART = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "file", "step-start", "reasoning", "tool-f", "dynamic-tool",
                              "data-x", "source-url", ""]) | st.text(max_size=6)},
    optional={"text": JSON, "toolCallId": JSON, "toolName": JSON, "state": st.sampled_from(
        ["output-available", "output-error", "input-available"]) | JSON, "input": JSON,
        "output": JSON, "errorText": JSON},
)  # fmt: skip
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool"]) | JSON},
    optional={"id": JSON, "parts": st.lists(PART, max_size=4) | JSON},
)
BODY = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["chat", "a/b", ""]) | JSON,
        "messages": st.lists(MESSAGE, max_size=4) | JSON,
        "trigger": st.sampled_from(["submit-message", "regenerate-message"]) | JSON,
        "messageId": JSON,
        "temperature": JSON,
        "tools": JSON,
        "max_tokens": JSON,
    },
)


@settings(max_examples=400, deadline=None)
@given(BODY)
def test_fuzz_only_protocol_errors(data: dict[str, Any]) -> None:
    try:
        parse_ui_chat(data, LIMITS)
    except ProtocolError as exc:
        assert 400 <= exc.status < 500 and exc.message
