"""The Responses API's transports on real processes: a draining process (SIGTERM,
shared redis-server) closes WebSocket mode with 1012 and ends SSE responses
early, and the other process resumes them with ``starting_after``, nothing
lost; RFC 6455 violations on the WebSocket-mode socket get their close frame;
``/metrics`` counts the Responses views by transport."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from support.cluster import ServerProc
from support.raw_clients import client_frame, open_ws
from support.redisutil import RedisServer
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from benchmarks import rawwire

PACE = ("--tokens-per-second", "100", "--first-token-latency", "0", "--log-level", "warning")
LONG = {"input": "a long answer", "max_output_tokens": 1500}


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[tuple[ServerProc, ServerProc]]:
    a = ServerProc("--store", redis_server.url, *PACE)
    b = ServerProc("--store", redis_server.url, *PACE)
    yield a, b
    a.close()
    b.close()


async def rest_of(url: str, response_id: str, after: int) -> list[Any]:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    stream = await client.responses.retrieve(response_id, stream=True, starting_after=after)
    rest = [event async for event in stream]
    await client.close()
    return rest


async def test_draining_closes_websocket_mode_with_1012_and_sse_resumes_elsewhere(
    pair: tuple[ServerProc, ServerProc],
) -> None:
    a, b = pair
    head: list[dict[str, Any]] = []
    socket = await ws_connect(a.url.replace("http", "ws", 1) + "/v1/responses")
    await socket.send(json.dumps({"type": "response.create", **LONG, "stream_id": "lane"}))
    for _ in range(20):
        head.append(json.loads(await socket.recv()))
    a.terminate()
    with pytest.raises(ConnectionClosed) as info:
        while True:
            head.append(json.loads(await socket.recv()))
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012
    rest = await rest_of(b.url, head[0]["response"]["id"], head[-1]["sequence_number"])
    numbers = [event["sequence_number"] for event in head] + [e.sequence_number for e in rest]
    assert numbers == list(range(len(numbers)))
    assert rest[-1].type == "response.completed"  # generated on after the drain
    assert a.wait(30) == 0


async def test_draining_ends_sse_and_the_other_process_resumes(
    pair: tuple[ServerProc, ServerProc],
) -> None:
    a, b = pair
    head: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as http:
        async with http.stream("POST", "/v1/responses", json={**LONG, "stream": True}) as body:
            async for line in body.aiter_lines():
                if line.startswith("data: "):
                    head.append(json.loads(line[6:]))
                    if len(head) == 20:
                        a.terminate()  # once: a second signal would end generation at once
    assert head[-1]["type"] == "response.output_text.delta"  # ended early, with no terminal
    rest = await rest_of(b.url, head[0]["response"]["id"], head[-1]["sequence_number"])
    numbers = [event["sequence_number"] for event in head] + [e.sequence_number for e in rest]
    assert numbers == list(range(len(numbers)))
    assert rest[-1].type == "response.completed", rest[-1].response.error


async def test_protocol_errors_on_the_websocket_mode_socket_get_close_frames() -> None:
    server = ServerProc("--tokens-per-second", "0", "--log-level", "warning")
    try:
        for frame, code in [
            (client_frame(0x80 | 0x40 | 0x1, b"{}"), 1002),  # RSV1 without an extension
            (client_frame(0x80 | 0x3, b"x"), 1002),  # a reserved opcode
            (client_frame(0x81, b'{"type":"\xff"}'), 1007),  # not UTF-8
        ]:
            socket = await open_ws(server.port, "/v1/responses")
            await socket.send(frame)
            data = await socket.read_to_end(10)
            socket.close()
            assert rawwire.parse_ws_frames(data).close_code == code
    finally:
        server.close()


async def test_metrics_count_the_responses_views_by_transport() -> None:
    server = ServerProc("--tokens-per-second", "0", "--log-level", "warning")
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async with http.stream(
                "POST", "/v1/responses", json={"input": "x", "stream": True}
            ) as body:
                await body.aread()
        async with ws_connect(server.url.replace("http", "ws", 1) + "/v1/responses") as socket:
            await socket.send(json.dumps({"type": "response.create", "input": "x"}))
            while json.loads(await socket.recv())["type"] != "response.completed":
                pass
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as answer:
            text = answer.read().decode()
        for transport in ("responses-sse", "responses-ws"):
            assert f'twinstream_streams_started_total{{transport="{transport}"}} 1.0' in text
            sent = [
                line
                for line in text.splitlines()
                if line.startswith(f'twinstream_bytes_sent_total{{transport="{transport}"}}')
            ]
            assert sent and float(sent[0].split()[-1]) > 0, sent
    finally:
        server.close()


async def test_the_edge_applies_keys_and_the_start_rate() -> None:
    server = ServerProc(
        "--tokens-per-second",
        "0",
        "--log-level",
        "warning",
        "--api-key",
        "sk-test-key",
        "--streams-per-minute",
        "2",
    )
    try:
        base = server.url + "/v1"
        wrong = openai.AsyncOpenAI(base_url=base, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await wrong.responses.create(model="any", input="x")
        right = openai.AsyncOpenAI(base_url=base, api_key="sk-test-key", max_retries=0)
        made = await right.responses.create(model="any", input="x")
        assert (await right.responses.retrieve(made.id)).status == "completed"
        async with right.responses.connect() as connection:  # the key in the upgrade
            await connection.send({"type": "response.create", "model": "any", "input": "y"})
            async for event in connection:
                if event.type == "response.completed":
                    break
        with pytest.raises(openai.RateLimitError):  # the socket's start counted
            await right.responses.create(model="any", input="z")
        await wrong.close()
        await right.close()
    finally:
        server.close()


async def test_shutting_down_on_the_memory_store_finishes_responses_first() -> None:
    """Nothing could be resumed once the process is gone: SIGTERM lets the
    responses run to their end, then WebSocket mode closes with 1001."""
    server = ServerProc(*PACE)
    try:
        socket = await ws_connect(server.url.replace("http", "ws", 1) + "/v1/responses")
        await socket.send(json.dumps({"type": "response.create", **LONG}))
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async with http.stream(
                "POST", "/v1/responses", json={**LONG, "input": "other", "stream": True}
            ) as body:
                seen: list[dict[str, Any]] = []
                async for line in body.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
                        if len(seen) == 10:
                            server.terminate()
        assert seen[-1]["type"] == "response.completed"
        assert [event["sequence_number"] for event in seen] == list(range(len(seen)))
        events: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as info:
            while True:
                events.append(json.loads(await socket.recv()))
        assert events[-1]["type"] == "response.completed"
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert server.wait(30) == 0
    finally:
        server.close()
