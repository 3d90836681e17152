"""The async adapter (``clients.aio``) against the real server."""

from __future__ import annotations

import asyncio

import pytest

import clients
from clients.aio import acomplete, astream
from server.app import Settings
from server.backends.synthetic import synthetic_tokens

PROMPT = "resume me"  # 190 tokens


@pytest.fixture
def live_settings() -> Settings:
    return Settings(tokens_per_second=200, first_token_latency=0, ws_ping_interval=0)


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_async_stream_gives_the_same_events(live_server, transport):
    async def read() -> list[dict]:
        return [event async for event in astream(PROMPT, transport, live_server.url, max_tokens=20)]

    events = asyncio.run(read())
    assert [e["seq"] for e in events] == list(range(22))
    assert events[-1]["finish_reason"] == "length"
    text = asyncio.run(acomplete(PROMPT, transport, live_server.url, max_tokens=20))
    assert text == "".join(e.get("content", "") for e in events)
    assert text == "".join(synthetic_tokens(PROMPT)[:20])


def test_async_errors_are_the_client_errors(live_server):
    with pytest.raises(clients.HTTPStatusError, match="invalid_max_tokens"):
        asyncio.run(acomplete(PROMPT, "sse", live_server.url, max_tokens=99999))


def test_cancelling_the_task_cancels_the_websocket_stream(live_server):
    started: asyncio.Future[str]

    async def reader() -> None:
        async for event in astream(PROMPT, "ws", live_server.url):
            if event["type"] == "start" and not started.done():
                started.set_result(event["stream"])

    async def main() -> str:
        nonlocal started
        started = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(reader())
        stream_id = await started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return stream_id

    stream_id = asyncio.run(main())
    server_stream = live_server.store.get(stream_id)
    live_server.call(server_stream.wait_ended)
    assert server_stream.events[-1]["type"] == "done"
    assert server_stream.events[-1]["finish_reason"] == "cancelled"
