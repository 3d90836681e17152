"""The SDKs people use, streaming through twinstream's ``/v1`` to a real
OpenAI-compatible upstream on loopback (tests/support/openai_upstream.py): the official
openai SDK for Python, LangChain's ChatOpenAI and the Node ``openai`` package.
Parameters reach the upstream; tool calls, structured output, refusals and
logprobs come back as the SDKs expect. Nothing is mocked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel
from support.live import LiveServer
from support.openai_upstream import OpenAIUpstream, reply_text

from server.app import Settings
from server.backends.synthetic import synthetic_tokens

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


class City(BaseModel):
    name: str
    population: int


@pytest.fixture
def upstream() -> Iterator[OpenAIUpstream]:
    server = OpenAIUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def twinstream(upstream: OpenAIUpstream) -> Iterator[LiveServer]:
    settings = Settings(
        backend="openai",
        model="up-model",
        openai_base_url=upstream.base_url,
        openai_api_key="upstream-key",
        openai_max_retries=0,
        ws_ping_interval=0,
    )
    server = LiveServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
def client(twinstream: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=twinstream.url + "/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_python_sdk_streams_with_parameters_which_reach_the_upstream(
    client: openai.OpenAI, upstream: OpenAIUpstream
) -> None:
    messages = [{"role": "user", "content": "Tell me"}]
    stream = client.chat.completions.create(
        model="up-model",
        messages=messages,  # type: ignore[arg-type]
        temperature=0.3,
        seed=7,
        stop=[" with"],
        top_p=0.9,
        max_completion_tokens=50,
        user="u-1",
        stream=True,
        extra_body={"min_p": 0.1},  # unknown to twinstream: forwarded as it is
    )
    pieces, finish = [], None
    for chunk in stream:
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    sent = upstream.requests[-1]
    expected = reply_text({"messages": messages, "temperature": 0.3, "seed": 7})
    assert "".join(pieces) == expected[: expected.index(" with")]
    assert finish == "stop"
    assert {k: sent[k] for k in ("temperature", "seed", "stop", "top_p", "user", "min_p")} == {
        "temperature": 0.3,
        "seed": 7,
        "stop": [" with"],
        "top_p": 0.9,
        "user": "u-1",
        "min_p": 0.1,
    }
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent
    assert sent["model"] == "up-model" and sent["stream"] is True
    client.chat.completions.create(model="gpt-expensive", messages=messages)  # type: ignore[arg-type]
    assert upstream.requests[-1]["model"] == "up-model"  # the server's model, not the client's


def test_python_sdk_tool_calls_arrive_as_tool_calls(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    stream = client.chat.completions.create(
        model="m",
        messages=messages,
        tools=[WEATHER_TOOL],
        stream=True,  # type: ignore[list-item]
    )
    fragments, finish = [], None
    for chunk in stream:
        for choice in chunk.choices:
            fragments += choice.delta.tool_calls or []
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert fragments[0].id == "call_up1" and fragments[0].function.name == "get_weather"
    arguments = "".join(f.function.arguments or "" for f in fragments)
    assert json.loads(arguments) == {"city": "Paris", "days": 3}
    # The same, whole (stream: false), then the tool's result goes back up.
    completion = client.chat.completions.create(
        model="m",
        messages=messages,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None and message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    follow_up = messages + [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    answer = client.chat.completions.create(model="m", messages=follow_up, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert answer.choices[0].message.content == "The tool said sunny."


def test_python_sdk_structured_output_refusal_and_logprobs(client: openai.OpenAI) -> None:
    parsed = client.chat.completions.parse(
        model="m", messages=[{"role": "user", "content": "A city"}], response_format=City
    )
    assert parsed.choices[0].message.parsed == City(name="Paris", population=3)
    with client.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "A city"}], response_format=City
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == City(name="Paris", population=3)
    refused = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "please refuse"}]
    )
    assert refused.choices[0].message.refusal == "I can't help with that."
    assert refused.choices[0].finish_reason == "content_filter"
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        logprobs=True,
        top_logprobs=2,
        stream=True,
    )
    tokens = [
        item.token
        for chunk in stream
        for choice in chunk.choices
        if choice.logprobs and choice.logprobs.content
        for item in choice.logprobs.content
    ]
    assert "".join(tokens) == reply_text({"messages": [{"role": "user", "content": "hi"}]})


def test_langchain_chat_openai_streams_calls_tools_and_structures_output(
    twinstream: LiveServer, upstream: OpenAIUpstream
) -> None:
    llm = ChatOpenAI(
        model="up-model",
        base_url=twinstream.url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        temperature=0.2,
        seed=11,
        stop=[" at"],
        max_retries=0,
    )
    text = "".join(str(chunk.content) for chunk in llm.stream("Hello"))
    assert text == "Upstream heard 'Hello'"
    assert upstream.requests[-1]["temperature"] == 0.2 and upstream.requests[-1]["seed"] == 11

    @tool
    def get_weather(city: str, days: int) -> str:
        """The weather in a city."""
        return "sunny"

    reply = llm.bind_tools([get_weather]).invoke("Weather in Paris?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": 3})
    ]
    streamed = None
    for chunk in llm.bind_tools([get_weather]).stream("Weather in Paris?"):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [  # type: ignore[attr-defined]
        ("get_weather", {"city": "Paris", "days": 3})
    ]
    city = llm.with_structured_output(City).invoke("A city")
    assert city == City(name="Paris", population=3)
    sent = upstream.requests[-1]
    assert sent["response_format"]["type"] == "json_schema"


def test_node_openai_sdk_streams_tools_and_structured_output(
    twinstream: LiveServer, upstream: OpenAIUpstream
) -> None:
    node = shutil.which("node")
    assert node, "node is needed (scripts/test.sh installs it)"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), (
        "run `npm ci --prefix tests/node` (scripts/test.sh does)"
    )
    result = subprocess.run(
        [node, str(NODE_DIR / "sdk_check.mjs"), twinstream.url + "/v1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = reply_text(
        {"messages": [{"role": "user", "content": "Hi from Node"}], "temperature": 0.5, "seed": 3}
    )
    assert report["text"] == expected[: expected.index(" with")]
    assert report["finish"] == "stop"
    assert report["toolCall"] == {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}
    assert report["toolFinish"] == "tool_calls"
    assert report["json"] == {"name": "Paris", "population": 3}
    sent = upstream.requests[0]
    assert (sent["temperature"], sent["seed"], sent["stop"]) == (0.5, 3, [" with"])


@pytest.fixture
def synthetic() -> Iterator[LiveServer]:
    server = LiveServer(Settings(tokens_per_second=0, ws_ping_interval=0)).start()
    yield server
    server.stop()


def test_langchain_against_the_synthetic_model_needs_no_key(synthetic: LiveServer) -> None:
    """Tool calling and structured output work with the embedded model too."""
    llm = ChatOpenAI(
        model="twinstream-synthetic",
        base_url=synthetic.url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        max_retries=0,
        max_tokens=12,
    )
    text = "".join(str(chunk.content) for chunk in llm.stream("Hello"))
    assert text == "".join(synthetic_tokens("Hello")[:12])

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    reply = llm.bind_tools([get_weather]).invoke("What does get_weather say for Paris?")
    [call] = reply.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    city = llm.with_structured_output(City).invoke("A city")
    assert isinstance(city, City)
    with pytest.raises(openai.BadRequestError, match="'frequency_penalty'"):
        ChatOpenAI(
            base_url=synthetic.url + "/v1",
            api_key="unused",  # type: ignore[arg-type]
            max_retries=0,
            frequency_penalty=0.5,
        ).invoke("Hi")
