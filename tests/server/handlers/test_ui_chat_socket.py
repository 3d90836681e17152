"""The AI SDK's WebSocket chat transport (``GET /api/chat`` upgraded) in this
process, over real sockets (tornado's WebSocket client): the per-socket cap
counts answers generating, ``abort`` stops the answer whatever came between,
and the socket is counted as ``ai-ws``. (Frames, drain and the npm SDK against
real processes: test_ui_chat.py, test_ui_chat_sdk.py.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.websocket import WebSocketClientConnection, websocket_connect

from server.app import Settings


@pytest.fixture
def settings() -> Settings:
    # answers that start and then wait: they keep generating for the test's length
    return Settings(
        tokens_per_second=5, first_token_latency=30, ws_ping_interval=0, max_streams_per_socket=2
    )


def send(request_id: str, chat_id: str, text: str = "hello") -> str:
    message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}
    return json.dumps({"type": "send", "requestId": request_id, "id": chat_id,
                       "trigger": "submit-message", "messages": [message]})  # fmt: skip


def resume(request_id: str, chat_id: str) -> str:
    return json.dumps({"type": "resume", "requestId": request_id, "id": chat_id})


async def connect(http_server_client: Any, path: str = "/api/chat") -> WebSocketClientConnection:
    url = http_server_client.get_url(path).replace("http://", "ws://")
    return await websocket_connect(url)


async def until_no_active(ws: WebSocketClientConnection, request_id: str) -> list[dict[str, Any]]:
    """Frames up to the ``no-active`` answering ``request_id``."""
    frames = []
    while True:
        text = await asyncio.wait_for(ws.read_message(), 10)
        assert isinstance(text, str), f"socket closed: {ws.close_code}"
        frames.append(json.loads(text))
        if frames[-1] == {"type": "no-active", "requestId": request_id}:
            return frames


async def test_the_socket_cap_counts_answers_generating_not_requests_followed(
    http_server_client: Any,
) -> None:
    """Review item 2: a ``send`` that reuses a requestId for another chat stops
    following the old answer, which still generates; it counted no more, so one
    socket could start any number of answers."""
    ws = await connect(http_server_client)
    for chat in ("cap-a", "cap-b", "cap-c"):
        ws.write_message(send("r", chat))
    ws.write_message(resume("done", "cap-never"))
    frames = await until_no_active(ws, "done")
    starts = [f for f in frames if f["type"] == "start"]
    errors = [f for f in frames if f["type"] == "error"]
    assert len(starts) == 2
    assert len(errors) == 1 and errors[0]["requestId"] == "r"
    assert errors[0]["errorText"].startswith("too_many_streams: ")
    ws.close()


async def test_abort_stops_the_answer_after_a_refused_send_with_its_request_id(
    http_server_client: Any,
) -> None:
    """Review item 4: a refused ``send`` with a running request's requestId made
    the socket forget that request's chat, so ``abort`` then stopped the relay
    but not the answer (still active: a resume found it)."""
    ws = await connect(http_server_client)
    ws.write_message(send("r1", "abort-me"))
    refused = {"type": "send", "requestId": "r1", "id": "abort-me"}  # no messages: an error
    ws.write_message(json.dumps(refused))
    ws.write_message(resume("mark", "abort-never"))
    frames = await until_no_active(ws, "mark")
    assert {"type": "start", "requestId": "r1"} in frames
    assert [f["requestId"] for f in frames if f["type"] == "error"] == ["r1"]
    ws.write_message(json.dumps({"type": "abort", "requestId": "r1"}))
    ws.write_message(resume("check", "abort-me"))
    ws.write_message(resume("mark-2", "abort-never"))
    frames = await until_no_active(ws, "mark-2")
    assert [f for f in frames if f["requestId"] == "check"] == [
        {"type": "no-active", "requestId": "check"}  # stopped: nothing to resume
    ]
    ws.close()


def open_connections(body: bytes) -> dict[str, float]:
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "twinstream_open_connections":
            return {s.labels["transport"]: s.value for s in family.samples}
    raise AssertionError("no twinstream_open_connections")


async def test_each_websocket_endpoint_is_counted_as_its_transport(
    http_server_client: Any,
) -> None:
    """Review item 8: the AI SDK's sockets were counted as ``ws``."""
    sockets = {
        transport: await connect(http_server_client, path)
        for transport, path in (("ai-ws", "/api/chat"), ("responses-ws", "/v1/responses"))
    }
    sockets["ws"] = await connect(http_server_client, "/ws")
    sockets["ai-ws-2"] = await connect(http_server_client, "/api/chat")
    response = await http_server_client.fetch("/metrics")
    counted = open_connections(response.body)
    assert {t: counted[t] for t in ("ws", "ai-ws", "responses-ws")} == {
        "ws": 1, "ai-ws": 2, "responses-ws": 1,
    }  # fmt: skip
    for ws in sockets.values():
        ws.close()
    for _ in range(100):
        counted = open_connections((await http_server_client.fetch("/metrics")).body)
        if not any(counted[t] for t in ("ws", "ai-ws", "responses-ws")):
            break
        await asyncio.sleep(0.02)
    assert {t: counted[t] for t in ("ws", "ai-ws", "responses-ws")} == {
        "ws": 0, "ai-ws": 0, "responses-ws": 0,
    }  # fmt: skip
