"""WebSocket mode of ``/v1/responses`` in this process, over real sockets
(tornado's WebSocket client): lanes are released when their response ends, and
the socket is counted as ``responses-ws``. (The openai SDK's sessions against
real processes are in test_responses.py.)"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from server.app import Settings
from server.core.stream import Stream
from server.wire.responses_request import stream_of_response


@pytest.fixture
def settings() -> Settings:
    # ended streams forgotten at once (retention 0) and unread ones reaped at once
    return Settings(tokens_per_second=0, ws_ping_interval=0, retention=0, idle_timeout=0.001)


TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


async def connect(http_server_client: Any) -> WebSocketClientConnection:
    url = http_server_client.get_url("/v1/responses").replace("http://", "ws://")
    return await websocket_connect(url)


async def until_completed(ws: WebSocketClientConnection) -> list[dict[str, Any]]:
    events = []
    while not events or events[-1]["type"] not in TERMINAL:
        message = await ws.read_message()
        assert isinstance(message, str), f"socket closed: {ws.close_code}"
        events.append(json.loads(message))
    return events


async def test_a_lane_keeps_nothing_of_its_ended_response(
    http_server_client: Any, app: Any
) -> None:
    """Review item 1: each lane's response stayed referenced by the socket for
    the socket's life (here: 20 lanes, 20 ended streams the store had forgotten)."""
    store = app.settings["store"]
    ws = await connect(http_server_client)
    ids = set()
    for n in range(20):
        create = {"type": "response.create", "input": f"lane {n}", "stream_id": f"lane-{n}"}
        ws.write_message(json.dumps({**create, "max_output_tokens": 3}))
        events = await until_completed(ws)
        assert events[-1]["type"] == "response.incomplete"  # at max_output_tokens
        assert {event["stream_id"] for event in events} == {f"lane-{n}"}
        stream_id = stream_of_response(events[0]["response"]["id"])
        assert store.get(stream_id) is not None
        ids.add(stream_id)
    await asyncio.sleep(0.01)  # past the idle timeout of the last one
    store.reap()  # retention 0: the store forgets every ended stream
    gc.collect()
    held = [o for o in gc.get_objects() if isinstance(o, Stream) and o.id in ids]
    assert not held, f"{len(held)} ended responses still held while the socket is open"
    # the lanes are free again, and the socket still serves
    again = {"type": "response.create", "input": "again", "stream_id": "lane-0"}
    ws.write_message(json.dumps({**again, "max_output_tokens": 3}))
    assert (await until_completed(ws))[-1]["type"] == "response.incomplete"
    ws.close()
