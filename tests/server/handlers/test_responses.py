"""The Responses API through the official openai SDK, unchanged (sync and async
clients), against real server processes: one on the memory store, and two
sharing a real redis-server, where retrieve, resume and cancel go to the
process that did not start the response. Nothing is mocked."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.lib.responses_websocket import (
    AsyncResponsesWebSocketSession,
    ResponsesWebSocketLimits,
)
from support.cluster import ServerProc
from support.redisutil import RedisServer
from websockets.asyncio.client import connect as ws_connect

NODE_DIR = Path(__file__).resolve().parents[2] / "node"
PACE = ("--tokens-per-second", "200", "--first-token-latency", "0", "--log-level", "warning")
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
LIMITS = ResponsesWebSocketLimits(
    max_lanes=8,
    max_events_per_lane=100_000,
    max_events=200_000,
    max_bytes_per_lane=1 << 28,
    max_bytes=1 << 29,
)


@pytest.fixture(scope="module")
def memory() -> Iterator[tuple[str, str]]:
    server = ServerProc(*PACE)
    yield server.url, server.url
    server.close()


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[str, str]]:
    redis = RedisServer().start()
    a = ServerProc("--store", redis.url, *PACE)
    b = ServerProc("--store", redis.url, *PACE)
    yield a.url, b.url
    a.close()
    b.close()
    redis.close()


@pytest.fixture(params=["memory", "redis"])
def urls(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(where a response starts, where it is retrieved, resumed and cancelled)."""
    return request.getfixturevalue("memory" if request.param == "memory" else "shared")


