"""The Responses view against the stream's other views, over raw HTTP and
WebSocket clients (httpx, websockets) on a real server process:

- the same conversation says the same text over /v1/chat/completions, /sse
  (POST /streams), /ws and the Responses API (HTTP, SSE and WebSocket mode);
- 1,000 random cuts across SSE and WebSocket mode, each resumed with
  ``starting_after`` over SSE: no event lost, none twice, the events exactly
  those of a replay from the start."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from support.cluster import ServerProc
from websockets.asyncio.client import connect as ws_connect

MESSAGES = [
    {"role": "system", "content": "Answer in one line."},
    {"role": "user", "content": "What is a stream?"},
    {"role": "assistant", "content": "A log you can follow."},
    {"role": "user", "content": "And a resume?"},
]
RESPONSES_BODY = {
    "instructions": "Answer in one line.",
    "input": MESSAGES[1:],
    "max_output_tokens": 60,
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProc]:
    process = ServerProc(
        "--tokens-per-second",
        "1500",
        "--first-token-latency",
        "0",
        "--log-level",
        "warning",
        "--streams-per-minute",
        "0",
    )
    yield process
    process.close()


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Responses events from an SSE body (an ``event:`` and a ``data:`` line each)."""
    kind = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            event = json.loads(line[6:])
            assert event["type"] == kind
            yield event


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


async def test_the_same_text_on_every_view(server: ServerProc) -> None:
    url = server.url
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        chat = await http.post(
            "/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 60}
        )
        expected = chat.json()["choices"][0]["message"]["content"]
        assert expected
        made = (await http.post("/streams", json={"messages": MESSAGES, "max_tokens": 60})).json()
        async with http.stream("GET", f"/sse?stream={made['stream']}") as body:
            lines = [
                json.loads(line[6:]) async for line in body.aiter_lines() if line[:6] == "data: "
            ]
            sse_text = "".join(event["content"] for event in lines if event["type"] == "delta")
        responses = (await http.post("/v1/responses", json=RESPONSES_BODY)).json()
        output_text = responses["output"][0]["content"][0]["text"]
        async with http.stream(
            "POST", "/v1/responses", json={**RESPONSES_BODY, "stream": True}
        ) as body:
            streamed = text_of([event async for event in sse_events(body)])
    ws_url = url.replace("http", "ws", 1)
    async with ws_connect(ws_url + "/ws") as socket:
        await socket.send(json.dumps({"type": "start", "messages": MESSAGES, "max_tokens": 60}))
        ws_text = ""
        while True:
            event = json.loads(await socket.recv())
            if event["type"] != "delta":
                if event["type"] == "done":
                    break
                continue
            ws_text += event["content"]
    async with ws_connect(ws_url + "/v1/responses") as socket:
        await socket.send(json.dumps({"type": "response.create", **RESPONSES_BODY}))
        mode: list[dict[str, Any]] = []
        while not mode or mode[-1]["type"] not in ("response.completed", "response.incomplete"):
            mode.append(json.loads(await socket.recv()))
    assert sse_text == ws_text == output_text == streamed == text_of(mode) == expected


async def follow_with_cuts(
    http: httpx.AsyncClient, ws_url: str, rng: random.Random, over_ws: bool, index: int
) -> tuple[int, int]:
    """Start a response, cut the connection after a random number of events,
    resume after the last one seen, again and again to the end. (cuts, events)"""
    seen: list[dict[str, Any]] = []
    cuts = 0
    body = {"input": f"cut test {index}", "max_output_tokens": 200}

    def cut_at() -> int:
        return rng.randrange(1, 25)

    if over_ws:
        async with ws_connect(ws_url) as socket:
            await socket.send(json.dumps({"type": "response.create", **body}))
            for _ in range(cut_at()):
                seen.append(json.loads(await socket.recv()))
        cuts += 1
    else:
        async with http.stream("POST", "/v1/responses", json={**body, "stream": True}) as response:
            limit = cut_at()
            async for event in sse_events(response):
                seen.append(event)
                if len(seen) >= limit:
                    break
        cuts += 1
    response_id = seen[0]["response"]["id"]
    while seen[-1]["type"] not in ("response.completed", "response.incomplete", "response.failed"):
        after = seen[-1]["sequence_number"]
        async with http.stream(
            "GET", f"/v1/responses/{response_id}?stream=true&starting_after={after}"
        ) as response:
            assert response.status_code == 200
            limit = cut_at()
            count = 0
            async for event in sse_events(response):
                seen.append(event)
                count += 1
                if count >= limit:
                    break
            else:
                continue  # the response's end
        if seen[-1]["type"] not in ("response.completed", "response.incomplete"):
            cuts += 1
    numbers = [event["sequence_number"] for event in seen]
    assert numbers == list(range(len(numbers))), numbers  # 0 lost, 0 twice
    async with http.stream("GET", f"/v1/responses/{response_id}?stream=true") as response:
        replay = [event async for event in sse_events(response)]
    for event in seen:
        event.pop("stream_id", None)  # WebSocket mode's lane field
    assert seen == replay
    return cuts, len(seen)


async def test_a_thousand_random_cuts_lose_nothing(server: ServerProc) -> None:
    rng = random.Random(1000)
    ws_url = server.url.replace("http", "ws", 1) + "/v1/responses"
    limits = httpx.Limits(max_connections=40)
    total_cuts = total_events = 0
    index = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
        while total_cuts < 1000:
            batch = await asyncio.gather(
                *(
                    follow_with_cuts(
                        http, ws_url, random.Random(rng.random()), i % 2 == 1, index + i
                    )
                    for i in range(20)
                )
            )
            index += 20
            total_cuts += sum(cuts for cuts, _ in batch)
            total_events += sum(events for _, events in batch)
    assert total_cuts >= 1000 and total_events > total_cuts
