"""POST /streams (the whole Chat Completions request, for EventSource
clients) and one request giving the same text on every transport."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import openai
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from server.backends.synthetic import synthetic_tokens

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def post_stream(client: Any, body: Any, **headers: str) -> Any:
    return await client.fetch(
        "/streams",
        method="POST",
        body=body if isinstance(body, bytes) else json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
        raise_error=False,
    )


def sse_events(body: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")
    ]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in events if e["type"] == "delta")


async def over_sse(client: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    """POST /streams, then follow with GET /sse?stream=S: the stream's events."""
    created = await post_stream(client, request)
    assert created.code == 201, created.body
    answer = json.loads(created.body)
    assert created.headers["Location"] == answer["urls"]["sse"]
    followed = await client.fetch(answer["urls"]["sse"])
    assert followed.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(followed.body)
    assert events[0]["stream"] == answer["stream"] and events[0]["model"] == answer["model"]
    return events


async def over_ws(client: Any, start: dict[str, Any]) -> list[dict[str, Any]]:
    url = client.get_url("/ws").replace("http://", "ws://")
    ws = await websocket_connect(HTTPRequest(url))
    try:
        ws.write_message(json.dumps({"type": "start", "ref": "r1", **start}))
        events = []
        while True:
            message = await ws.read_message()
            assert isinstance(message, str)
            events.append(json.loads(message))
            if events[-1]["type"] in ("done", "error"):
                return events
    finally:
        ws.close()


def sdk(client: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=client.get_url("/v1"), api_key="unused", max_retries=0)


async def over_v1(client: Any, request: dict[str, Any]) -> tuple[str, str | None]:
    async with sdk(client) as api:
        stream = await api.chat.completions.create(model="any", stream=True, **request)
        pieces, finish = [], None
        async for chunk in stream:
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
    return "".join(pieces), finish


async def test_a_three_turn_conversation_says_the_same_on_every_transport(
    http_server_client: Any,
) -> None:
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for turn, question in enumerate(["Hi there", "What did I just say?", "  And before?  "]):
        history.append({"role": "user", "content": question})
        request = {"messages": history, "max_tokens": 30, "seed": 42, "stop": ["zzz"]}
        sse = await over_sse(http_server_client, request)
        ws = await over_ws(http_server_client, request)
        v1_text, v1_finish = await over_v1(http_server_client, request)
        assert text_of(sse) == text_of(ws) == v1_text
        assert sse[-1]["finish_reason"] == ws[-1]["finish_reason"] == v1_finish
        assert ws[0]["ref"] == "r1"
        # the context changes the text: the same question alone says something else
        alone = await over_sse(
            http_server_client, {"messages": [history[-1]], "max_tokens": 30, "seed": 42}
        )
        assert text_of(alone) != v1_text, turn
        history.append({"role": "assistant", "content": v1_text})


async def test_the_prompt_is_exactly_what_was_sent_on_every_transport(
    http_server_client: Any,
) -> None:
    expected = "".join(synthetic_tokens("  Hi  ")[:12])
    assert expected != "".join(synthetic_tokens("Hi")[:12])
    sse = await http_server_client.fetch(f"/sse?prompt={quote('  Hi  ')}&max_tokens=12")
    ws = await over_ws(http_server_client, {"prompt": "  Hi  ", "max_tokens": 12})
    v1_text, _ = await over_v1(
        http_server_client, {"messages": [{"role": "user", "content": "  Hi  "}], "max_tokens": 12}
    )
    posted = await over_sse(
        http_server_client, {"messages": [{"role": "user", "content": "  Hi  "}], "max_tokens": 12}
    )
    assert text_of(sse_events(sse.body)) == text_of(ws) == v1_text == text_of(posted) == expected


async def test_the_synthetic_model_calls_a_tool_the_same_way_on_sse_and_ws(
    http_server_client: Any,
) -> None:
    request = {"messages": [{"role": "user", "content": "get_weather please"}], "tools": [WEATHER]}
    sse = await over_sse(http_server_client, request)
    ws = await over_ws(http_server_client, request)
    strip = [
        {k: v for k, v in e.items() if k not in ("stream", "t", "ref", "created")} for e in sse
    ]
    assert strip == [
        {k: v for k, v in e.items() if k not in ("stream", "t", "ref", "created")} for e in ws
    ]
    assert sse[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sse[-1]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("body", "status", "code", "named"),
    [
        (b"{", 400, "invalid_json", ""),
        (b"[]", 400, "invalid_body", ""),
        ({"prompt": "hi"}, 400, "invalid_messages", "messages"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "temperature": 7},
            400,
            "invalid_parameter",
            "temperature",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"},
            400,
            "invalid_parameter",
            "temperature",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 0}, 400, "invalid_parameter", "n"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "n": 2},
            400,
            "unsupported_parameter",
            "n",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "logprobs": True},
            400,
            "unsupported_parameter",
            "logprobs",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "presence_penalty": 1},
            400,
            "unsupported_parameter",
            "presence_penalty",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "min_p": 0.1},
            400,
            "unsupported_parameter",
            "min_p",
        ),
        ({"messages": [{"role": "user", "content": "x" * 40000}]}, 413, "prompt_too_long", ""),
    ],
)
async def test_bad_requests_get_a_json_error_naming_what_to_fix(
    http_server_client: Any, body: Any, status: int, code: str, named: str
) -> None:
    response = await post_stream(http_server_client, body)
    assert response.code == status
    error = json.loads(response.body)["error"]
    assert error["code"] == code
    assert f"'{named}'" in error["message"] if named else error["message"]


async def test_only_json_bodies(http_server_client: Any) -> None:
    response = await post_stream(
        http_server_client, b"prompt=hi", **{"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.code == 415
    assert json.loads(response.body)["error"]["code"] == "unsupported_media_type"


async def test_following_an_unknown_or_malformed_stream(http_server_client: Any) -> None:
    unknown = await http_server_client.fetch("/sse?stream=AbCdEfGh12345678", raise_error=False)
    assert unknown.code == 404
    assert json.loads(unknown.body)["error"]["code"] == "stream_not_found"
    malformed = await http_server_client.fetch("/sse?stream=no", raise_error=False)
    assert malformed.code == 400
    assert json.loads(malformed.body)["error"]["code"] == "invalid_stream"


async def test_a_posted_stream_resumes_with_last_event_id(http_server_client: Any) -> None:
    request = {"messages": [{"role": "user", "content": "resume me"}], "max_tokens": 10}
    events = await over_sse(http_server_client, request)
    stream = events[0]["stream"]
    rest = await http_server_client.fetch("/sse", headers={"Last-Event-ID": f"{stream}:4"})
    assert sse_events(rest.body) == events[5:]