def sync(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def aio(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def dumped(events: list[Any]) -> list[dict[str, Any]]:
    return [event.model_dump(exclude_none=True) for event in events]


def test_create_retrieve_and_input_items(urls: tuple[str, str]) -> None:
    a, b = sync(urls[0]), sync(urls[1])
    made = a.responses.create(
        model="any", input="Tell me about streams", instructions="Be brief.", max_output_tokens=20
    )
    assert made.id.startswith("resp_") and made.object == "response"
    assert made.status == "incomplete" and made.incomplete_details.reason == "max_output_tokens"
    assert made.usage is not None and made.usage.output_tokens == 20
    again = b.responses.retrieve(made.id)
    assert again.output_text == made.output_text and again.instructions == "Be brief."
    items = b.responses.input_items.list(made.id)
    assert [item.content[0].text for item in items.data] == ["Tell me about streams"]
    whole = a.responses.create(model="any", input="Hi", metadata={"k": "v"})
    assert whole.status == "completed" and whole.metadata == {"k": "v"} and whole.output_text


def test_stream_and_get_final_response(urls: tuple[str, str]) -> None:
    client = sync(urls[0])
    with client.responses.stream(model="any", input="Say something") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(deltas)
    events = list(client.responses.create(model="any", input="Say something", stream=True))
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.output_text == final.output_text  # the same model, same text
    # the helper on an existing response: it reads the events from the start, yields those after N
    with sync(urls[1]).responses.stream(response_id=final.id, starting_after=5) as again:
        numbers = [event.sequence_number for event in again]
        assert again.get_final_response().output_text == final.output_text
    assert numbers[0] == 6 and numbers == list(range(6, len(events)))


async def test_async_client_streams_retrieves_and_resumes(urls: tuple[str, str]) -> None:
    a, b = aio(urls[0]), aio(urls[1])
    async with a.responses.stream(model="any", input="async please") as stream:
        final = await stream.get_final_response()
    assert final.status == "completed"
    again = await b.responses.retrieve(final.id)
    assert again.output_text == final.output_text
    rest = [
        event async for event in await b.responses.retrieve(final.id, stream=True, starting_after=3)
    ]
    assert rest[0].sequence_number == 4 and rest[-1].type == "response.completed"
    assert rest[-1].response.output_text == final.output_text
    await a.close()
    await b.close()


@pytest.mark.parametrize("background", [False, True])
def test_a_dropped_stream_resumes_elsewhere_exactly(
    urls: tuple[str, str], background: bool
) -> None:
    a, b = sync(urls[0]), sync(urls[1])
    rng = random.Random(22)
    for _ in range(3):
        stream = a.responses.create(
            model="any", input=f"cut {rng.random()}", stream=True, background=background
        )
        cut = rng.randrange(1, 60)
        head = []
        for event in stream:
            head.append(event)
            if len(head) == cut:
                break
        stream.close()  # the connection drops; the response goes on
        response_id = head[0].response.id
        rest = list(b.responses.retrieve(response_id, stream=True, starting_after=cut - 1))
        numbers = [event.sequence_number for event in head + rest]
        assert numbers == list(range(len(numbers)))  # none lost, none twice
        assert rest[-1].type in ("response.completed", "response.incomplete")
        whole = list(b.responses.retrieve(response_id, stream=True))
        assert dumped(head + rest) == dumped(whole)


def test_cancel_on_another_process_stops_the_stream(urls: tuple[str, str]) -> None:
    a, b = sync(urls[0]), sync(urls[1])
    made = a.responses.create(
        model="any", input="long one", background=True, max_output_tokens=4000
    )
    assert made.status == "in_progress" and made.background is True
    cancelled = b.responses.cancel(made.id)
    assert cancelled.status == "cancelled"
    events = list(a.responses.retrieve(made.id, stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.status == "cancelled"
    assert a.responses.retrieve(made.id).status == "cancelled"
    # cancelling what ended changes nothing
    assert b.responses.cancel(made.id).status == "cancelled"


def test_delete_then_404_everywhere(urls: tuple[str, str]) -> None:
    a, b = sync(urls[0]), sync(urls[1])
    made = a.responses.create(model="any", input="to delete")
    b.responses.delete(made.id)
    for client in (a, b):
        with pytest.raises(openai.NotFoundError) as info:
            client.responses.retrieve(made.id)
        assert info.value.body["code"] == "not_found"  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            client.responses.input_items.list(made.id)
    with pytest.raises(openai.NotFoundError) as info:
        a.responses.create(model="any", input="next", previous_response_id=made.id)
    assert info.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_a_three_turn_conversation_says_what_chat_completions_says(urls: tuple[str, str]) -> None:
    a, b = sync(urls[0]), sync(urls[1])
    chat = a.chat.completions
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    previous = None
    for turn, (client, said) in enumerate([(a, "first"), (b, "second"), (a, "third")]):
        response = client.responses.create(
            model="any",
            input=f"turn {said}",
            instructions="Be brief.",
            previous_response_id=previous,
            max_output_tokens=30,
        )
        messages.append({"role": "user", "content": f"turn {said}"})
        expected = chat.create(model="any", messages=messages, max_tokens=30)  # type: ignore[arg-type]
        assert response.output_text == expected.choices[0].message.content, turn
        assert response.previous_response_id == previous
        messages.append({"role": "assistant", "content": response.output_text})
        previous = response.id


def test_function_tools_streamed_and_answered(urls: tuple[str, str]) -> None:
    a, b = sync(urls[0]), sync(urls[1])
    with a.responses.stream(
        model="any", input="What does get_weather say for Paris?", tools=[WEATHER]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    (call,) = final.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert "city" in json.loads(call.arguments)
    answer = b.responses.create(
        model="any",
        previous_response_id=final.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert answer.status == "completed" and answer.output[0].type == "message"


async def test_websocket_mode_two_lanes_at_once(urls: tuple[str, str]) -> None:
    client = aio(urls[0])
    async with client.responses.connect() as connection:
        async with AsyncResponsesWebSocketSession(connection, limits=LIMITS) as session:
            one, two = session.lane("one"), session.lane("two")
            await one.send({"type": "response.create", "model": "any", "input": "lane one"})
            await two.send({"type": "response.create", "model": "any", "input": "lane two"})
            first, second = await asyncio.gather(one.get_final_response(), two.get_final_response())
            assert first.status == second.status == "completed"
            await one.send(
                {
                    "type": "response.create",
                    "model": "any",
                    "input": "go on",
                    "previous_response_id": first.id,
                }
            )
            third = await one.get_final_response()
    elsewhere = aio(urls[1])
    for response in (first, second, third):
        assert (await elsewhere.responses.retrieve(response.id)).output_text == response.output_text
    over_http = await elsewhere.responses.create(model="any", input="lane one")
    assert over_http.output_text == first.output_text  # same request, same text, either transport
    await client.close()
    await elsewhere.close()


def test_sync_websocket_mode(urls: tuple[str, str]) -> None:
    with sync(urls[0]).responses.connect() as connection:
        connection.send({"type": "response.create", "model": "any", "input": "sync socket"})
        kinds = []
        for event in connection:
            kinds.append(event.type)
            if event.type == "response.completed":
                break
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


async def test_a_dropped_socket_resumes_over_sse(urls: tuple[str, str]) -> None:
    ws_url = urls[0].replace("http", "ws", 1) + "/v1/responses"
    async with ws_connect(ws_url) as socket:
        await socket.send(
            json.dumps({"type": "response.create", "input": "drop me", "stream_id": "x"})
        )
        head = [json.loads(await socket.recv()) for _ in range(17)]
    # the socket is gone; the response went on
    assert all(event["stream_id"] == "x" for event in head)
    response_id = head[0]["response"]["id"]
    client = aio(urls[1])
    rest = [
        event
        async for event in await client.responses.retrieve(
            response_id, stream=True, starting_after=head[-1]["sequence_number"]
        )
    ]
    numbers = [event["sequence_number"] for event in head] + [e.sequence_number for e in rest]
    assert numbers == list(range(len(numbers)))
    assert rest[-1].type == "response.completed"
    await client.close()


async def test_websocket_errors_keep_the_socket_open(urls: tuple[str, str]) -> None:
    ws_url = urls[0].replace("http", "ws", 1) + "/v1/responses"
    async with ws_connect(ws_url) as socket:
        for message, code in [
            ("{not json", "invalid_json"),
            ("[1]", "invalid_message"),
            ('{"type": "response.cancel"}', "unknown_event_type"),
            ('{"type": "response.create"}', "missing_required_parameter"),
            ('{"type": "response.create", "input": "x", "stream": true}', "invalid_parameter"),
            ('{"type": "response.create", "input": "x", "stream_id": "a b"}', "invalid_stream_id"),
            (
                '{"type": "response.create", "input": "x", "previous_response_id": "resp_nope"}',
                "previous_response_not_found",
            ),
            (
                '{"type": "response.create", "input": "x", "tools": [{"type": "web_search"}]}',
                "unsupported_parameter",
            ),
        ]:
            await socket.send(message)
            error = json.loads(await socket.recv())
            assert error["type"] == "error" and error["error"]["code"] == code, error
            assert set(error["error"]) == {"message", "type", "param", "code"}
        create = {
            "type": "response.create",
            "input": "busy lane",
            "stream_id": "L",
            "max_output_tokens": 200,
        }
        await socket.send(json.dumps(create))
        await socket.send(json.dumps(create))
        seen = []
        while not seen or seen[-1]["type"] != "response.completed":
            seen.append(json.loads(await socket.recv()))
        errors = [event for event in seen if event["type"] == "error"]
        assert [event["error"]["code"] for event in errors] == ["response_already_in_flight"]
        assert errors[0]["stream_id"] == "L"


def test_http_errors_are_openai_shaped(urls: tuple[str, str]) -> None:
    client = sync(urls[0])
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="any", input="x", tools=[{"type": "web_search"}])  # type: ignore[list-item]
    assert info.value.body == {
        "message": info.value.body["message"],  # type: ignore[index]
        "type": "invalid_request_error",
        "param": "tools[0].type",
        "code": "unsupported_parameter",
    }
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_unknown")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("not-even-an-id")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(
            model="any",
            input=[{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],  # type: ignore[list-item]
        )
    assert info.value.body["param"] == "input[0].content[0].type"  # type: ignore[index]
    made = client.responses.create(model="any", input="short", max_output_tokens=3)
    with pytest.raises(openai.BadRequestError) as info:
        list(client.responses.retrieve(made.id, stream=True, starting_after=10_000))
    assert info.value.body["param"] == "starting_after"  # type: ignore[index]
    for bad in ("--5", "-2", "1e3", "abc", "9" * 19, "²"):
        answer = httpx.get(f"{urls[0]}/v1/responses/{made.id}?stream=true&starting_after={bad}")
        assert answer.status_code == 400, bad
        assert answer.json()["error"]["code"] == "invalid_starting_after"
    for bad in ("0", "101", "²", "-1", "x"):
        answer = httpx.get(f"{urls[0]}/v1/responses/{made.id}/input_items?limit={bad}")
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "limit", bad


def test_node_openai_sdk_streams_resumes_and_accumulates(memory: tuple[str, str]) -> None:
    node = shutil.which("node")
    assert node, "node is needed (scripts/test.sh installs it)"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), (
        "run `npm ci --prefix tests/node` (scripts/test.sh does)"
    )
    result = subprocess.run(
        [node, str(NODE_DIR / "responses_check.mjs"), memory[0] + "/v1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["numbers"] == list(range(len(report["numbers"])))  # none lost, none twice
    assert report["last"] == "response.completed" and report["status"] == "completed"
    assert report["resumedText"] == report["finalText"] != ""


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_past_retention_a_response_is_404(store: str, redis_server: RedisServer) -> None:
    args = ("--store", redis_server.url) if store == "redis" else ()
    server = ServerProc(*args, *PACE, "--retention", "1")
    try:
        client = sync(server.url)
        made = client.responses.create(model="any", input="short-lived", max_output_tokens=3)
        assert client.responses.retrieve(made.id).status == "incomplete"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.responses.retrieve(made.id)
            except openai.NotFoundError:
                break
            time.sleep(0.25)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(made.id)
        with pytest.raises(openai.NotFoundError) as info:
            client.responses.create(model="any", input="next", previous_response_id=made.id)
        assert info.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    finally:
        server.close()
