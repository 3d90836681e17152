"""The Responses API on the ``openai`` backend: what a Responses request maps
to reaches a loopback upstream speaking OpenAI's Chat Completions API
(tests/support/openai_upstream.py) under its chat name; what does not map is
refused by name before anything is sent. The official SDK on both sides."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from support.live import LiveServer
from support.openai_upstream import OpenAIUpstream, reply_text

from server.app import Settings

CITY = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["name", "population"],
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    server = OpenAIUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def client(upstream: OpenAIUpstream) -> Iterator[openai.OpenAI]:
    settings = Settings(
        backend="openai",
        model="up-model",
        openai_base_url=upstream.base_url,
        openai_api_key="upstream-key",
        openai_max_retries=0,
        ws_ping_interval=0,
    )
    server = LiveServer(settings).start()
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk
    server.stop()


def test_what_maps_is_forwarded_under_its_chat_name(
    client: openai.OpenAI, upstream: OpenAIUpstream
) -> None:
    with client.responses.stream(
        model="gpt-expensive",
        input="Tell me",
        instructions="Be brief.",
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=50,
        reasoning={"effort": "low"},
        safety_identifier="user-hash",
        user="u-1",
    ) as stream:
        final = stream.get_final_response()
    sent = upstream.requests[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me"},
    ]
    assert {k: sent[k] for k in ("temperature", "top_p", "max_tokens", "reasoning_effort")} == {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 50,
        "reasoning_effort": "low",
    }
    assert sent["safety_identifier"] == "user-hash" and sent["user"] == "u-1"
    assert sent["model"] == "up-model"  # the server's model answers
    assert final.output_text == reply_text(sent) and final.status == "completed"
    assert final.usage is not None and final.usage.total_tokens == 12  # the upstream's usage


def test_structured_output_and_tools(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    structured = client.responses.create(
        model="m",
        input="A city",
        text={"format": {"type": "json_schema", "name": "city", "schema": CITY, "strict": True}},
    )
    sent = upstream.requests[-1]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": CITY, "strict": True},
    }
    assert json.loads(structured.output_text) == {"name": "Paris", "population": 3}
    called = client.responses.create(
        model="m",
        input="Weather?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},  # type: ignore[list-item]
    )
    sent = upstream.requests[-1]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather",
                "parameters": WEATHER["parameters"],
            },
        }
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    (call,) = called.output
    assert call.type == "function_call" and call.call_id == "call_up1"
    assert json.loads(call.arguments) == {"city": "Paris"}
    answered = client.responses.create(
        model="m",
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": "call_up1", "output": "sunny"}],
    )
    sent = upstream.requests[-1]
    assert sent["messages"][-2]["tool_calls"][0]["id"] == "call_up1"
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": "call_up1", "content": "sunny"}
    assert answered.output_text == "The tool said sunny."


def test_a_refusal_and_a_content_filter(client: openai.OpenAI) -> None:
    response = client.responses.create(model="m", input="please refuse")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    assert response.output[0].content[0].refusal == "I can't help with that."  # type: ignore[union-attr]


def test_what_does_not_map_is_refused_by_name(
    client: openai.OpenAI, upstream: OpenAIUpstream
) -> None:
    before = len(upstream.requests)
    for kwargs, param in [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0].type"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
    ]:
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="m", input="x", **kwargs)  # type: ignore[arg-type]
        assert info.value.body["param"] == param  # type: ignore[index]
    assert len(upstream.requests) == before  # nothing was sent upstream
